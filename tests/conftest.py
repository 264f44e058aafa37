"""Shared fixtures: MNIST for the slow training tests, and a finite-difference
gradient checker.

The training tests use the full MNIST (../shared/data/mnist.npz beside the repo, or
data/mnist.npz) when it is there, and otherwise the 20,000/5,000-image subset that ships
in data/mnist_subset.npz, with the accuracy that subset supports. They never skip:
the end of the pytest run says which set they used. FLUX_RS_FULL_MNIST=1 demands
the full set (an error if it is missing)."""
import ast
import inspect
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST_CANDIDATES = [ROOT.parent / "shared" / "data" / "mnist.npz", ROOT / "data" / "mnist.npz"]
MNIST_SUBSET = ROOT / "data" / "mnist_subset.npz"
FULL_MNIST_VAR = "FLUX_RS_FULL_MNIST"


@dataclass(frozen=True)
class MnistSource:
    path: Path
    full: bool  # the 60,000/10,000 set; else the shipped subset


def mnist_source() -> MnistSource:
    """The full MNIST if present, else the shipped subset; the full set is an error to
    lack when FLUX_RS_FULL_MNIST=1."""
    for p in MNIST_CANDIDATES:
        if p.exists():
            return MnistSource(p, True)
    if os.environ.get(FULL_MNIST_VAR, "") not in ("", "0"):
        raise FileNotFoundError(f"{FULL_MNIST_VAR} is set but the full MNIST is in none of "
                                f"{[str(p) for p in MNIST_CANDIDATES]}")
    return MnistSource(MNIST_SUBSET, False)


def mnist_path() -> Path:
    return mnist_source().path


_mnist_used: list[MnistSource] = []


def pytest_terminal_summary(terminalreporter):
    # shown even with -q: which MNIST the training tests that ran have used
    for src in dict.fromkeys(_mnist_used):
        what = "the full set" if src.full else f"the shipped subset (set {FULL_MNIST_VAR}=1 to require the full set)"
        terminalreporter.write_line(f"MNIST training tests used {what}: {src.path}")


def load_mnist(images: str = "flat"):
    """(x_train, y_train, x_test, y_test, source): images scaled to [0, 1] as float32,
    flat (n, 784) or as (n, 1, 28, 28) for convolutions."""
    src = mnist_source()
    _mnist_used.append(src)
    d = np.load(src.path)
    shape = (-1, 784) if images == "flat" else (-1, 1, 28, 28)
    prep = lambda x: (x.reshape(shape) / 255.0).astype(np.float32)  # noqa: E731
    return prep(d["x_train"]), d["y_train"], prep(d["x_test"]), d["y_test"], src


@pytest.fixture(scope="session")
def mnist():
    return load_mnist("flat")


def numgrad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function of a float64 array."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = float(f(x))
        x[i] = old - eps
        fm = float(f(x))
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


# ---- layers as shells over one Rust call ---------------------------------------------

# queries that decide a mode, not computations
NOT_COMPUTING = {"is_recording"}


def core_calls(f, *args):
    """Names of the `_core` functions (and Tensor methods) that `f(*args)` calls: how
    the tests show that a Python layer is a shell over one Rust call."""
    import flux_rs as fx
    from flux_rs import _core
    seen = []

    def prof(frame, event, arg):
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            if owner is _core:
                seen.append(arg.__name__)
            elif isinstance(owner, fx.Tensor):
                seen.append("Tensor." + arg.__name__)

    sys.setprofile(prof)
    try:
        out = f(*args)
    finally:
        sys.setprofile(None)
    return out, [n for n in seen if n not in NOT_COMPUTING]


def no_arithmetic(cls):
    """The layer's __call__ has no operator expressions (+, *, @, …): nothing in Python
    computes on tensors."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__call__)))
    def arithmetic(n):
        return isinstance(n, (ast.BinOp, ast.AugAssign)) or (isinstance(n, ast.UnaryOp) and not isinstance(n.op, ast.Not))
    return not any(arithmetic(n) for n in ast.walk(tree))
