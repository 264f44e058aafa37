"""Initialisers (spec §9.1) in PyTorch layouts: shapes, float32, statistics of large
draws against the formulas, orthogonality, reproducibility, errors."""
import math

import numpy as np
import pytest

import flux_rs as fx

INITS = [fx.glorot_uniform, fx.glorot_normal, fx.kaiming_uniform, fx.kaiming_normal, fx.truncated_normal,
         fx.lecun_normal, fx.orthogonal, fx.identity_init]


@pytest.mark.parametrize("init", INITS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(3, 4), (5, 2), (4, 3, 3, 3)])
def test_shape_dtype_and_reproducible(init, shape):
    a = init(*shape, rng=5)
    assert a.shape == shape and a.dtype == np.float32
    assert np.array_equal(np.asarray(a), np.asarray(init(*shape, rng=fx.Rng(5))))
    fx.seed(11)
    b = np.asarray(init(*shape))
    fx.seed(11)
    assert np.array_equal(b, np.asarray(init(*shape)))
    assert init(*shape, dtype="float64").dtype == np.float64


def test_leading_rng_and_closures():
    a = fx.glorot_uniform(fx.Rng(3), 4, 5)
    assert np.array_equal(np.asarray(a), np.asarray(fx.glorot_uniform(4, 5, rng=3)))
    g2 = fx.kaiming_normal(gain=2.0)
    assert callable(g2) and g2(10, 10).shape == (10, 10)
    d = fx.Dense(3, 4, init=fx.orthogonal(gain=2.0))
    w = np.asarray(d.weight).astype(np.float64)
    np.testing.assert_allclose(w.T @ w, 4 * np.eye(3), atol=1e-5)
    with pytest.raises(TypeError, match="gain"):
        fx.glorot_uniform(2, 2, gian=3)


def stats(x):
    x = np.asarray(x, dtype=np.float64)
    return x.mean(), x.std()


def test_glorot_and_kaiming_statistics():
    shape = (400, 300)  # fan_in 300, fan_out 400
    a = math.sqrt(6 / 700)
    x = np.asarray(fx.glorot_uniform(*shape, rng=1))
    assert np.abs(x).max() <= a
    m, s = stats(x)
    assert abs(m) < 0.01 * a and s == pytest.approx(a / math.sqrt(3), rel=0.02)
    m, s = stats(fx.glorot_normal(*shape, gain=2, rng=2))
    assert abs(m) < 0.01 and s == pytest.approx(2 * math.sqrt(2 / 700), rel=0.02)
    b = math.sqrt(2) * math.sqrt(3 / 300)
    x = np.asarray(fx.kaiming_uniform(*shape, rng=3))
    assert np.abs(x).max() <= b * (1 + 1e-6)
    assert stats(x)[1] == pytest.approx(b / math.sqrt(3), rel=0.02)
    assert stats(fx.kaiming_normal(*shape, rng=4))[1] == pytest.approx(math.sqrt(2) / math.sqrt(300), rel=0.02)
    # conv fans (out, in, k, k): fan_in = in·k·k
    assert stats(fx.kaiming_normal(64, 16, 3, 3, rng=5))[1] == pytest.approx(math.sqrt(2 / 144), rel=0.03)


def _truncnorm_std(lo, hi):
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    Z = Phi(hi) - Phi(lo)
    mean = (phi(lo) - phi(hi)) / Z
    var = 1 + (lo * phi(lo) - hi * phi(hi)) / Z - mean ** 2
    return mean, math.sqrt(var)


def test_truncated_normal():
    x = np.asarray(fx.truncated_normal(200_000, rng=0), dtype=np.float64)
    assert x.min() >= -2 and x.max() <= 2
    m, s = _truncnorm_std(-2, 2)
    assert x.mean() == pytest.approx(m, abs=0.01) and x.std() == pytest.approx(s, rel=0.01)
    y = np.asarray(fx.truncated_normal(100_000, mean=1.0, std=0.5, lo=0.5, hi=3.0, rng=1), dtype=np.float64)
    assert y.min() >= 0.5 and y.max() <= 3.0
    m, s = _truncnorm_std(-1.0, 4.0)
    assert y.mean() == pytest.approx(1.0 + 0.5 * m, abs=0.01) and y.std() == pytest.approx(0.5 * s, rel=0.02)
    with pytest.raises(ValueError):
        fx.truncated_normal(3, lo=1, hi=0)


def test_lecun_normal():
    x = np.asarray(fx.lecun_normal(500, 400, rng=2), dtype=np.float64)
    assert x.std() == pytest.approx(math.sqrt(1 / 400), rel=0.02)
    assert np.abs(x).max() <= 2


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (8, 2, 3, 3), (2, 4, 3)])
def test_orthogonal(shape):
    q = np.asarray(fx.orthogonal(*shape, gain=1.5, rng=9), dtype=np.float64).reshape(shape[0], -1)
    r, c = q.shape
    if r <= c:
        np.testing.assert_allclose(q @ q.T, 2.25 * np.eye(r), atol=1e-5)
    if r >= c:
        np.testing.assert_allclose(q.T @ q, 2.25 * np.eye(c), atol=1e-5)


def test_orthogonal_is_haar_not_biased():
    # with the sign fix, the average of Q over many draws is ≈ 0 (no systematic diagonal)
    acc = sum(np.asarray(fx.orthogonal(4, 4, rng=i), dtype=np.float64) for i in range(400)) / 400
    assert np.abs(acc).max() < 0.15
    with pytest.raises(ValueError, match="2 dimensions"):
        fx.orthogonal(5)


def test_sparse_init():
    t = fx.sparse_init(20, 30, sparsity=0.25, std=0.5, rng=3)
    assert t.shape == (20, 30) and t.dtype == np.float32
    w = np.asarray(t, dtype=np.float64)
    zeros_per_col = (w == 0).sum(axis=0)
    assert np.all(zeros_per_col == math.ceil(0.25 * 20))
    # the zeros are not all in the same rows
    assert len({tuple(np.flatnonzero(w[:, j] == 0)) for j in range(30)}) > 1
    nz = w[w != 0]
    assert nz.std() == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValueError, match="2-dimensional"):
        fx.sparse_init(2, 3, 4, sparsity=0.1)
    with pytest.raises(TypeError, match="sparsity"):
        fx.sparse_init(2, 3)


def test_identity_init():
    assert np.asarray(fx.identity_init(3)).tolist() == [0, 0, 0]
    np.testing.assert_array_equal(np.asarray(fx.identity_init(2, 3, gain=2)), [[2, 0, 0], [0, 2, 0]])
    # circular shift of the rows (Flux's first dimension)
    np.testing.assert_array_equal(np.asarray(fx.identity_init(3, 3, shift=1)), np.roll(np.eye(3), 1, axis=0))
    w = np.asarray(fx.identity_init(4, 3, 3, 5))
    expect = np.zeros((4, 3, 3, 5), np.float32)
    for i in range(3):
        expect[i, i, 1, 2] = 1
    np.testing.assert_array_equal(w, expect)
    # a conv with an identity kernel is the identity map on its channels
    x = fx.randn32(1, 3, 5, 5)
    if hasattr(fx, "Conv"):
        c = fx.Conv((3, 3), 3, 3, pad=1, init=fx.identity_init)
        np.testing.assert_allclose(np.asarray(c(x)), np.asarray(x), atol=1e-6)
    # a shift on the first spatial dimension (Flux's dim 1 of a kernel)
    ws = np.asarray(fx.identity_init(2, 2, 3, 3, shift=1))
    np.testing.assert_array_equal(ws, np.roll(np.asarray(fx.identity_init(2, 2, 3, 3)), 1, axis=2))
