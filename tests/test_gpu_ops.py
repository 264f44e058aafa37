"""Every public tensor op and layer with a GPU path gives the CPU result and gradient on
the GPU: a device-parametrised sweep (float32; values and gradients within 1e-5
relative). Each case is a function of float32 arrays; its value and the gradient of
``sum(f(x) * w)`` for a fixed random ``w`` are computed on both devices and compared.
Ops another GPU helper is still doing are added to OPS as they land. Runs on any wgpu
adapter (Mesa's lavapipe in CI); skips, saying why, only when none exists."""
import copy

import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core

pytestmark = pytest.mark.skipif(not fx.gpu_available(), reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}")


def close(a, b, tol=1e-5):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_array_less(np.abs(a - b), tol * np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0) + 1e-30)


def arr(shape, seed, lo=-2.0, hi=2.0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(np.float32)


POS = dict(lo=0.2, hi=2.0)  # inputs of log, sqrt, a divisor, a base of pow


def layer(m):
    """A layer as a function of its input: the CPU layer or its copy moved to the GPU,
    by the input's device (the parameters' gradients are the Rust tests' part)."""
    copies = {"cpu": m, "gpu": fx.gpu(copy.deepcopy(m))}
    return lambda x: copies[x.device](x)


# (name, f, argument shapes, argument ranges)
OPS = [
    ("relu", fx.relu, [(4, 5)], None),
    ("sigmoid", fx.sigmoid, [(4, 5)], None),
    ("tanh", fx.tanh, [(4, 5)], None),
    ("elu", fx.elu, [(4, 5)], None),
    ("gelu", fx.gelu, [(4, 5)], None),
    ("swish", fx.swish, [(4, 5)], None),
    ("softplus", fx.softplus, [(4, 5)], None),
    ("leakyrelu", lambda x: fx.leakyrelu(x, 0.2), [(4, 5)], None),
    ("exp", lambda x: x.exp(), [(4, 5)], None),
    ("log", lambda x: x.log(), [(4, 5)], [POS]),
    ("sqrt", lambda x: x.sqrt(), [(4, 5)], [POS]),
    ("abs", abs, [(4, 5)], None),
    ("neg", lambda x: -x, [(4, 5)], None),
    ("softmax", lambda x: fx.softmax(x, dims=-1), [(4, 5)], None),
    ("logsoftmax", lambda x: fx.logsoftmax(x, dims=0), [(4, 5)], None),
    ("add broadcast", lambda a, b: a + b, [(4, 5), (5,)], None),
    ("sub broadcast", lambda a, b: a - b, [(4, 1), (1, 5)], None),
    ("mul", lambda a, b: a * b, [(4, 5), (4, 5)], None),
    ("div", lambda a, b: a / b, [(4, 5), (4, 5)], [None, POS]),
    ("pow", lambda a, b: a ** b, [(4, 5), (4, 5)], [POS, None]),
    ("scalar ops", lambda a: (2.0 * a - 1.0) / 3.0 + a ** 2, [(4, 5)], None),
    ("maximum", fx.maximum, [(4, 5), (4, 5)], None),
    ("minimum", fx.minimum, [(4, 5), (5,)], None),
    ("matmul", lambda a, b: a @ b, [(4, 5), (5, 3)], None),
    ("batched matmul", lambda a, b: a @ b, [(2, 4, 5), (5, 3)], None),
    ("matmul of a transpose", lambda a, b: a.transpose() @ b, [(5, 4), (5, 3)], None),
    ("sum over a dim", lambda x: x.sum(dims=1), [(4, 5)], None),
    ("mean", lambda x: x.mean(), [(4, 5)], None),
    ("max over a dim", lambda x: x.max(dims=0), [(4, 5)], None),
    ("min keepdims", lambda x: x.min(dims=1, keepdims=True), [(4, 5)], None),
    ("permute", lambda x: x.permute(2, 0, 1) * 1.0, [(2, 3, 4)], None),
    ("reshape", lambda x: x.reshape(5, 4), [(4, 5)], None),
    ("slice", lambda x: x[1:3, ::2], [(4, 5)], None),
    ("slice with steps 3d", lambda x: x[:, 1:, ::3], [(2, 3, 7)], None),
    ("index a column", lambda x: x[:, 1], [(4, 5)], None),
    ("cat", lambda a, b: fx.cat([a, b], dim=0), [(2, 5), (3, 5)], None),
    ("stack", lambda a, b: fx.stack([a, b], dim=1), [(4, 5), (4, 5)], None),
    ("split", lambda x: fx.split(x, [2, 3], dims=1)[1], [(4, 5)], None),
    ("where", lambda a, b: fx.where(a > b, a, b * 2.0), [(4, 5), (4, 5)], None),
    ("clamp", lambda x: fx.clamp(x, -0.5, 1.0), [(4, 5)], None),
    ("clamp one-sided", lambda x: fx.clamp(x, lo=0.0), [(4, 5)], None),
    ("gather", lambda x: fx.gather(x, np.array([3, 0, 3, 1])), [(4, 5)], None),
    ("scatter", lambda x: fx.scatter(x, np.array([1, 0, 1, 2]), 3), [(4, 5)], None),
    ("Dense relu", layer(fx.Dense(5, 3, fx.relu)), [(4, 5)], None),
    ("Dense gelu", layer(fx.Dense(5, 3, fx.gelu)), [(4, 5)], None),
    ("Dense tanh 3-d input", layer(fx.Dense(5, 3, fx.tanh)), [(2, 4, 5)], None),
    ("Dense without bias", layer(fx.Dense(5, 3, bias=False)), [(4, 5)], None),
    ("Chain of Dense", layer(fx.Chain(fx.Dense(5, 4, fx.swish), fx.Dense(4, 2, fx.sigmoid))), [(3, 5)], None),
]


def evaluate(f, xs, device):
    ts = [fx.tensor(x.copy()) for x in xs]
    if device == "gpu":
        ts = [fx.gpu(t) for t in ts]
    y = f(*ts)
    w = fx.tensor(np.random.default_rng(9).uniform(-1, 1, size=y.shape).astype(np.float32))
    if device == "gpu":
        w = fx.gpu(w)
    grads = fx.gradient(lambda *a: (f(*a) * w).sum(), *ts)
    return y, grads


@pytest.mark.parametrize("name,f,shapes,ranges", OPS, ids=[o[0] for o in OPS])
def test_an_op_on_the_gpu_gives_the_cpu_value_and_gradient(name, f, shapes, ranges):
    ranges = ranges or [None] * len(shapes)
    xs = [arr(s, i, **(r or {})) for i, (s, r) in enumerate(zip(shapes, ranges))]
    y_cpu, g_cpu = evaluate(f, xs, "cpu")
    y_gpu, g_gpu = evaluate(f, xs, "gpu")
    assert y_gpu.device == "gpu"
    close(y_cpu, y_gpu)
    for a, b in zip(g_cpu, g_gpu):
        assert b.device == "gpu", f"{name}: the gradient came back on the {b.device}"
        close(a, b)


def test_argmax_on_the_gpu_gives_the_cpu_indices_nan_first():
    x = arr((6, 7), 3)
    x[2, 4] = np.nan
    x[4, 1] = x[4, 5] = 9.0  # a tie: the first wins
    for dim in (0, 1, -1):
        np.testing.assert_array_equal(fx.tensor(x).argmax(dim), fx.gpu(fx.tensor(x)).argmax(dim))
    assert fx.gpu(fx.tensor(x)).argmax(1)[4] == 1


LOSSES = ["mae", "mse", "msle", "huber_loss", "crossentropy", "logitcrossentropy", "binarycrossentropy",
          "logitbinarycrossentropy", "kldivergence", "poisson_loss", "hinge_loss", "squared_hinge_loss",
          "dice_coeff_loss", "tversky_loss", "binary_focal_loss", "focal_loss", "siamese_contrastive_loss"]


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_and_its_gradient_on_the_gpu(name):
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, size=(4, 3)).astype(np.float32)
    p /= p.sum(-1, keepdims=True)
    y = np.eye(3, dtype=np.float32)[[0, 2, 1, 1]]
    f = getattr(fx.losses, name)
    out = {}
    for dev in ("cpu", "gpu"):
        a, b = fx.tensor(p.copy()), fx.tensor(y.copy())
        if dev == "gpu":
            a, b = fx.gpu(a), fx.gpu(b)
        out[dev] = fx.withgradient(lambda a: f(a, b), a)
    assert out["gpu"].grad[0].device == "gpu"
    close(out["cpu"].val, out["gpu"].val)
    close(out["cpu"].grad[0], out["gpu"].grad[0])


def test_ctc_loss_and_label_smoothing_on_the_gpu():
    logits = arr((6, 4), 7)
    out = {}
    for dev in ("cpu", "gpu"):
        x = fx.tensor(logits.copy())
        if dev == "gpu":
            x = fx.gpu(x)
        out[dev] = fx.withgradient(lambda x: fx.losses.ctc_loss(x, np.array([0, 2, 2])), x)
    assert out["gpu"].grad[0].device == "gpu"
    close(out["cpu"].val, out["gpu"].val)
    close(out["cpu"].grad[0], out["gpu"].grad[0])
    y = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    smoothed = fx.losses.label_smoothing(fx.gpu(fx.tensor(y)), 0.1)
    assert smoothed.device == "gpu"
    close(fx.losses.label_smoothing(fx.tensor(y), 0.1), smoothed)
