"""Packaging: the release wheel is manylinux abi3, the sdist is complete and builds
metadata, the package metadata carries the README, and a source build without Rust
stops at once with a message that says to install it."""
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.utils import parse_sdist_filename, parse_wheel_filename

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None or shutil.which("maturin") is None,
                                 reason="building needs cargo and maturin")


def test_pyproject_carries_the_readme_and_the_plot_extra():
    project = PYPROJECT["project"]
    assert project["readme"] == "README.md" and (ROOT / "README.md").exists()
    assert any(r.startswith("matplotlib") for r in project["optional-dependencies"]["plot"])
    assert PYPROJECT["build-system"]["build-backend"] == "flux_rs_build"
    assert (ROOT / PYPROJECT["build-system"]["backend-path"][0] / "flux_rs_build.py").exists()


def _path_without_cargo(tmp_path: Path) -> str:
    # only the interpreter of this venv (and its maturin), as on a machine without Rust
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return str(bin_dir)


@pytest.mark.parametrize("hook", ["get_requires_for_build_wheel()", "prepare_metadata_for_build_wheel('.')",
                                  "build_wheel('.')", "build_sdist('.')", "build_editable('.')"])
def test_backend_without_cargo_says_to_install_rust(tmp_path, hook):
    env = dict(os.environ, PATH=_path_without_cargo(tmp_path), PYTHONPATH=str(ROOT / "build_backend"))
    env.pop("MATURIN_NO_INSTALL_RUST", None)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", f"import flux_rs_build as b; b.{hook}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and time.perf_counter() - t0 < 30
    assert "https://rustup.rs" in r.stderr and "cargo" in r.stderr, r.stderr
    assert "puccinialin" not in r.stdout + r.stderr and "installing" not in r.stdout.lower()


def test_pip_install_without_cargo_stops_at_once(tmp_path):
    env = dict(os.environ, PATH=_path_without_cargo(tmp_path), PIP_NO_INPUT="1")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w",
                        str(tmp_path / "out"), str(ROOT)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and time.perf_counter() - t0 < 60
    assert "https://rustup.rs" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@needs_cargo
def test_sdist_holds_the_whole_source_and_yields_metadata(tmp_path):
    r = subprocess.run(["maturin", "sdist", "-o", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    (sdist,) = tmp_path.glob("*.tar.gz")
    name, version = parse_sdist_filename(sdist.name)
    assert (name, str(version)) == ("flux-rs", PYPROJECT["project"]["version"])
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    (src,) = (tmp_path / "src").iterdir()
    for f in ["pyproject.toml", "README.md", "Cargo.toml", "Cargo.lock", "build_backend/flux_rs_build.py",
              "src/lib.rs", "rust/Cargo.toml", "rust/src/lib.rs", "python/flux_rs/__init__.py",
              "python/flux_rs/py.typed"]:
        assert (src / f).is_file(), f
    assert "Description-Content-Type: text/markdown" in (src / "PKG-INFO").read_text()
    # the unpacked sdist is a complete cargo workspace and its backend produces the metadata
    meta = subprocess.run(["cargo", "metadata", "--offline", "--format-version", "1", "--no-deps"], cwd=src,
                          capture_output=True, text=True, timeout=120)
    assert meta.returncode == 0, meta.stderr
    out = tmp_path / "meta"
    out.mkdir()
    code = f"import flux_rs_build as b; print(b.prepare_metadata_for_build_wheel({str(out)!r}))"
    r = subprocess.run([sys.executable, "-c", code], cwd=src, env=dict(os.environ, PYTHONPATH=str(src / "build_backend")),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (dist_info,) = out.glob("*.dist-info")
    metadata = (dist_info / "METADATA").read_text()
    assert "Requires-Dist: numpy" in metadata and "Provides-Extra: plot" in metadata
    assert "## The two commands" in metadata  # the README is the long description


def _glibc(platform: str) -> int:
    """The glibc a manylinux tag needs, as 2017 for 2.17; 0 for a tag that is not manylinux."""
    if platform.startswith("manylinux2014_"):
        return 2017
    parts = platform.split("_")
    return 1000 * int(parts[1]) + int(parts[2]) if parts[0] == "manylinux" else 0


@needs_cargo
@pytest.mark.slow
def test_release_wheel_is_manylinux_abi3(tmp_path):
    # zig links against glibc 2.17's symbols (the system's glibc is newer); a full release
    # build for the target triple the first time (target/x86_64-unknown-linux-gnu), then cached
    pytest.importorskip("ziglang", reason="the manylinux wheel is linked by zig: pip install ziglang "
                        "(scripts/test.sh --all installs it)")
    r = subprocess.run(["maturin", "build", "--release", "--zig", "--compatibility", "manylinux2014", "-o",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    # the wgpu backend is built in; issue 13 keeps the wheel under 10 MB
    assert wheel.stat().st_size < 10 * 2**20, f"{wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB"
    name, _, _, tags = parse_wheel_filename(wheel.name)
    assert name == "flux-rs"
    assert {(t.interpreter, t.abi) for t in tags} == {("cp310", "abi3")}
    # manylinux2014 (glibc 2.17) or a later manylinux_2_x that every maintained distribution has
    assert all(2017 <= _glibc(t.platform) <= 2028 and t.platform.endswith("_x86_64") for t in tags), tags
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        wheel_meta = z.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {Tag(*line.split(": ")[1].split("-")) for line in wheel_meta.splitlines() if line.startswith("Tag: ")} \
        == set(tags)
    assert any(n.startswith("flux_rs/_core") and n.endswith(".abi3.so") for n in names), names
    assert "Description-Content-Type: text/markdown" in metadata and "## The two commands" in metadata
