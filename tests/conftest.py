"""Shared fixtures: the MNIST file beside the repo (../shared/data/mnist.npz) for the
slow training tests, and a finite-difference gradient checker."""
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST_CANDIDATES = [ROOT.parent / "shared" / "data" / "mnist.npz", ROOT / "data" / "mnist.npz"]


def mnist_path() -> Path:
    for p in MNIST_CANDIDATES:
        if p.exists():
            return p
    if os.environ.get("CI"):
        raise FileNotFoundError(f"MNIST not found in {MNIST_CANDIDATES}; CI must have ../shared beside the repo")
    pytest.skip("full MNIST (../shared/data/mnist.npz) is not present on this machine")


@pytest.fixture(scope="session")
def mnist():
    d = np.load(mnist_path())
    prep = lambda x: (x.reshape(len(x), -1) / 255.0).astype(np.float32)
    return prep(d["x_train"]), d["y_train"], prep(d["x_test"]), d["y_test"]


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
