"""The fused Dense op (one GEMM with the bias, activation in place, its own backward)
and the per-op specialised elementwise kernels, against numpy references: values and
gradients for every activation, leading dimensions, float64, no bias, broadcasting
rows and columns, sizes on both sides of the parallel thresholds."""
import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core

ACTS = {
    "identity": (lambda z: z, lambda z, y: np.ones_like(z)),
    "relu": (lambda z: np.maximum(z, 0), lambda z, y: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z, y: 1 - y * y),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, y: y * (1 - y)),
    "leakyrelu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z, y: np.where(z > 0, 1.0, 0.01)),
    "elu": (lambda z: np.where(z >= 0, z, np.expm1(z)), lambda z, y: np.where(z >= 0, 1.0, y + 1.0)),
    "softplus": (lambda z: np.logaddexp(z, 0), lambda z, y: 1 / (1 + np.exp(-z))),
    "swish": (lambda z: z / (1 + np.exp(-z)),
              lambda z, y: (s := 1 / (1 + np.exp(-z))) + z * s * (1 - s)),
}


def reference(x, w, b, act, g):
    """numpy forward and backward of act(x @ w.T + b) with output gradient g."""
    f, df = ACTS[act]
    z = x @ w.T + (0 if b is None else b)
    y = f(z)
    dz = g * df(z, y)
    return y, dz @ w, dz.T @ x, dz.sum(0)


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 2e-4)])
def test_dense_value_and_gradients(act, dtype, rtol):
    rng = np.random.default_rng(len(act))
    x = rng.normal(size=(7, 5)).astype(dtype)
    w = rng.normal(size=(3, 5)).astype(dtype)
    b = rng.normal(size=3).astype(dtype)
    g = rng.normal(size=(7, 3)).astype(dtype)
    tx, tw, tb = fx.tensor(x), fx.tensor(w), fx.tensor(b)
    gx, gw, gb = fx.gradient(lambda x, w, b: (_core.dense(x, w, b, act) * fx.tensor(g)).sum(), tx, tw, tb)
    y, rx, rw, rb = reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), act, g.astype(np.float64))
    np.testing.assert_allclose(np.asarray(_core.dense(tx, tw, tb, act)), y, rtol=rtol, atol=rtol)
    for got, want in ((gx, rx), (gw, rw), (gb, rb)):
        assert np.asarray(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=rtol)


def test_dense_leading_dims_no_bias_and_big_sizes():
    rng = np.random.default_rng(1)
    # big enough for the parallel GEMM and elementwise paths
    x = rng.normal(size=(2, 300, 130))
    w = rng.normal(size=(70, 130)) / 10
    g = rng.normal(size=(2, 300, 70))
    tx, tw = fx.tensor(x), fx.tensor(w)
    gx, gw = fx.gradient(lambda x, w: (_core.dense(x, w, None, "tanh") * fx.tensor(g)).sum(), tx, tw)
    y, rx, rw, _ = reference(x.reshape(600, 130), w, None, "tanh", g.reshape(600, 70))
    np.testing.assert_allclose(np.asarray(_core.dense(tx, tw, None, "tanh")), y.reshape(2, 300, 70), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gx), rx.reshape(2, 300, 130), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(gw), rw, rtol=1e-9, atol=1e-9)


def test_two_layers_match_finite_differences():
    rng = np.random.default_rng(2)
    x, w1, w2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    x, b1 = fx.tensor(x), fx.tensor(rng.normal(size=4))

    def loss(w1, w2):
        return (_core.dense(_core.dense(x, w1, b1, "softplus"), w2, None, "identity") ** 2).sum()

    g1, g2 = fx.gradient(loss, w1, w2)
    eps = 1e-6
    for w, g, other in ((w1, g1, w2), (w2, g2, w1)):
        for (i, j) in [(0, 0), (1, 2), (1, 1)]:
            d = np.zeros_like(w)
            d[i, j] = eps
            f = (lambda v: loss(fx.tensor(v), fx.tensor(other))) if w is w1 else (lambda v: loss(fx.tensor(other), fx.tensor(v)))
            fd = (f(w + d).item() - f(w - d).item()) / (2 * eps)
            assert abs(fd - np.asarray(g)[i, j]) < 1e-6 * max(1.0, abs(fd))


@pytest.mark.parametrize("n", [5, 40_000, 300_000])
def test_elementwise_kernels_both_sides_of_thresholds(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=n).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    ta, tb = fx.tensor(a), fx.tensor(b)
    np.testing.assert_array_equal(np.asarray(ta + tb), a + b)
    np.testing.assert_array_equal(np.asarray(ta * tb), a * b)
    np.testing.assert_array_equal(np.asarray(fx.maximum(ta, tb)), np.maximum(a, b))
    np.testing.assert_array_equal(np.asarray(fx.relu(ta)), np.maximum(a, 0))
    np.testing.assert_array_equal(np.asarray(ta > tb), (a > b).astype(np.float32))
    np.testing.assert_allclose(np.asarray(ta.tanh()), np.tanh(a), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(ta.exp()), np.exp(a), rtol=2e-6)
    (ga,) = fx.gradient(lambda t: t.tanh().sum(), ta)
    np.testing.assert_allclose(np.asarray(ga), 1 - np.tanh(a) ** 2, rtol=1e-5, atol=1e-6)


def test_broadcast_rows_and_columns():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(6, 33))
    row, col = rng.normal(size=33), rng.normal(size=(6, 1))
    tm = fx.tensor(m)
    np.testing.assert_array_equal(np.asarray(tm + fx.tensor(row)), m + row)
    np.testing.assert_array_equal(np.asarray(fx.tensor(row) - tm), row - m)
    np.testing.assert_array_equal(np.asarray(tm / fx.tensor(col)), m / col)
    np.testing.assert_array_equal(np.asarray(fx.tensor(col) * fx.tensor(row)), col * row)
    # a transposed (non-contiguous) operand takes the general path
    np.testing.assert_array_equal(np.asarray(tm.T + fx.tensor(col.T)), m.T + col.T)
    big = rng.normal(size=(3, 40, 50))
    np.testing.assert_array_equal(np.asarray(fx.tensor(big) - fx.tensor(big.max(-1, keepdims=True))),
                                  big - big.max(-1, keepdims=True))
