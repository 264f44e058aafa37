"""Embedding, gather/scatter, where, clamp, split, stack, Scale, Bilinear and the
combinators: numpy references, float64 finite-difference gradients, errors."""
import operator

import numpy as np
import pytest

import flux_rs as fx
from test_conv import check_grad

RNG = np.random.default_rng(5)


def test_embedding_lookup_gradient_and_padding():
    e = fx.Embedding(6, 3, init=lambda n, d: fx.tensor(RNG.normal(size=(n, d))))
    idx = np.array([[0, 5, 2], [2, 2, 1]])
    w = np.asarray(e.weight)
    np.testing.assert_array_equal(np.asarray(e(idx)), w[idx])
    assert e(3).shape == (3,)
    u = RNG.normal(size=(2, 3, 3))
    (g,) = fx.gradient(lambda m: (m(idx) * fx.tensor(u)).sum(), e)
    want = np.zeros_like(w)
    np.add.at(want, idx, u)
    np.testing.assert_allclose(np.asarray(g.weight), want, rtol=1e-12)
    # one-hot rows give the same as indices
    oh = np.eye(6)[idx.ravel()].reshape(2, 3, 6)
    np.testing.assert_allclose(np.asarray(e(fx.tensor(oh))), w[idx], rtol=1e-12)
    # padding_idx: zero row, no gradient
    ep = fx.Embedding(5, 2, padding_idx=0)
    assert np.asarray(ep.weight)[0].tolist() == [0.0, 0.0]
    (gp,) = fx.gradient(lambda m: m(np.array([0, 1, 0])).sum(), ep)
    assert np.asarray(gp.weight)[0].tolist() == [0.0, 0.0] and np.asarray(gp.weight)[1].tolist() == [1.0, 1.0]
    assert len(fx.trainables(ep)) == 1 and repr(ep) == "Embedding(5 => 2, padding_idx=0)"
    with pytest.raises(IndexError):
        e(np.array([6]))
    with pytest.raises(IndexError):
        e(np.array([-1]))
    with pytest.raises(ValueError, match="one-hot rows of length 6"):
        e(np.array([0.5]))
    with pytest.raises(TypeError):
        e(np.array(["a"]))


def test_gather_scatter():
    src = RNG.normal(size=(4, 3))
    idx = np.array([[3, 0], [1, 3]])
    np.testing.assert_array_equal(np.asarray(fx.gather(fx.tensor(src), idx)), src[idx])
    check_grad(lambda s: fx.gather(s, idx), src)
    s2 = RNG.normal(size=(2, 2, 3))
    want = np.zeros((5, 3))
    np.add.at(want, idx, s2)
    np.testing.assert_allclose(np.asarray(fx.scatter(fx.tensor(s2), idx, 5)), want, rtol=1e-12)
    check_grad(lambda s: fx.scatter(s, idx, 5), s2)
    m = np.asarray(fx.scatter(fx.tensor([1.0, 2.0, 3.0]), [0, 2, 0], op="mean"))
    np.testing.assert_allclose(m, [2.0, 0.0, 2.0])
    with pytest.raises(IndexError):
        fx.scatter(fx.tensor([1.0]), [3], 2)


def test_where_clamp_split_stack():
    a, b = RNG.normal(size=(3, 4)), RNG.normal(size=(4,))
    c = RNG.random((3, 4)) > 0.5
    np.testing.assert_array_equal(np.asarray(fx.where(c, fx.tensor(a), fx.tensor(b))), np.where(c, a, b))
    check_grad(lambda a, b: fx.where(c, a, b), a, b)
    # the gradient of the branch not taken is zero even where it is NaN
    bad = fx.tensor(np.array([np.nan, 1.0]))
    (ga,) = fx.gradient(lambda x: fx.where(np.array([True, False]), x, bad).sum(), fx.tensor(np.array([1.0, 2.0])))
    assert np.asarray(ga).tolist() == [1.0, 0.0]
    # host data `a` beside a Tensor `b` takes b's dtype (a float64 array included)
    b32, b64 = fx.tensor(b.astype(np.float32)), fx.tensor(b)
    for host, t in ((a, b32), (a.tolist(), b32), (0.5, b64), (a.astype(np.float32), b64)):
        got = fx.where(c, host, t)
        assert got.dtype == t.dtype and got.device == "cpu"
        np.testing.assert_allclose(np.asarray(got), np.where(c, np.asarray(host, t.dtype), np.asarray(t)))
    assert fx.where(c, fx.tensor(a), b32).dtype == np.float64  # two Tensors: promoted
    x = np.array([-2.0, -0.5, 0.3, 0.9, 2.0])
    np.testing.assert_array_equal(np.asarray(fx.clamp(fx.tensor(x), -1, 1)), np.clip(x, -1, 1))
    check_grad(lambda t: fx.clamp(t, -1, 1), x)
    assert np.asarray(fx.clamp(fx.tensor(x), lo=0)).tolist() == [0.0, 0.0, 0.3, 0.9, 2.0]
    with pytest.raises(ValueError):
        fx.clamp(fx.tensor(x), 1, 0)
    y = RNG.normal(size=(2, 7))
    parts = fx.split(fx.tensor(y), [3, 4], dims=1)
    np.testing.assert_array_equal(np.asarray(parts[1]), y[:, 3:])
    check_grad(lambda t: fx.split(t, [3, 4], dims=1)[1] * 2.0 + 1.0, y)
    with pytest.raises(ValueError):
        fx.split(fx.tensor(y), [3, 3], dims=1)
    check_grad(lambda p, q: fx.stack([p, q], 1), a, a * 2)


def test_scale_and_bilinear():
    s = fx.Scale(3, σ=fx.relu)
    assert s.scale.shape == (3,) and s.bias.shape == (3,)
    np.testing.assert_allclose(np.asarray(s(fx.tensor([[-1.0, 2.0, 3.0]]))), [[0.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"\(3,\).*\(1, 4\)"):
        s(fx.ones32(1, 4))
    x, y = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 4))
    b = fx.Bilinear((3, 4), 2, init=lambda *sh: fx.tensor(RNG.normal(size=sh)))
    w = np.asarray(b.weight)
    np.testing.assert_allclose(np.asarray(b((fx.tensor(x), fx.tensor(y)))), np.einsum("bi,oij,bj->bo", x, w, y),
                               rtol=1e-10)
    check_grad(lambda x, y, w: (lambda l: (setattr(l, "weight", w), l(x, y))[1])(b), x, y, w)
    sq = fx.Bilinear(3, 2)
    assert sq(fx.ones32(4, 3)).shape == (4, 2) and sq.weight.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="expects inputs"):
        b((fx.ones32(5, 4), fx.ones32(5, 4)))


def test_combinators():
    d1, d2 = fx.Dense(3, 3), fx.Dense(3, 3)
    x = fx.randn32(4, 3)
    np.testing.assert_allclose(np.asarray(fx.SkipConnection(d1, operator.add)(x)),
                               np.asarray(d1(x)) + np.asarray(x), rtol=1e-6)
    p = fx.Parallel(operator.add, d1, d2)
    np.testing.assert_allclose(np.asarray(p(x)), np.asarray(d1(x)) + np.asarray(d2(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(p(x, x * 2.0)), np.asarray(d1(x)) + np.asarray(d2(x * 2.0)), rtol=1e-6)
    named = fx.Parallel(lambda *ys: fx.cat(ys, 1), a=d1, b=d2)
    assert named.layers.a is d1 and named(x).shape == (4, 6)
    with pytest.raises(ValueError):
        fx.Parallel(operator.add)
    mo = fx.Maxout(d1, d2)
    np.testing.assert_allclose(np.asarray(mo(x)), np.maximum(np.asarray(d1(x)), np.asarray(d2(x))), rtol=1e-6)
    assert len(fx.Maxout(lambda: fx.Dense(2, 2), 3).layers) == 3
    # gradients reach every branch
    (g,) = fx.gradient(lambda m: m(x).sum(), fx.Chain(fx.SkipConnection(d1, operator.add), p))
    assert g.layers[0].layers.weight is not None and g.layers[1].layers[1].weight is not None
    s = repr(fx.Chain(fx.SkipConnection(d1, operator.add), p))
    assert "SkipConnection(" in s and "Parallel(add," in s and "add," in s


def test_chain_errors_name_nested_position():
    m = fx.Chain(fx.Dense(4, 4), fx.Chain(fx.Dense(4, 2), fx.Dense(3, 1)))
    with pytest.raises(ValueError, match=r"layer 1\.1 of the Chain, Dense\(3 => 1\)"):
        m(fx.ones32(2, 4))
