"""Attention and recurrent layers on the GPU give the CPU's outputs and gradients
(float32), and small sequence models train on the GPU as on the CPU with fx.train_.
Runs on any wgpu adapter (Mesa's lavapipe in CI: tiny shapes); skips, saying why, only
when no adapter can be had."""
import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core
from flux_rs._tree import tensors

needs_gpu = pytest.mark.skipif(not fx.gpu_available(), reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}")
pytestmark = needs_gpu


def close(a, b, tol=1e-5, scale=None):
    """Within `tol` relative of each element plus `tol` of the array's largest value:
    the devices sum in other orders, so an element that is a near-cancelling sum of
    larger terms keeps those terms' rounding (the convention of rust/tests/gpu_conv.rs).
    `scale` overrides that largest value: a gradient that is zero in exact arithmetic
    (a key projection's bias: softmax ignores a shift shared by a row) is compared with
    the scale of all the model's gradients."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = np.abs(b).max(initial=0.0) if scale is None else scale
    np.testing.assert_array_less(np.abs(a - b), tol * (np.abs(b) + scale) + 1e-30)


def both(make):
    """The same model (same seed) on the CPU and on the GPU."""
    cpu, gpu = make(), fx.gpu(make())
    assert all(t.device == "gpu" for t in tensors(gpu))
    return cpu, gpu


def weights(shapes, seed=9):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def compare(make, inputs, call, gpu_inputs=None):
    """Outputs of `call(model, *inputs)` (a tuple of tensors) and the gradients of a
    weighted sum of them with respect to every parameter, on both devices."""
    cpu_m, gpu_m = both(make)
    outs = {}
    for dev, m in (("cpu", cpu_m), ("gpu", gpu_m)):
        xs = [fx.tensor(x) for x in inputs]
        if dev == "gpu":
            xs = [fx.gpu(x) for x in xs]
        ys = call(m, *xs)
        assert all(y.device == dev for y in ys)
        ws = weights([y.shape for y in ys])
        wt = [fx.gpu(fx.tensor(w)) if dev == "gpu" else fx.tensor(w) for w in ws]

        def loss(m):
            total = None
            for y, w in zip(call(m, *xs), wt):
                term = (y * w).sum()
                total = term if total is None else total + term
            return total

        (g,) = fx.gradient(loss, m)
        gs = tensors(g)
        assert gs and all(t.device == dev for t in gs)
        outs[dev] = ([np.asarray(y) for y in ys], [np.asarray(t) for t in gs])
    for a, b in zip(outs["gpu"][0], outs["cpu"][0]):
        close(a, b)
    assert len(outs["gpu"][1]) == len(outs["cpu"][1])
    gscale = max(np.abs(b).max(initial=0.0) for b in outs["cpu"][1])
    for a, b in zip(outs["gpu"][1], outs["cpu"][1]):
        close(a, b, scale=gscale)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("mask", [None, "causal", "given"])
def test_self_attention_on_the_gpu_gives_the_cpu_result_and_gradients(mask):
    x = rand(2, 4, 8)
    m = {None: None, "causal": np.tril(np.ones((4, 4), bool)), "given": rand(4, 4, seed=3) > -0.5}[mask]
    compare(lambda: fx.MultiHeadAttention(8, nheads=2, rng=1), [x], lambda mha, x: mha(x, mask=m))


def test_cross_attention_with_bias_on_the_gpu_gives_the_cpu_result_and_gradients():
    q, kv, bias = rand(2, 3, 6), rand(2, 5, 4, seed=1), rand(2, 3, 5, seed=2)
    make = lambda: fx.MultiHeadAttention(((6, 4, 4), (8, 4), 5), nheads=2, bias=True, rng=2)
    compare(make, [q, kv, bias], lambda mha, q, kv, b: mha(q, kv, kv, b))


@pytest.mark.parametrize("layer", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_on_the_gpu_give_the_cpu_result_and_gradients(layer):
    x = rand(3, 4, 2)
    make = lambda: getattr(fx, layer)(2, 3, return_state=True, rng=4)
    compare(make, [x], lambda m, x: (m(x)[0], m(x)[1][0] if layer == "LSTM" else m(x)[1]))
    # from a given initial state
    h0 = rand(3, 3, seed=5)
    if layer == "LSTM":
        c0 = rand(3, 3, seed=6)
        compare(make, [x, h0, c0], lambda m, x, h, c: (m(x, (h, c))[0], m(x, (h, c))[1][1]))
    else:
        compare(make, [x, h0], lambda m, x, h: (m(x, h)[0],))


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_recurrent_cells_on_the_gpu_give_the_cpu_result_and_gradients(cell):
    x, h = rand(2, 3), rand(2, 4, seed=1)
    make = lambda: getattr(fx, cell)(3, 4, rng=5)
    if cell == "LSTMCell":
        c = rand(2, 4, seed=2)
        compare(make, [x, h, c], lambda m, x, h, c: (m(x, (h, c))[0], m(x, (h, c))[1][1]))
    else:
        compare(make, [x, h], lambda m, x, h: (m(x, h)[0],))


def train_both(make, loss, data, steps=3):
    """Train the same model with Adam on each device over `data`; the losses per step and
    the final parameters."""
    res = {}
    for dev in ("cpu", "gpu"):
        m = make()
        batches = data
        if dev == "gpu":
            fx.gpu(m)
            batches = [fx.gpu(tuple(fx.tensor(a) for a in b)) for b in data]
        st = fx.setup(fx.Adam(0.01), m)
        losses = []
        for _ in range(steps):
            losses += fx.train_(loss, m, batches, st, progress=False)
        assert all(t.device == dev for t in tensors(m))
        res[dev] = (losses, [np.asarray(t) for t in tensors(m)])
    close(res["gpu"][0], res["cpu"][0], 1e-4)
    for a, b in zip(res["gpu"][1], res["cpu"][1]):
        close(a, b, 1e-4)
    assert res["gpu"][0][-1] < res["gpu"][0][0]


def test_a_tiny_lstm_classifier_trains_on_the_gpu_as_on_the_cpu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 1, 0]]

    class Classifier:
        def __init__(self):
            self.lstm = fx.LSTM(3, 6, return_state=True, rng=7)
            self.head = fx.Dense(6, 2, rng=8)

        def __call__(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h)

    train_both(Classifier, lambda m, x, y: fx.losses.logitcrossentropy(m(x), y), [(x, y)])


def test_a_tiny_transformer_block_trains_on_the_gpu_as_on_the_cpu():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 8)).astype(np.float32)
    t = rng.normal(size=(2, 4, 8)).astype(np.float32)
    mask = np.tril(np.ones((4, 4), bool))

    class Block:
        def __init__(self):
            self.attn = fx.MultiHeadAttention(8, nheads=2, rng=3)
            self.ff1 = fx.Dense(8, 16, fx.relu, rng=4)
            self.ff2 = fx.Dense(16, 8, rng=5)

        def __call__(self, x):
            h = x + self.attn(x, mask=mask)[0]
            return h + self.ff2(self.ff1(h))

    train_both(Block, lambda m, x, t: fx.losses.mse(m(x), t), [(x, t)])
