#!/usr/bin/env bash
# Install flux_rs and train an MLP on the MNIST subset that ships in data/, printing
# the test accuracy. No download needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh
python examples/train_mnist.py "$@"
