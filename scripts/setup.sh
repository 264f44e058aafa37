#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the Python tools, and
# flux_rs built in release mode and installed into it. Idempotent; sourced by the
# other scripts. Says what it is doing on stderr and lets cargo's progress through;
# installer chatter that says nothing went wrong is left out.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
# run an installer, dropping the lines that only say all is well (pip's "already satisfied"
# and "Ignoring", maturin's emoji-led steps); its exit status is kept
quiet() {
    "$@" 2>&1 | { LC_ALL=C grep --line-buffered -vE $'^(Requirement already satisfied|Ignoring [^ ]+: markers|Looking in (links|indexes):|[\x80-\xff])' || true; } >&2
}
# The GPU tests (the wheel is built with the wgpu feature) need a Vulkan driver; on a
# machine without a GPU, Mesa's lavapipe (a CPU Vulkan device) is one. Installed when no
# driver is present and apt-get can (CI runs as root on Debian); else those tests skip.
if ! compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null && ! compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null \
        && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing Mesa's Vulkan drivers (lavapipe) for the GPU tests"
    { quiet apt-get install -y -q mesa-vulkan-drivers \
        || { quiet apt-get update -q && quiet apt-get install -y -q mesa-vulkan-drivers; }; } \
        || say "could not install mesa-vulkan-drivers: the GPU tests will skip"
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required: install it from https://rustup.rs" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    say "creating the virtual environment .venv"
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# the Python tools; pip runs again only when this list changes (delete .venv to start afresh)
# (mpi4py and an MPI from PyPI: flux_rs.distributed and its tests, ranks under mpiexec)
tools=("maturin>=1.7,<2" "numpy>=1.24" "tqdm>=4.60" "pytest>=7" "hypothesis>=6.80" "mypy>=1.11" "matplotlib>=3.5"
       "mpi4py>=4" "mpich>=4")
stamp=.venv/.flux_rs-tools
if [ "$(cat "$stamp" 2>/dev/null)" != "${tools[*]}" ]; then
    say "installing the Python tools: ${tools[*]}"
    quiet python -m pip install -q --disable-pip-version-check --upgrade pip
    quiet python -m pip install -q --disable-pip-version-check "${tools[@]}"
    printf '%s' "${tools[*]}" >"$stamp"
fi
if [ -d target/release/.fingerprint ]; then
    say "building flux_rs (release; seconds when the Rust sources have not changed)"
else
    say "building flux_rs in release mode: the first build compiles ~150 Rust crates and takes" \
        "5-10 minutes (2 cores); later runs take seconds"
fi
quiet maturin develop --release
python -c "import flux_rs" || { echo "setup: flux_rs failed to build or import" >&2; exit 1; }
say "flux_rs is installed in .venv (activate it with: . .venv/bin/activate)"
