#!/usr/bin/env bash
# Install everything and run every test: the Rust core's tests (release build, shared
# with the extension) and the Python suite with the package's doctests, slow training
# tests included. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh
log="$(mktemp)"
if ! cargo test --release -p flux-core >"$log" 2>&1; then
    tail -80 "$log"
    echo "Rust tests failed" >&2
    exit 1
fi
# the Rust API docs must build without warnings (broken or private links)
RUSTDOCFLAGS="-D warnings" cargo doc -p flux-core --no-deps -q
awk '/^test result:/ {p+=$4; f+=$6} END {printf "flux-core (cargo test): %d passed, %d failed\n", p, f}' "$log"
python -m pytest -q tests python/flux_rs --doctest-modules "$@"
