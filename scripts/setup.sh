#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the Python tools, and
# flux_rs built in release mode and installed into it. Idempotent; sourced by the
# other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q "maturin>=1.7,<2" "numpy>=1.24" "tqdm>=4.60" "pytest>=7" "hypothesis>=6.80" "mypy>=1.11"
# flux_rs.distributed and its tests (ranks under mpiexec): mpi4py and an MPI, both from PyPI
python -m pip install -q "mpi4py>=4" "mpich>=4"
maturin develop --release -q 2>&1 | grep -vE "^(📦|🍹|✏️|🛠|🔗|🐍|⚠️)" || true
python -c "import flux_rs" || { echo "setup: flux_rs failed to build or import" >&2; exit 1; }
