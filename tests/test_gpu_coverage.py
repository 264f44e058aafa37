"""The GPU cases the other device-parametrised files leave out, so that every public
Python layer, functional form and Tensor operation has its GPU output and gradient
compared with the CPU's (float32, within 1e-5 relative plus 1e-5 of the array's
largest value): DepthwiseConv, SamePad, 3-d Conv, trilinear Upsample, SkipConnection,
Parallel, dot_product_attention, the functional conv/pool/resample/dropout forms,
scatter's mean, the reflected arithmetic (``2 - x``, ``2 / x``, ``2 ** x``), the
activation methods, comparisons. The checklist this completes is in issue 13's notes.
Runs on any wgpu adapter (Mesa's lavapipe in CI: tiny shapes); skips, saying why, only
when none can be had."""
import copy
import math
import operator

import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core
from flux_rs._tree import tensors

pytestmark = pytest.mark.skipif(not fx.gpu_available(), reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}")


def close(cpu, gpu, what=""):
    a, b = np.asarray(cpu, dtype=np.float64), np.asarray(gpu, dtype=np.float64)
    assert a.shape == b.shape, what
    tol = 1e-5 * (np.abs(a) + np.abs(a).max(initial=0.0)) + 1e-30
    assert np.all(np.abs(a - b) <= tol), f"{what}: largest difference {np.abs(a - b).max()}"


def arr(shape, seed, lo=-1.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(np.float32)


def run(f, model, xs, device):
    """``f(model, *xs)``, and the gradients of ``sum(f(...) * w)`` for a fixed ``w`` with
    respect to the model (when there is one) and every input, on ``device``."""
    ts = [fx.tensor(x.copy()) for x in xs]
    if device == "gpu":
        ts = [fx.gpu(t) for t in ts]
        model = fx.gpu(copy.deepcopy(model)) if model is not None else None
    y = f(model, *ts)
    w = fx.tensor(arr(y.shape, 99))
    if device == "gpu":
        w = fx.gpu(w)
    grads = fx.gradient(lambda m, *a: (f(m, *a) * w).sum(), model, *ts)
    return y, [t for g in grads if g is not None for t in tensors(g)]


# (name, model or None, f(model, *inputs), input shapes)
CASES = [
    ("DepthwiseConv", fx.DepthwiseConv((3, 3), 2, 4, fx.relu, pad=1), lambda m, x: m(x), [(2, 2, 5, 4)]),
    ("Conv SamePad stride 2", fx.Conv((3, 2), 2, 3, pad=fx.SamePad(), stride=2), lambda m, x: m(x), [(1, 2, 5, 5)]),
    ("Conv 3-d", fx.Conv((2, 2, 2), 1, 2, fx.tanh), lambda m, x: m(x), [(1, 1, 3, 3, 4)]),
    ("ConvTranspose grouped, outpad", fx.ConvTranspose((3,), 2, 4, stride=2, groups=2, outpad=1),
     lambda m, x: m(x), [(2, 2, 4)]),
    ("Upsample trilinear", fx.Upsample("trilinear", scale=2), lambda m, x: m(x), [(1, 1, 2, 3, 2)]),
    ("SkipConnection", fx.SkipConnection(fx.Dense(3, 3, fx.tanh), operator.add), lambda m, x: m(x), [(4, 3)]),
    ("SkipConnection cat", fx.SkipConnection(fx.Dense(3, 2), lambda y, x: fx.cat([y, x], dim=1)),
     lambda m, x: m(x), [(4, 3)]),
    ("Parallel", fx.Parallel(operator.add, fx.Dense(3, 2), fx.Dense(3, 2, fx.relu)), lambda m, x: m(x), [(4, 3)]),
    ("Parallel two inputs, named", fx.Parallel(lambda a, b: fx.cat([a, b], dim=1), a=fx.Dense(3, 2), b=fx.Dense(2, 1)),
     lambda m, x, y: m(x, y), [(4, 3), (4, 2)]),
    ("dot_product_attention", None, lambda m, q, k, v: fx.dot_product_attention(q, k, v, nheads=2)[0],
     [(2, 3, 4), (2, 5, 4), (2, 5, 4)]),
    ("dot_product_attention causal, α", None,
     lambda m, q, k, v: fx.dot_product_attention(q, k, v, mask=fx.make_causal_mask(np.zeros((3, 3))), nheads=2)[1],
     [(1, 3, 4), (1, 3, 4), (1, 3, 4)]),
    ("conv", None, lambda m, x, w: fx.conv(x, w, stride=2, pad=1), [(1, 2, 5, 5), (3, 2, 3, 3)]),
    ("conv_transpose", None, lambda m, x, w: fx.conv_transpose(x, w, stride=2), [(1, 3, 3, 3), (3, 2, 2, 2)]),
    ("maxpool", None, lambda m, x: fx.maxpool(x, (2, 2)), [(1, 2, 4, 6)]),
    ("meanpool", None, lambda m, x: fx.meanpool(x, (3,), stride=2, pad=1), [(2, 2, 7)]),
    ("upsample_nearest", None, lambda m, x: fx.upsample_nearest(x, (2, 3)), [(1, 2, 2, 2)]),
    ("upsample_bilinear", None, lambda m, x: fx.upsample_bilinear(x, size=(4, 5)), [(1, 2, 2, 3)]),
    ("pixel_shuffle", None, lambda m, x: fx.pixel_shuffle(x, 2), [(1, 4, 2, 3)]),
    ("scatter mean", None, lambda m, x: fx.scatter(x, np.array([1, 0, 1, 2]), op="mean"), [(4, 3)]),
    ("reflected arithmetic", None, lambda m, x: (2.0 - x) + 3.0 / (x + 2.0) + 2.0 ** x + (1.0 + x) * 0.5, [(3, 4)]),
    ("unary plus, abs method, T", None, lambda m, x: (+x).abs() + x.T.T, [(3, 4)]),
    ("activation methods", None, lambda m, x: x.relu() + x.sigmoid() + x.tanh(), [(3, 4)]),
    ("identity and σ", None, lambda m, x: fx.identity(x) * fx.σ(x), [(3, 4)]),
    ("sum and mean of everything", None, lambda m, x: x.sum() + x.mean(dims=0).sum(), [(3, 4)]),
    ("numpy matmul from the left", None, lambda m, x: np.eye(3, dtype=np.float32) @ x, [(3, 4)]),
]


@pytest.mark.parametrize("name,model,f,shapes", CASES, ids=[c[0] for c in CASES])
def test_the_remaining_layers_and_ops_give_the_cpu_value_and_gradients_on_the_gpu(name, model, f, shapes):
    xs = [arr(s, i) for i, s in enumerate(shapes)]
    y_cpu, g_cpu = run(f, model, xs, "cpu")
    y_gpu, g_gpu = run(f, model, xs, "gpu")
    assert y_gpu.device == "gpu"
    close(y_cpu, y_gpu, name)
    assert len(g_gpu) == len(g_cpu) and len(g_cpu) >= 1
    for i, (a, b) in enumerate(zip(g_cpu, g_gpu)):
        assert b.device == "gpu", f"{name}: gradient {i} came back on the {b.device}"
        close(a, b, f"{name}: gradient {i}")


def test_comparisons_on_the_gpu_give_the_cpu_masks():
    a, b = arr((3, 4), 1), arr((3, 4), 2)
    a[0, 0] = b[0, 0]
    # (== and != are Python's identity comparisons, as for any object; Tensor.eq compares elements)
    ops = [operator.lt, operator.le, operator.gt, operator.ge, lambda x, y: x.eq(y)]
    for op in ops:
        on_gpu = op(fx.gpu(fx.tensor(a)), fx.gpu(fx.tensor(b)))
        assert on_gpu.device == "gpu", op.__name__
        np.testing.assert_array_equal(np.asarray(op(fx.tensor(a), fx.tensor(b))), np.asarray(on_gpu), op.__name__)
    assert np.asarray(fx.gpu(fx.tensor(a)).eq(fx.gpu(fx.tensor(b))))[0, 0] == 1.0
    np.testing.assert_array_equal(np.asarray(fx.gpu(fx.tensor(a)) > 0.0), np.asarray(fx.tensor(a) > 0.0))


def test_copy_and_astype_stay_on_the_gpu():
    x = fx.gpu(fx.tensor(arr((3, 4), 4)))
    c = x.copy()
    assert c.device == "gpu" and c is not x
    np.testing.assert_array_equal(np.asarray(c), np.asarray(x))
    assert x.astype(np.float32).device == "gpu"


def test_functional_dropout_on_the_gpu_keeps_the_probability_and_its_backward_uses_the_mask():
    x = fx.gpu(fx.ones32(32, 32))
    for f, p in ((fx.dropout, 0.3), (fx.alpha_dropout, 0.2)):
        def g(x):
            g.y = f(x, p, rng=fx.Rng(3))
            return (g.y * g.y).sum() * 0.5
        (dx,) = fx.gradient(g, x)
        assert g.y.device == "gpu" and dx.device == "gpu"
        y = np.asarray(g.y)
        kept = np.isclose(y, y.max())
        assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / y.size), f.__name__
        if f is fx.dropout:  # d ½Σ(m·x)²/dx = m²·x: zero where dropped
            np.testing.assert_array_equal(np.asarray(dx) == 0, y == 0)


def test_numbers_and_host_arrays_join_a_gpu_tensor_on_its_device():
    """Host data (numbers, numpy arrays, float64 ones made float32 as fx.gpu does) taken by
    an op next to a GPU tensor is made on the GPU, in functions as in operators; a CPU
    Tensor next to a GPU one stays an error naming both devices."""
    x = arr((3, 4), 5)
    g, c = fx.gpu(fx.tensor(x)), fx.tensor(x)
    h, h64 = np.ones((3, 4), np.float32), np.ones((3, 4))
    y = np.eye(4, dtype=np.float32)[[0, 1, 3]]
    cases = [
        ("operator with float64", lambda t: t + h64),
        ("where, scalar a", lambda t: fx.where(x > 0, 0.5, t)),
        ("where, array a", lambda t: fx.where(t > 0, h, t)),
        ("where, scalar b", lambda t: fx.where(x > 0, t, 0.0)),
        ("mse, array target", lambda t: fx.losses.mse(t, h)),
        ("logitcrossentropy, array target", lambda t: fx.losses.logitcrossentropy(t, y)),
        ("focal_loss", lambda t: fx.losses.focal_loss(fx.softmax(t), y)),
        ("siamese_contrastive_loss", lambda t: fx.losses.siamese_contrastive_loss(t, np.ones((3, 4), np.float32))),
        ("cat", lambda t: fx.cat([t, np.ones((1, 4), np.float32)], dim=0)),
        ("stack", lambda t: fx.stack([h, t])),
        ("maximum", lambda t: fx.maximum(h, t)),
        ("minimum", lambda t: fx.minimum(t, 0.1)),
    ]
    for name, f in cases:
        on_gpu = f(g)
        assert on_gpu.device == "gpu", name
        close(f(c), on_gpu, name)
    for f in (lambda: fx.losses.mse(g, h64), lambda: fx.stack([h64, g]), lambda: fx.where(x > 0, h64, g)):
        assert f().device == "gpu" and f().dtype == np.float32  # float64 host data made float32
    for f in (lambda: fx.cat([g, c]), lambda: fx.losses.mse(g, c), lambda: fx.where(g > 0, c, g), lambda: fx.maximum(c, g)):
        with pytest.raises(ValueError, match="(?s)(cpu.*gpu|gpu.*cpu)"):
            f()


@pytest.mark.parametrize("p", [2, 1, np.inf, 3, 0])
def test_clip_norm_of_gpu_gradients_gives_the_cpu_norm_and_scaling(p):
    rng = np.random.default_rng(6)
    grads = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32) * 3}
    cpu = {k: fx.tensor(v) for k, v in grads.items()}
    gpu = {k: fx.gpu(fx.tensor(v)) for k, v in grads.items()}
    mixed = {"w": fx.gpu(fx.tensor(grads["w"])), "b": grads["b"].copy()}  # one on the GPU, one a host array
    n_cpu, n_gpu, n_mixed = fx.clip_norm_(cpu, 1.0, p), fx.clip_norm_(gpu, 1.0, p), fx.clip_norm_(mixed, 1.0, p)
    assert n_gpu == pytest.approx(n_cpu, rel=1e-5) and n_mixed == pytest.approx(n_cpu, rel=1e-5)
    assert n_cpu > 1.0
    for k in grads:
        assert gpu[k].device == "gpu"
        close(cpu[k], gpu[k], k)
        close(cpu[k], mixed[k], k)
    bad = {"w": fx.gpu(fx.tensor(np.array([1.0, np.inf], np.float32)))}
    if p == 0:  # the count of non-zero entries, finite
        assert fx.clip_norm_(bad, 3.0, p) == 2
    else:
        with pytest.raises(ValueError, match="norm"):
            fx.clip_norm_(bad, 1.0, p)


def test_clip_norm_of_gpu_and_host_gradients_whose_sum_of_squares_overflows():
    """A GPU gradient's norm joins host gradients' sum of squares; where that overflows it is
    summed again scaled by the largest (the GPU norm included)."""
    big = np.full(3, 1e300)
    for grads, want in (([fx.gpu(fx.tensor(np.full(4, 2.0, np.float32))), big], 1e300 * math.sqrt(3)),
                        ([fx.gpu(fx.tensor(np.full(4, 3e37, np.float32))), np.full(2, 1e200)], math.hypot(6e37, 1e200 * math.sqrt(2)))):
        n = fx.clip_norm_(grads, 1.0)
        assert n == pytest.approx(want, rel=1e-6)
        assert np.linalg.norm(np.concatenate([np.asarray(g, np.float64).ravel() for g in grads])) == pytest.approx(1.0, rel=1e-5)
