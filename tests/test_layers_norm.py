"""Normalisation and dropout layers, train/test mode: numpy references, running
statistics, Flux's automatic mode, float64 finite-difference gradients, torch."""
import numpy as np
import pytest

import flux_rs as fx
from test_conv import check_grad

RNG = np.random.default_rng(99)


def ref_norm(x, axes, eps):
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)  # uncorrected, as Flux
    return (x - m) / np.sqrt(v + eps)


# ---- the fused op -------------------------------------------------------------------------

@pytest.mark.parametrize("pcq", [(4, 3, 5), (1, 6, 4), (3, 1, 2), (2, 2, 1)])
def test_normalize_op_values_and_gradient(pcq):
    p, c, q = pcq
    x = RNG.normal(size=(p, c, q)) * 3 + 1
    y, mean, var = fx._core.normalize(fx.tensor(x), p, c, q, 1e-5)
    np.testing.assert_allclose(np.asarray(y), ref_norm(x, (0, 2), 1e-5), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(mean), x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(var), x.var(axis=(0, 2)), rtol=1e-12)
    check_grad(lambda t: fx._core.normalize(t, p, c, q, 1e-3)[0], x, rtol=1e-5, atol=1e-6)


def test_normalize_rejects_bad_views():
    with pytest.raises(ValueError):
        fx._core.normalize(fx.ones32(2, 3), 2, 2, 2, 1e-5)


# ---- BatchNorm ----------------------------------------------------------------------------

def test_batchnorm_training_statistics_and_running_update():
    x = RNG.normal(size=(8, 3, 4, 4)) * 2 + 0.5
    bn = fx.BatchNorm(3, initβ=fx.zeros, initγ=fx.ones, active=True)
    y = np.asarray(bn(fx.tensor(x)))
    np.testing.assert_allclose(y, ref_norm(x, (0, 2, 3), 1e-5), rtol=1e-9, atol=1e-10)
    m = 8 * 16
    np.testing.assert_allclose(np.asarray(bn.μ), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.σ2), 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-6)
    # inference uses the running statistics
    fx.testmode_(bn)
    mu, var = np.asarray(bn.μ), np.asarray(bn.σ2)
    y2 = np.asarray(bn(fx.tensor(x)))
    np.testing.assert_allclose(y2, (x - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(bn.μ), mu)  # no update in test mode


def test_batchnorm_automatic_mode_follows_the_gradient():
    bn = fx.BatchNorm(2)
    x = (RNG.normal(size=(6, 2)) * 3 + 2).astype(np.float32)
    # plain call: inference with running stats (0, 1)
    np.testing.assert_allclose(np.asarray(bn(x)), x / np.sqrt(1 + 1e-5), rtol=1e-5)
    assert np.asarray(bn.μ).tolist() == [0.0, 0.0]
    # inside a gradient: batch statistics, running stats updated
    (g,) = fx.gradient(lambda m: (m(x) * fx.tensor(np.arange(12.0).reshape(6, 2), "float32")).sum(), bn)
    np.testing.assert_allclose(np.asarray(bn.μ), 0.1 * x.mean(0), rtol=1e-5)
    assert g.β is not None and g.γ is not None
    assert len(fx.trainables(bn)) == 2
    # forced test mode: running stats even inside a gradient
    fx.testmode_(bn)
    before = np.asarray(bn.μ).copy()
    fx.gradient(lambda m: m(x).sum(), bn)
    np.testing.assert_array_equal(np.asarray(bn.μ), before)
    fx.trainmode_(bn, "auto")
    assert bn.active is None
    with pytest.raises(ValueError):
        fx.testmode_(bn, 3)


def test_batchnorm_gradients_float64():
    x = RNG.normal(size=(5, 3, 2))
    g0, b0 = RNG.normal(size=3), RNG.normal(size=3)

    def f(x, γ, β):
        bn = fx.BatchNorm(3, fx.tanh, active=True, initγ=lambda n: γ, initβ=lambda n: β)
        return bn(x)
    check_grad(f, x, g0, b0, rtol=1e-5, atol=1e-7)


def test_batchnorm_options_and_errors():
    bn = fx.BatchNorm(4, affine=False, track_stats=False)
    assert bn.β is None and bn.μ is None and fx.trainables(bn) == []
    x = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(np.asarray(bn(x)), ref_norm(x, (0,), 1e-5), rtol=1e-9)  # always batch stats
    with pytest.raises(ValueError, match=r"4 channels.*\(3, 5\)"):
        fx.BatchNorm(4)(fx.ones32(3, 5))
    with pytest.raises(ValueError, match="more than one value"):
        fx.BatchNorm(4, active=True)(fx.ones32(1, 4))
    assert repr(fx.BatchNorm(3, fx.relu)) == "BatchNorm(3, relu)"


# ---- LayerNorm / GroupNorm / InstanceNorm -------------------------------------------------

def test_layernorm():
    x = RNG.normal(size=(3, 4, 5))
    ln = fx.LayerNorm(5)
    np.testing.assert_allclose(np.asarray(ln(fx.tensor(x, "float32"))), ref_norm(x, (2,), 1e-5), rtol=1e-4,
                               atol=1e-5)
    ln2 = fx.LayerNorm((4, 5), affine=False)
    np.testing.assert_allclose(np.asarray(ln2(fx.tensor(x))), ref_norm(x, (1, 2), 1e-5), rtol=1e-9)
    s, b = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))

    def f(x, s, b):
        l = fx.LayerNorm((4, 5))
        l.diag.scale, l.diag.bias = s, b
        return l(x)
    check_grad(f, x, s, b)
    with pytest.raises(ValueError, match=r"last 1 dimension\(s\) are \(5,\).*\(3, 4\)"):
        ln(fx.ones32(3, 4))
    assert len(fx.trainables(ln)) == 2


def test_groupnorm():
    x = RNG.normal(size=(2, 6, 3, 2))
    gn = fx.GroupNorm(6, 3, initβ=fx.zeros, initγ=fx.ones)
    want = ref_norm(x.reshape(2, 3, 2, 3, 2), (2, 3, 4), 1e-5).reshape(x.shape)
    np.testing.assert_allclose(np.asarray(gn(fx.tensor(x))), want, rtol=1e-9, atol=1e-12)
    γ, β = RNG.normal(size=6), RNG.normal(size=6)
    check_grad(lambda x, γ, β: fx.GroupNorm(6, 2, initγ=lambda n: γ, initβ=lambda n: β)(x), x, γ, β)
    with pytest.raises(ValueError, match="divisible"):
        fx.GroupNorm(6, 4)


def test_instancenorm():
    x = RNG.normal(size=(2, 3, 5))
    inn = fx.InstanceNorm(3)
    assert fx.trainables(inn) == []
    np.testing.assert_allclose(np.asarray(inn(fx.tensor(x))), ref_norm(x, (2,), 1e-5), rtol=1e-9)
    check_grad(lambda x: fx.InstanceNorm(3)(x), x)
    tracked = fx.InstanceNorm(3, track_stats=True, active=True, affine=True)
    tracked(fx.tensor(x, "float32"))
    np.testing.assert_allclose(np.asarray(tracked.μ), 0.1 * x.mean(axis=2).mean(0), rtol=1e-5)


def test_norms_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.normal(size=(4, 6, 3, 5))
    tx = torch.tensor(x)
    np.testing.assert_allclose(np.asarray(fx.BatchNorm(6, active=True, initβ=fx.zeros, initγ=fx.ones)(x)),
                               F.batch_norm(tx, None, None, training=True).numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(fx.LayerNorm((3, 5), affine=False)(fx.tensor(x))),
                               F.layer_norm(tx, (3, 5)).numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(fx.GroupNorm(6, 3, initβ=fx.zeros, initγ=fx.ones)(x)),
                               F.group_norm(tx, 3).numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(fx.InstanceNorm(6)(fx.tensor(x))), F.instance_norm(tx).numpy(),
                               rtol=1e-9, atol=1e-10)


# ---- dropout ------------------------------------------------------------------------------

def test_dropout_modes_values_and_gradient():
    d = fx.Dropout(0.3)
    x = fx.ones(200, 50)
    assert d(x) is x  # inactive outside a gradient
    val, (g,) = fx.withgradient(lambda x: (d(x) * 1.0).sum(), x)
    g = np.asarray(g)
    assert set(np.unique(g).round(6).tolist()) == {0.0, round(1 / 0.7, 6)}
    assert abs((g == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(val.item(), g.sum(), rtol=1e-12)
    fx.trainmode_(d)
    assert (np.asarray(d(x)) == 0).any()
    fx.testmode_(d)
    assert d(x) is x
    with pytest.raises(ValueError):
        fx.Dropout(1.5)
    assert fx.trainables(d) == []


def test_dropout_dims_and_rng():
    x = fx.ones32(4, 6, 3, 3)
    y = np.asarray(fx.Dropout(0.5, dims=1, active=True, rng=3)(x))
    # one decision per channel, shared over batch and positions
    per_channel = y.transpose(1, 0, 2, 3).reshape(6, -1)
    assert all(len(set(r.tolist())) == 1 for r in per_channel)
    a = np.asarray(fx.dropout(x, 0.5, rng=fx.Rng(11)))
    b = np.asarray(fx.dropout(x, 0.5, rng=fx.Rng(11)))
    np.testing.assert_array_equal(a, b)
    d = fx.Dropout(0.5, active=True, rng=5)
    assert not np.array_equal(np.asarray(d(x)), np.asarray(d(x)))  # the layer's rng advances
    fx.seed(1)
    c1 = np.asarray(fx.dropout(x, 0.5))
    fx.seed(1)
    np.testing.assert_array_equal(c1, np.asarray(fx.dropout(x, 0.5)))


def test_alpha_dropout():
    α = -1.7580993408473766
    p = 0.2
    A = 1 / np.sqrt((1 - p) * (1 + p * α ** 2))
    B = -A * α * p
    x = RNG.normal(size=200_000)
    y = np.asarray(fx.AlphaDropout(p, active=True, rng=0)(fx.tensor(x)))
    kept = np.isclose(y, A * x + B)
    assert np.allclose(y[~kept], A * α + B)
    assert abs(kept.mean() - (1 - p)) < 0.01
    # SELU fixed point: mean 0, variance 1 preserved
    assert abs(y.mean()) < 0.02 and abs(y.var() - 1) < 0.02
    assert np.array_equal(np.asarray(fx.alpha_dropout(fx.tensor(x[:5]), 1.0)), np.zeros(5))
    assert fx.AlphaDropout(0.5)(fx.tensor(x[:5])) is not None


def test_show_counts_nontrainable():
    m = fx.Chain(fx.Conv((3, 3), 1, 2), fx.BatchNorm(2, fx.relu), fx.Dropout(0.1))
    s = repr(m)
    assert "Conv((3, 3), 1 => 2)" in s and "# 20 parameters" in s
    assert "BatchNorm(2, relu)" in s and "# 4 parameters, plus 4 non-trainable" in s
    assert "Total: 6 arrays, 24 parameters (plus 4 non-trainable)" in s


def test_modes_recurse_through_models():
    m = fx.Chain(fx.Dense(2, 2), fx.Chain(fx.Dropout(0.5), fx.BatchNorm(2)), fx.GroupNorm(2, 1))
    fx.trainmode_(m)
    assert m[1][0].active is True and m[1][1].active is True and m[2].active is True
    fx.testmode_(m, None)
    assert m[1][0].active is None and m[2].active is None


def test_models_with_modes_copy_pickle_and_update():
    import copy
    import pickle
    m = fx.Chain(fx.Conv((3, 3), 1, 2), fx.BatchNorm(2), fx.Dropout(0.5, rng=1), fx.flatten, fx.Dense(8, 1))
    m2 = copy.deepcopy(m)
    x = np.ones((2, 1, 4, 4), np.float32)
    # the copied rng continues from the same position
    a = np.asarray(fx.dropout(fx.ones32(50), 0.5, rng=m.layers[2].rng))
    b = np.asarray(fx.dropout(fx.ones32(50), 0.5, rng=m2.layers[2].rng))
    np.testing.assert_array_equal(a, b)
    pickle.loads(pickle.dumps(m))
    st = fx.setup(fx.Adam(), m)
    (g,) = fx.gradient(lambda m: m(x).sum(), m)
    assert g.layers[1].μ is None  # running statistics are not trainable
    _, m3 = fx.update(st, m, g)
    assert m3 is not m
    fx.update_(st, m, g)
