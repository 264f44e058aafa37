"""The PEP 517 build backend of flux_rs: maturin's, after a check that Rust is there.

Without cargo, maturin's backend downloads a Rust toolchain (some 700 MB) into a cache,
or fails offline with ``ModuleNotFoundError: puccinialin``. Building flux_rs from source
should instead stop at once and say what to install.
"""
import os
import shutil

# maturin reads this before it would fetch a toolchain: never do that behind the user's back
os.environ.setdefault("MATURIN_NO_INSTALL_RUST", "1")

import maturin  # noqa: E402
from maturin import get_requires_for_build_sdist  # noqa: E402,F401  (passed through unchanged)

NO_CARGO = """
flux_rs is being built from source, which needs Rust (cargo and rustc), and `cargo` is not on PATH.
Install Rust with https://rustup.rs (or your system's package, e.g. `apt install cargo`),
open a new shell so that ~/.cargo/bin is on PATH, and run the install again.
"""


def _require_cargo() -> None:
    if shutil.which("cargo") is None:
        raise SystemExit(NO_CARGO)


def get_requires_for_build_wheel(config_settings=None):
    _require_cargo()
    return maturin.get_requires_for_build_wheel(config_settings)


get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _require_cargo()
    return maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _require_cargo()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _require_cargo()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    _require_cargo()  # maturin reads the crate graph with `cargo metadata`
    return maturin.build_sdist(sdist_directory, config_settings)
