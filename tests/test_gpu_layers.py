"""The normalisation, dropout and lookup layers on the GPU: BatchNorm, LayerNorm,
GroupNorm, InstanceNorm, Embedding, Scale, Bilinear and Maxout give the CPU's output and
gradients (float32, within 1e-5 relative to the array's scale), BatchNorm's running
statistics follow the CPU's and its test mode uses them; Dropout and AlphaDropout masks
are drawn on the GPU (not the CPU's masks: the right statistics, and the backward uses
the forward's mask); a small model with them trains with fx.train_ on the GPU. Runs on
any wgpu adapter (Mesa's lavapipe in CI); skips, saying why, only when none exists."""
import copy

import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core
from flux_rs._tree import tensors

pytestmark = pytest.mark.skipif(not fx.gpu_available(), reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}")


def close(a, b, tol=1e-5):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_array_less(np.abs(a - b), tol * max(np.abs(b).max(initial=0.0), 1e-3) + 1e-30)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(0.3, 1.0, size=shape).astype(np.float32)


LAYERS = {
    "BatchNorm": (lambda: fx.BatchNorm(3, fx.relu), (4, 3, 2, 2)),
    "BatchNorm(no affine)": (lambda: fx.BatchNorm(3, affine=False), (5, 3)),
    "LayerNorm": (lambda: fx.LayerNorm(5, fx.tanh), (3, 5)),
    "GroupNorm": (lambda: fx.GroupNorm(4, 2), (2, 4, 3)),
    "InstanceNorm": (lambda: fx.InstanceNorm(3, affine=True), (2, 3, 4)),
    "Scale": (lambda: fx.Scale(3, 4, σ=fx.tanh), (2, 3, 4)),
    "Maxout": (lambda: fx.Maxout(lambda: fx.Dense(3, 2), 3), (5, 3)),
}


def outputs_and_grads(m, x, w):
    fx.trainmode_(m)
    y = m(x)
    g = fx.gradient(lambda m, x: (m(x) * w).sum(), m, x)
    return y, g


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_on_the_gpu_gives_the_cpu_output_and_gradients(name):
    make, shape = LAYERS[name]
    m = make()
    # non-trivial affine parameters, so their gradients are exercised
    for i, t in enumerate(tensors(m)):
        if t.dtype == np.float32 and t.ndim >= 1 and not name.startswith("BatchNorm(no"):
            _core.assign_(t, np.asarray(t) + rand(*t.shape, seed=10 + i) * 0.1)
    mg = fx.gpu(copy.deepcopy(m))
    x = rand(*shape)
    yc, gc = outputs_and_grads(m, fx.tensor(x), fx.tensor(rand(*m(fx.tensor(x)).shape, seed=1)))
    yg, gg = outputs_and_grads(mg, fx.gpu(fx.tensor(x)), fx.gpu(fx.tensor(rand(*yc.shape, seed=1))))
    assert yg.device == "gpu"
    close(yg, yc)
    gcs, ggs = tensors(gc), tensors(gg)
    assert len(ggs) == len(gcs) and len(gcs) >= 1
    for a, b in zip(ggs, gcs):
        assert a.device == "gpu"
        close(a, b)
    # the running statistics (BatchNorm, InstanceNorm) followed the CPU's
    for a, b in zip(tensors(mg), tensors(m)):
        close(a, b)


def test_embedding_and_bilinear_on_the_gpu_give_the_cpu_gradients():
    e = fx.Embedding(6, 3, padding_idx=2)
    eg = fx.gpu(copy.deepcopy(e))
    idx = np.array([[1, 2, 5], [2, 0, 1]])
    w = rand(2, 3, 3, seed=3)
    for m, wt in ((e, fx.tensor(w)), (eg, fx.gpu(fx.tensor(w)))):
        m.out = m(idx)
        m.grad = fx.gradient(lambda m: (m(idx) * wt).sum(), m)[0]
    close(eg.out, e.out)
    assert eg.grad.weight.device == "gpu"
    close(eg.grad.weight, e.grad.weight)
    assert np.all(np.asarray(eg.grad.weight)[2] == 0), "the padding row gets no gradient"

    b = fx.Bilinear((3, 4), 2, fx.tanh)
    bg = fx.gpu(copy.deepcopy(b))
    x, y = rand(5, 3, seed=4), rand(5, 4, seed=5)
    gc = fx.gradient(lambda m, x, y: m((x, y)).sum(), b, fx.tensor(x), fx.tensor(y))
    gg = fx.gradient(lambda m, x, y: m((x, y)).sum(), bg, fx.gpu(fx.tensor(x)), fx.gpu(fx.tensor(y)))
    for a, c in zip(tensors(gg), tensors(gc)):
        assert a.device == "gpu"
        close(a, c)


def test_batchnorm_running_statistics_and_test_mode_follow_the_cpu():
    m = fx.BatchNorm(3)
    mg = fx.gpu(copy.deepcopy(m))
    for step in range(3):
        x = rand(6, 3, 2, seed=step)
        fx.gradient(lambda m: m(fx.tensor(x)).sum(), m)
        fx.gradient(lambda m: m(fx.gpu(fx.tensor(x))).sum(), mg)
    assert mg.μ.device == "gpu"
    close(mg.μ, m.μ)
    close(mg.σ2, m.σ2)
    assert not np.allclose(np.asarray(m.μ), 0.0)
    fx.testmode_(m), fx.testmode_(mg)
    x = rand(4, 3, 2, seed=9)
    close(mg(fx.gpu(fx.tensor(x))), m(fx.tensor(x)))


def test_dropout_masks_on_the_gpu_have_the_keep_probability_and_the_backward_uses_them():
    x = fx.gpu(fx.ones32(64, 32))
    d = fx.Dropout(0.25, rng=3, active=True)
    y = d(x)
    assert y.device == "gpu"
    v = np.asarray(y)
    assert set(np.unique(v)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((v != 0).mean() - 0.75) < 5 * np.sqrt(0.25 * 0.75 / v.size)
    # d Σ(mask·x)/dx is the mask; one gradient call draws one mask for both
    def f(x):
        f.y = d(x)
        return f.y.sum()
    (g,) = fx.gradient(f, x)
    np.testing.assert_array_equal(np.asarray(g), np.asarray(f.y))
    a = fx.AlphaDropout(0.2, rng=4, active=True)
    xn = fx.gpu(fx.tensor(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)))
    yn = np.asarray(a(xn))
    assert abs(yn.mean()) < 0.1 and abs(yn.var() - 1) < 0.15


@pytest.mark.slow
def test_a_model_with_norms_and_dropout_trains_on_the_gpu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 2))).astype(np.float32)
    m = fx.gpu(fx.Chain(fx.Dense(4, 16), fx.BatchNorm(16, fx.relu), fx.Dropout(0.1, rng=0), fx.LayerNorm(16),
                        fx.Scale(16), fx.Dense(16, 2)))
    st = fx.setup(fx.Adam(0.01), m)
    data = [(fx.gpu(fx.tensor(x[i:i + 8])), fx.gpu(fx.tensor(y[i:i + 8]))) for i in range(0, 32, 8)]
    loss = lambda m, a, b: fx.losses.mse(m(a), b)
    fx.testmode_(m)
    before = sum(float(loss(m, a, b)) for a, b in data)
    fx.trainmode_(m)
    for _ in range(15):
        fx.train_(loss, m, data, st, progress=False)
    fx.testmode_(m)
    after = sum(float(loss(m, a, b)) for a, b in data)
    assert all(t.device == "gpu" for t in tensors(m))
    assert after < 0.5 * before, (before, after)
