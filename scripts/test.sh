#!/usr/bin/env bash
# Install everything and run every test: the Rust core's tests (release build, shared
# with the extension) and the Python suite, slow training tests included.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh
cargo test --release -p flux-core --quiet 2>&1 | grep -vE "^(running 0 tests|test result: ok. 0 passed)" | grep -E "test result|FAILED|panicked|error" || true
cargo test --release -p flux-core --quiet >/dev/null 2>&1 || { cargo test --release -p flux-core 2>&1 | tail -40; exit 1; }
python -m pytest -q tests python/flux_rs --doctest-modules "$@"
