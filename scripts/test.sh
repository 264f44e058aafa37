#!/usr/bin/env bash
# Install everything and run the tests: the Rust core's tests (release build, sharing the
# extension build's artefacts), its API docs, and the Python suite with the package's
# doctests. The slow training tests run with --all (as CI does); without it they are
# left out. Other arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Mesa's Vulkan drivers (the GPU tests on lavapipe) print an error line per process without one
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
slow=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
    slow=()
    shift
fi
. scripts/setup.sh
if [ ${#slow[@]} -eq 0 ] && ! python -c "import ziglang" 2>/dev/null; then
    say "installing ziglang (for the manylinux wheel test)"
    quiet python -m pip install -q ziglang
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Naming the extension crate too makes cargo unify features as in the extension build
# (whose crate is test = false), so the release artefacts setup.sh built are reused.
# (--features as in pyproject.toml's [tool.maturin]: the wgpu backend's tests run on
# lavapipe where there is no GPU, and skip saying so where there is no adapter at all)
cargo_test=(cargo test --release -p flux-core -p flux-rs-py --features pyo3/extension-module,wgpu)
say "Rust core tests: ${cargo_test[*]}"
"${cargo_test[@]}" --no-run --message-format json-render-diagnostics >"$log"
python - "$log" <<'PY'
import json, sys
# setup.sh has just built flux-core for the extension: compiling its library again means
# some dependency's features differ between the two builds
if any(m.get("reason") == "compiler-artifact" and m["target"]["name"] == "flux_core" and not m["profile"]["test"]
       and not m["fresh"] for m in map(json.loads, open(sys.argv[1]))):
    sys.exit("cargo test compiled flux-core again instead of reusing the extension build's: a dependency's "
             "features differ between the two builds; add it to the feature pins in Cargo.toml")
PY
if ! "${cargo_test[@]}" >"$log"; then
    tail -80 "$log"
    echo "Rust tests failed" >&2
    exit 1
fi
awk '/^test result:/ {p+=$4; f+=$6} END {printf "flux-core (cargo test): %d passed, %d failed\n", p, f}' "$log"
say "native example: char_lstm, small settings (built by cargo test above)"
target/release/examples/char_lstm --steps 40 --hidden 32 --seq 16 --batch 16 --sample 60
say "Rust API docs: cargo doc -p flux-core --features wgpu (no warnings, an example on every public item)"
# the Rust API docs must build without warnings (broken or private links), and every public
# item must have a runnable example: rustdoc's missing_doc_code_examples lint. That lint is
# unstable (its feature is turned on in lib.rs under --cfg flux_doc_lint, and -Z needs a
# nightly): RUSTC_BOOTSTRAP=flux_core lets this stable toolchain run it, for flux-core's
# rustdoc in this one command only (no dependency is built with unstable features)
RUSTC_BOOTSTRAP=flux_core RUSTDOCFLAGS="--cfg flux_doc_lint -Z unstable-options -D warnings -D missing_docs -D rustdoc::missing_doc_code_examples" \
    cargo doc -p flux-core --no-deps --features wgpu -q
say "native example: cnn_batchnorm (train, checkpoint, resume; small settings)"
# built by the cargo test above (cargo test builds the examples)
target/release/examples/cnn_batchnorm --epochs 1 --resume-epochs 1 --train 256 --test 200 >/dev/null
say "native example: mnist_gpu on the GPU (300 images, 1 epoch; lavapipe where there is no GPU)"
# built by the cargo test above (the wgpu feature is on); without an adapter it says why
if python -c "import flux_rs, sys; sys.exit(not flux_rs.gpu_available())"; then
    target/release/examples/mnist_gpu "" 1 300 | grep -E "^(adapter|epoch)"
else
    echo "mnist_gpu skipped: no GPU adapter"
fi
say "Python tests: pytest tests python/flux_rs --doctest-modules ${slow[*]}"
python -m pytest -q tests python/flux_rs --doctest-modules ${slow[@]+"${slow[@]}"} "$@"
