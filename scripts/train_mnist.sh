#!/usr/bin/env bash
# Install flux_rs and train an MLP on the MNIST subset that ships in data/, printing
# the test accuracy. No download needed. Arguments go to examples/train_mnist.py
# (--epochs, --batchsize, --eta, --seed, --data).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh
say "training an MLP (784-256-10, Adam) on MNIST: python examples/train_mnist.py $*"
python examples/train_mnist.py "$@"
