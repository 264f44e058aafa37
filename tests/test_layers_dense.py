"""Dense and Chain: shapes, dtypes, initialisers, errors that name the layer."""
import numpy as np
import pytest

import flux_rs as fx


def test_dense_matches_numpy_and_flux_layout():
    d = fx.Dense(3, 2, fx.relu, init=fx.glorot_uniform(rng=0))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    w, b = np.asarray(d.weight), np.asarray(d.bias)
    assert w.shape == (2, 3) and b.shape == (2,) and b.tolist() == [0.0, 0.0]
    np.testing.assert_allclose(np.asarray(d(x)), np.maximum(x @ w.T + b, 0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(d(x[0])), np.maximum(x[0] @ w.T + b, 0), rtol=1e-6)  # a single sample
    assert repr(d) == "Dense(3 => 2, relu)"


def test_dense_options():
    assert fx.Dense(2, 3, bias=False).bias is False
    assert fx.trainables(fx.Dense(2, 3, bias=False))[0].shape == (3, 2)
    d = fx.Dense(2, 1, init=fx.ones)
    assert d.weight.dtype == np.float64 and d.bias.dtype == np.float64
    d = fx.Dense(2, 2, bias=np.array([1.0, 2.0]))
    assert np.asarray(d.bias).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"bias of shape \(2,\)"):
        fx.Dense(2, 2, bias=np.ones(3))
    # a Python activation that has no fused kernel still works
    d = fx.Dense(2, 2, lambda y: y * 2, init=fx.ones)
    assert np.asarray(d(np.ones((1, 2)))).tolist() == [[4.0, 4.0]]


def test_same_seed_same_weights():
    fx.seed(3)
    a = fx.Dense(4, 4).weight.tolist()
    fx.seed(3)
    assert fx.Dense(4, 4).weight.tolist() == a
    assert fx.Dense(4, 4, rng=fx.Rng(5)).weight.tolist() == fx.Dense(4, 4, rng=fx.Rng(5)).weight.tolist()
    lim = np.sqrt(6 / (300 + 200))
    w = np.asarray(fx.glorot_uniform(300, 200, rng=1))
    assert w.dtype == np.float32 and np.abs(w).max() <= lim and abs(w.std() - lim / np.sqrt(3)) < 0.01 * lim


def test_shape_errors_name_the_layer_and_shapes():
    m = fx.Chain(fx.Dense(4, 3), fx.Dense(2, 1))
    with pytest.raises(ValueError, match=r"layer 1 .*Dense\(2 => 1\).*last dimension 2.*\[5, 3\]"):
        m(np.ones((5, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"layer 0"):
        m(np.ones((5, 7), dtype=np.float32))


def test_float64_input_to_float32_layer_converts():
    import flux_rs.layers
    flux_rs.layers._warned_f64 = False
    d = fx.Dense(2, 1)
    with pytest.warns(UserWarning, match="float64 input"):
        y = d(np.ones((1, 2)))
    assert y.dtype == np.float32


def test_chain_indexing_and_named_layers():
    a, b, c = fx.Dense(2, 3), fx.Dense(3, 3), fx.Dense(3, 1)
    m = fx.Chain(a, b, c)
    assert m[0] is a and m[-1] is c and len(m) == 3
    assert m[0:2].layers == (a, b)
    n = fx.Chain(enc=a, dec=b)
    assert n.layers.enc is a and n[1] is b and n["dec"] is b
    assert "enc=Dense(2 => 3)" in repr(n)
    with pytest.raises(TypeError):
        fx.Chain(a, dec=b)


def test_float64_input_warns_once_at_the_callers_line(monkeypatch):
    import warnings
    import flux_rs.layers as L
    monkeypatch.setattr(L, "_warned_f64", False)
    d = fx.Dense(2, 3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        y = d(np.ones((1, 2)))  # float64 into a float32 layer: converted (in _core.dense)
        d(np.ones((1, 2)))
    assert y.dtype == np.float32
    assert len(w) == 1 and "float64 input" in str(w[0].message)
    assert w[0].filename == __file__
