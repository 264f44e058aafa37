"""The normalisation, dropout and embedding layers are shells over one Rust call each:
no tensor arithmetic in Python, exactly one computing `_core` function per call, and
the same bits as the Rust layers (`flux_core::nn::{norm, dropout}`) built from the same
parameters."""
import numpy as np
import pytest

import flux_rs as fx
from conftest import core_calls, no_arithmetic
from flux_rs import _core

RNG = np.random.default_rng(12)


def x32(*shape):
    return fx.tensor(RNG.normal(size=shape).astype(np.float32))


@pytest.mark.parametrize("make, x, op", [
    (lambda: fx.BatchNorm(3, fx.relu, active=True), (4, 3, 5, 5), "batchnorm"),
    (lambda: fx.BatchNorm(3, active=False), (4, 3, 5), "batchnorm"),
    (lambda: fx.InstanceNorm(3, affine=True, track_stats=True, active=True), (4, 3, 5), "instancenorm"),
    (lambda: fx.GroupNorm(4, 2, fx.tanh), (2, 4, 3, 3), "groupnorm"),
    (lambda: fx.LayerNorm(5, fx.gelu), (3, 4, 5), "layernorm"),
    (lambda: fx.Dropout(0.5, active=True), (4, 6), "dropout"),
    (lambda: fx.AlphaDropout(0.5, active=True), (4, 6), "alpha_dropout"),
])
def test_each_layer_is_one_rust_call(make, x, op):
    lay = make()
    xt = x32(*x)
    _, calls = core_calls(lay, xt)
    assert calls == [op], calls
    # inside a gradient too (the backward is the op's own rule: one tape node)
    inside = []

    def loss(m):
        y, c = core_calls(m, xt)
        inside.extend(c)
        return y.sum()
    fx.withgradient(loss, lay)
    assert inside == [op], inside
    assert no_arithmetic(type(lay)), f"{type(lay).__name__}.__call__ computes in Python"


def test_embedding_is_one_rust_call():
    e = fx.Embedding(6, 3, padding_idx=2)
    _, calls = core_calls(e, np.array([[0, 2], [5, 1]]))
    assert calls == ["embedding"], calls


def test_unknown_activation_is_applied_after_the_fused_op():
    def twice(y):
        return y * 2.0
    bn = fx.BatchNorm(3, twice, active=True)
    x = x32(4, 3, 2)
    y, calls = core_calls(bn, x)
    assert calls[0] == "batchnorm"
    ref = fx.BatchNorm(3, active=True)(x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ref) * 2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("train", [True, False])
def test_norms_bit_identical_to_the_rust_layers(dtype, train):
    x = fx.tensor(RNG.normal(size=(4, 6, 3, 5)) * 2 + 1, dtype)
    init = lambda n: fx.tensor(RNG.normal(size=n), dtype)  # noqa: E731
    # BatchNorm with running statistics already moved away from (0, 1)
    bn = fx.BatchNorm(6, fx.relu, initγ=init, initβ=init, active=True)
    bn(x)
    bn.active = train
    mu, var = np.asarray(bn.μ).copy(), np.asarray(bn.σ2).copy()
    want, m2, v2 = _core._module_forward("BatchNorm", x, train, chs=6, gamma=bn.γ, beta=bn.β,
                                         running_mean=fx.tensor(mu, dtype), running_var=fx.tensor(var, dtype),
                                         act="relu", momentum=0.1)
    got = bn(x)
    assert np.asarray(got).tobytes() == np.asarray(want).tobytes()
    assert np.asarray(bn.μ).tobytes() == np.asarray(m2).tobytes()
    assert np.asarray(bn.σ2).tobytes() == np.asarray(v2).tobytes()
    # InstanceNorm, tracked and affine
    inn = fx.InstanceNorm(6, fx.tanh, affine=True, track_stats=True, initγ=init, initβ=init, active=train)
    want, m2, _ = _core._module_forward("InstanceNorm", x, train, chs=6, gamma=inn.γ, beta=inn.β,
                                        running_mean=inn.μ, running_var=inn.σ2, act="tanh")
    assert np.asarray(inn(x)).tobytes() == np.asarray(want).tobytes()
    assert np.asarray(inn.μ).tobytes() == np.asarray(m2).tobytes()
    # GroupNorm and LayerNorm (no mode)
    gn = fx.GroupNorm(6, 3, initγ=init, initβ=init)
    want, _, _ = _core._module_forward("GroupNorm", x, train, chs=6, groups=3, gamma=gn.γ, beta=gn.β)
    assert np.asarray(gn(x)).tobytes() == np.asarray(want).tobytes()
    ln = fx.LayerNorm((3, 5), fx.elu)
    ln.diag.scale, ln.diag.bias = fx.tensor(RNG.normal(size=(3, 5)), dtype), fx.tensor(RNG.normal(size=(3, 5)), dtype)
    want, _, _ = _core._module_forward("LayerNorm", x, train, size=[3, 5], gamma=ln.diag.scale, beta=ln.diag.bias,
                                       act="elu", param=1.0)
    assert np.asarray(ln(x)).tobytes() == np.asarray(want).tobytes()


def test_dropouts_bit_identical_to_the_rust_layers():
    x = x32(8, 6, 3)
    d = fx.Dropout(0.4, dims=1, active=True, rng=21)
    want, _, _ = _core._module_forward("Dropout", x, True, p=0.4, seed=21, dims=[1])
    assert np.asarray(d(x)).tobytes() == np.asarray(want).tobytes()
    a = fx.AlphaDropout(0.3, active=True, rng=5)
    want, _, _ = _core._module_forward("AlphaDropout", x, True, p=0.3, seed=5)
    assert np.asarray(a(x)).tobytes() == np.asarray(want).tobytes()
    # inference: both are the identity
    want, _, _ = _core._module_forward("Dropout", x, False, p=0.4, seed=21)
    assert np.asarray(want).tobytes() == np.asarray(x).tobytes()


def test_fused_batchnorm_gradient_matches_the_composed_one():
    """The one-node backward against the same layer written with primitive ops
    (differentiated by the tape op by op), float64."""
    x = fx.tensor(RNG.normal(size=(5, 3, 4)))
    γ, β = fx.tensor(RNG.normal(size=3)), fx.tensor(RNG.normal(size=3))
    w = fx.tensor(RNG.normal(size=(5, 3, 4)))

    def composed(x, γ, β):
        m = x.sum(dims=(0, 2)).reshape(1, 3, 1) / 20.0
        c = x - m
        v = (c * c).sum(dims=(0, 2)).reshape(1, 3, 1) / 20.0
        y = c / (v + 1e-5).sqrt() * γ.reshape(1, 3, 1) + β.reshape(1, 3, 1)
        return (fx.tanh(y) * w).sum()

    def fused(x, γ, β):
        bn = fx.BatchNorm(3, fx.tanh, active=True, track_stats=False, initγ=lambda n: γ, initβ=lambda n: β)
        return (bn(x) * w).sum()

    v1, g1 = fx.withgradient(composed, x, γ, β)
    v2, g2 = fx.withgradient(fused, x, γ, β)
    np.testing.assert_allclose(v1.item(), v2.item(), rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_conv_relu_is_one_rust_call_with_the_composed_values_and_gradient():
    """Conv(σ = relu) fuses the relu into the convolution: one `_core` call, the same
    bits as conv then relu, and the same gradient (float64)."""
    c = fx.Conv((3, 3), 3, 4, fx.relu, pad=1)
    xt = x32(2, 3, 5, 5)
    y, calls = core_calls(c, xt)
    assert calls == ["conv"], calls
    plain = fx.relu(fx.Conv((3, 3), 3, 4, pad=1, init=lambda *s: np.asarray(c.weight))(xt))
    assert np.array_equal(np.asarray(y), np.asarray(plain))
    assert (np.asarray(y) == 0).any() and (np.asarray(y) > 0).any()
    x = fx.tensor(RNG.normal(size=(2, 3, 6, 5)))
    w, b = fx.tensor(RNG.normal(size=(4, 3, 3, 3))), fx.tensor(RNG.normal(size=4))
    u = fx.tensor(RNG.normal(size=(2, 4, 3, 3)))
    args = ([2, 2], [1, 1], [1, 1], [1, 1], 1)
    v1, g1 = fx.withgradient(lambda w, b: (_core.conv(x, w, b, *args, "relu", None) * u).sum(), w, b)
    v2, g2 = fx.withgradient(lambda w, b: (fx.relu(_core.conv(x, w, b, *args)) * u).sum(), w, b)
    np.testing.assert_allclose(v1.item(), v2.item(), rtol=1e-12)
    for a, b2 in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b2), rtol=1e-12, atol=1e-12)
