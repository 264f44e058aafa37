"""fx.gradient / fx.withgradient with Flux (Zygote) semantics: one gradient per
argument, structural gradients of models, (loss, aux) outputs, finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import flux_rs as fx
from conftest import numgrad


def test_flux_docstring_examples():
    assert fx.gradient(lambda a, b, c: a * b * c, 2.0, 3.0, 5.0) == (15.0, 10.0, 6.0)
    (g,) = fx.gradient(lambda x: (x ** 2).sum(), np.array([7.0, 11.0, 13.0]))
    np.testing.assert_allclose(np.asarray(g), [14.0, 22.0, 26.0])
    # an argument used only for its value as an int has no gradient
    g = fx.gradient(lambda x, y, d: (x ** x.shape[d - 1] + y).sum(), np.array([7.0, 11.0]), 0.0, 1)
    np.testing.assert_allclose(np.asarray(g[0]), [14.0, 22.0])
    assert g[1] == 2.0 and g[2] is None


def test_pow_gradients_follow_chainrules_at_zero_and_for_negative_bases():
    # ChainRules' _pow_grad_x / _pow_grad_p: at x = 0 the removable-singularity limits
    # (not 0·∞ = NaN), and ∂p uses ln|x| for x < 0 (the real part of the complex log)
    x = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, -2.0, 3.0])
    p = np.array([0.0, 1.0, 2.0, 0.5, -1.0, 3.0, 2.0, 0.5])
    gx, gp = fx.gradient(lambda x, p: (x ** p).sum(), x, p)
    np.testing.assert_allclose(np.asarray(gx), [0.0, 1.0, 0.0, np.inf, -np.inf, 12.0, -4.0, 0.5 / np.sqrt(3.0)])
    np.testing.assert_allclose(np.asarray(gp), [np.nan, 0.0, 0.0, 0.0, np.nan, 8 * np.log(2), 4 * np.log(2), np.sqrt(3) * np.log(3)])
    # away from the edge cases both agree with finite differences
    xs, ps = np.array([0.7, 1.9]), np.array([1.3, 2.2])
    gx, gp = fx.gradient(lambda x, p: (x ** p).sum(), xs, ps)
    np.testing.assert_allclose(np.asarray(gx), numgrad(lambda v: (v ** ps).sum(), xs), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gp), numgrad(lambda v: (xs ** v).sum(), ps), rtol=1e-6)


def test_withgradient_of_tuple_output_differentiates_first_element():
    val, (g,) = fx.withgradient(lambda x: ((1 / x).sum(), 1 / x), np.array([1.0, 2.0, 4.0]))
    assert val[0].item() == 1.75
    np.testing.assert_allclose(np.asarray(val[1]), [1.0, 0.5, 0.25])
    np.testing.assert_allclose(np.asarray(g), [-1.0, -0.25, -0.0625])
    val, grad = fx.withgradient(lambda x, y: (x / y, x * y), 3.0, 4.0)
    assert val[0].item() == 0.75 and val[1].item() == 12.0
    assert grad == (0.25, -0.1875)


def test_structural_gradient_of_a_chain():
    m = fx.Chain(fx.Dense(2, 3, fx.tanh), fx.Dense(3, 1))
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    (g,) = fx.gradient(lambda m: m(x).sum(), m)
    assert isinstance(g.layers, tuple) and len(g.layers) == 2
    assert g.layers[0].weight.shape == (3, 2) and g.layers[0].bias.shape == (3,)
    assert g.layers[0].σ is None and g[0][1].weight.dtype == np.float32
    named = fx.Chain(enc=fx.Dense(2, 2), dec=fx.Dense(2, 1))
    (gn,) = fx.gradient(lambda m: m(x).sum(), named)
    assert gn.layers.enc.weight.shape == (2, 2) and gn.layers.dec.bias.shape == (1,)


def test_unused_parameters_and_constant_losses_give_none():
    m = {"a": fx.tensor(np.ones(2)), "b": fx.tensor(np.ones(2))}
    (g,) = fx.gradient(lambda m: (m["a"] * 2).sum(), m)
    assert g["b"] is None and np.asarray(g["a"]).tolist() == [2.0, 2.0]
    assert fx.gradient(lambda x: 1.0, np.ones(2)) == (None,)


def test_plain_objects_train_without_registration_and_ties_count_once():
    class Model:
        def __init__(self):
            self.w = fx.tensor(np.array([1.0, 2.0]))
            self.tied = self.w
            self.scale = 3.0
            self.name = "m"

    m = Model()
    (g,) = fx.gradient(lambda m: (m.w * m.tied).sum() * m.scale, m)
    # d/dw of 3·Σw² is 6w, reported once (at the first place the tensor appears)
    np.testing.assert_allclose(np.asarray(g.w), [6.0, 12.0])
    assert g.tied is None and g.scale is None and g.name is None
    st = fx.setup(fx.Descent(0.1), m)
    assert st.w is st.tied
    fx.update_(st, m, g)
    np.testing.assert_allclose(np.asarray(m.w), [0.4, 0.8])


def test_layer_decorator_restricts_trainables():
    @fx.layer(trainable=("w",))
    class Affine:
        def __init__(self):
            self.w = fx.tensor(np.array([2.0]))
            self.b = fx.tensor(np.array([1.0]))

        def __call__(self, x):
            return self.w * x + self.b

    m = Affine()
    assert len(fx.trainables(m)) == 1
    st = fx.setup(fx.Descent(1.0), m)
    assert st.b is None
    (g,) = fx.gradient(lambda m: m(3.0).sum(), m)
    assert np.asarray(g.b).tolist() == [1.0]  # gradients cover every field …
    fx.update_(st, m, g)
    assert np.asarray(m.w).tolist() == [-1.0] and np.asarray(m.b).tolist() == [1.0]  # … updates only trainables


def test_errors_restore_a_clean_tape():
    with pytest.raises(ValueError, match="scalar loss"):
        fx.gradient(lambda x: x * 2, np.ones(3))
    with pytest.raises(ZeroDivisionError):
        fx.gradient(lambda x: 1 / 0, np.ones(3))
    with pytest.raises(TypeError, match="scalar Tensor"):
        fx.gradient(lambda x: "nope", np.ones(3))
    with pytest.raises(RuntimeError, match="nested"):
        fx.gradient(lambda x: fx.gradient(lambda y: (y * y).sum(), x)[0].sum(), np.ones(2))
    # the tape is closed after each failure: a plain gradient works
    (g,) = fx.gradient(lambda x: (x * x).sum(), np.ones(2))
    assert np.asarray(g).tolist() == [2.0, 2.0]


def _loss(w, b, x):
    h = fx.tanh(x @ w.T + b)
    return (fx.softmax(h).log() * h).sum() + fx.maximum(h, 0.1).mean() + (h.max(dims=1) ** 2).sum()


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_composite_gradients_match_finite_differences(nin, nout, batch, seed):
    rng = np.random.default_rng(seed)
    w, b, x = rng.normal(size=(nout, nin)), rng.normal(size=nout), rng.normal(size=(batch, nin))
    gw, gb = fx.gradient(lambda w, b: _loss(w, b, fx.tensor(x)), w, b)
    f_w = lambda v: _loss(fx.tensor(v), fx.tensor(b), fx.tensor(x)).item()
    f_b = lambda v: _loss(fx.tensor(w), fx.tensor(v), fx.tensor(x)).item()
    np.testing.assert_allclose(np.asarray(gw), numgrad(f_w, w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gb), numgrad(f_b, b), rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=3), elements=st.floats(0.2, 3.0)))
def test_elementwise_and_indexing_gradients(a):
    f = lambda t: ((t.sqrt() * t.exp()).sum() + fx.softplus(t)[..., :1].sum() + (t ** 3).mean() + fx.logsoftmax(t.reshape(-1)).sum())
    (g,) = fx.gradient(f, a)
    np.testing.assert_allclose(np.asarray(g), numgrad(lambda v: f(fx.tensor(v)).item(), a), rtol=1e-5, atol=1e-6)


def test_float32_gradients_stay_float32():
    (g,) = fx.gradient(lambda x: (x * x).sum(), fx.ones32(3))
    assert g.dtype == np.float32
