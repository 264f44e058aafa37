"""Convolution, pooling and resampling layers on the GPU give the CPU's outputs and
gradients (float32; the model's parameters and the input): fx.Conv (stride, padding,
dilation, groups, relu), fx.ConvTranspose, fx.MaxPool/MeanPool, the global and adaptive
pools, fx.Upsample (nearest, bilinear) and fx.PixelShuffle. Tiny shapes: in CI the GPU
is Mesa's lavapipe. Skips, saying why, only when no adapter can be had."""
import copy

import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core
from flux_rs._tree import tensors

needs_gpu = pytest.mark.skipif(not fx.gpu_available(), reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}")

# (model, input shape); every model's output depends on every parameter and input
MODELS = {
    "Conv": (lambda: fx.Conv((3, 3), 2, 4, fx.relu, stride=2, pad=1), (2, 2, 7, 6)),
    "Conv dilated, grouped": (lambda: fx.Conv((3, 3), 4, 6, pad=2, dilation=2, groups=2), (1, 4, 6, 6)),
    "Conv 1-d": (lambda: fx.Conv((3,), 2, 3, fx.tanh, stride=2), (2, 2, 9)),
    "ConvTranspose": (lambda: fx.ConvTranspose((3, 3), 2, 3, stride=2, pad=1), (2, 2, 3, 4)),
    "MaxPool": (lambda: fx.MaxPool((2, 2)), (2, 3, 6, 4)),
    "MaxPool overlapping, padded": (lambda: fx.MaxPool((3, 3), stride=2, pad=1), (1, 2, 7, 6)),
    "MeanPool": (lambda: fx.MeanPool((3, 2), stride=(2, 1), pad=1), (2, 2, 6, 5)),
    "GlobalMaxPool": (lambda: fx.GlobalMaxPool(), (2, 3, 4, 5)),
    "GlobalMeanPool": (lambda: fx.GlobalMeanPool(), (2, 3, 4, 5)),
    "AdaptiveMaxPool": (lambda: fx.AdaptiveMaxPool((2, 3)), (1, 2, 7, 9)),
    "AdaptiveMeanPool": (lambda: fx.AdaptiveMeanPool((3, 2)), (1, 2, 7, 5)),
    "Upsample nearest": (lambda: fx.Upsample(scale=2), (1, 2, 3, 3)),
    "Upsample bilinear": (lambda: fx.Upsample("bilinear", size=(5, 7), align_corners=False), (2, 2, 3, 4)),
    "PixelShuffle": (lambda: fx.PixelShuffle(2), (2, 8, 2, 3)),
    "CNN": (lambda: fx.Chain(fx.Conv((3, 3), 1, 4, fx.relu, pad=1), fx.MaxPool((2, 2)), fx.Conv((3, 3), 4, 6),
                             fx.GlobalMeanPool(), fx.flatten, fx.Dense(6, 3)), (2, 1, 8, 8)),
}


def close(cpu, gpu, what, scale=0.0):
    a, b = np.asarray(cpu, dtype=np.float64), np.asarray(gpu, dtype=np.float64)
    assert a.shape == b.shape, what
    # 1e-5 relative, plus 1e-5 of the largest magnitude (or of `scale`, the sum of the
    # magnitudes of a sum's terms, when they cancel): long sums in another order
    tol = 1e-5 * (np.abs(a) + max(np.abs(a).max(), scale))
    assert np.all(np.abs(a - b) <= tol), f"{what}: largest difference {np.abs(a - b).max()}"


@needs_gpu
@pytest.mark.parametrize("name", list(MODELS))
def test_conv_and_pool_layers_on_the_gpu_give_the_cpu_outputs_and_gradients(name):
    make, shape = MODELS[name]
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    m_cpu = make()
    m_gpu = fx.gpu(copy.deepcopy(m_cpu))
    y_cpu = m_cpu(fx.tensor(x))
    r = rng.uniform(-1, 1, size=y_cpu.shape).astype(np.float32)

    def run(m, to):
        xt, rt = to(fx.tensor(x)), to(fx.tensor(r))
        val, grads = fx.withgradient(lambda m, x: (m(x) * rt).sum(), m, xt)
        return val, xt, grads

    v_cpu, _, g_cpu = run(m_cpu, lambda t: t)
    v_gpu, x_gpu, g_gpu = run(m_gpu, fx.gpu)
    assert x_gpu.device == "gpu"
    # the loss sums terms of both signs: its rounding scales with the terms, not the sum
    close(v_cpu, v_gpu, "loss", scale=float(np.abs(np.asarray(y_cpu) * r).sum()))
    close(y_cpu, m_gpu(x_gpu), "output")
    assert m_gpu(x_gpu).device == "gpu"
    close(g_cpu[1], g_gpu[1], "input gradient")
    assert g_gpu[1].device == "gpu"
    pc, pg = tensors(g_cpu[0]), tensors(g_gpu[0])
    assert len(pc) == len(pg) == len(tensors(m_cpu))
    for i, (c, g) in enumerate(zip(pc, pg)):
        assert g.device == "gpu"
        close(c, g, f"parameter gradient {i}")


@needs_gpu
def test_a_cnn_trains_on_the_gpu_as_on_the_cpu():
    make, shape = MODELS["CNN"]
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    y = rng.uniform(-1, 1, size=(shape[0], 3)).astype(np.float32)
    m_cpu = make()
    m_gpu = fx.gpu(copy.deepcopy(m_cpu))
    losses = {}
    for dev, m, to in (("cpu", m_cpu, lambda t: t), ("gpu", m_gpu, fx.gpu)):
        st = fx.setup(fx.Adam(0.01), m)
        xt, yt = to(fx.tensor(x)), to(fx.tensor(y))
        losses[dev] = []
        for _ in range(3):
            val, (g,) = fx.withgradient(lambda m: fx.losses.mse(m(xt), yt), m)
            losses[dev].append(float(val))
            fx.update_(st, m, g)
    np.testing.assert_allclose(losses["gpu"], losses["cpu"], rtol=1e-5)
    assert losses["cpu"][-1] < losses["cpu"][0]
    for c, g in zip(tensors(m_cpu), tensors(m_gpu)):
        assert g.device == "gpu"
        close(c, g, "parameter after 3 Adam steps")
