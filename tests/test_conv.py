"""Convolution, pooling and resampling: forward values against independent numpy
references (and torch.nn.functional where installed), float64 finite-difference
gradient checks of every op, output-size rules and error messages."""
import itertools

import numpy as np
import pytest

import flux_rs as fx

RNG = np.random.default_rng(1234)


def check_grad(f, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Tape gradients of ``sum(w ⊙ f(*xs))`` (fixed random ``w``) against central differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    probe = np.asarray(f(*[fx.tensor(a) for a in arrays]))
    w = np.random.default_rng(7).normal(size=probe.shape)
    wt = fx.tensor(w)
    loss = lambda *xs: (f(*xs) * wt).sum()
    grads = fx.gradient(loss, *[fx.tensor(a) for a in arrays])
    for i, a in enumerate(arrays):
        g = np.asarray(grads[i])
        assert g.shape == a.shape
        num = np.zeros_like(a)
        for k in range(a.size):
            ap, am = a.copy(), a.copy()
            ap.flat[k] += eps
            am.flat[k] -= eps
            fp = loss(*[fx.tensor(ap if j == i else b) for j, b in enumerate(arrays)]).item()
            fm = loss(*[fx.tensor(am if j == i else b) for j, b in enumerate(arrays)]).item()
            num.flat[k] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"gradient of argument {i}")


# ---- independent references -------------------------------------------------------------

def ref_conv(x, w, b=None, stride=1, pad_lo=0, pad_hi=0, dil=1, groups=1):
    n = w.ndim - 2
    st, lo, hi, d = [(v,) * n if np.isscalar(v) else tuple(v) for v in (stride, pad_lo, pad_hi, dil)]
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi)))
    k = w.shape[2:]
    out = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(n)]
    O, Cg = w.shape[:2]
    Og = O // groups
    y = np.zeros((x.shape[0], O, *out))
    for kidx in itertools.product(*[range(kk) for kk in k]):
        sl = tuple(slice(kidx[i] * d[i], kidx[i] * d[i] + st[i] * (out[i] - 1) + 1, st[i]) for i in range(n))
        slab = xp[(slice(None), slice(None)) + sl]
        for g in range(groups):
            y[:, g * Og:(g + 1) * Og] += np.einsum("nc...,oc->no...", slab[:, g * Cg:(g + 1) * Cg],
                                                   w[(slice(g * Og, (g + 1) * Og), slice(None)) + kidx])
    if b is not None:
        y += b.reshape((1, -1) + (1,) * n)
    return y


def ref_conv_transpose(x, w, stride=1, pad_lo=0, pad_hi=0, dil=1, groups=1, outpad=0):
    n = w.ndim - 2
    st, lo, hi, d, op = [(v,) * n if np.isscalar(v) else tuple(v) for v in (stride, pad_lo, pad_hi, dil, outpad)]
    N, Cin = x.shape[:2]
    Cog = w.shape[1]
    Cig = Cin // groups
    k = w.shape[2:]
    full = [(x.shape[2 + i] - 1) * st[i] + d[i] * (k[i] - 1) + 1 + op[i] for i in range(n)]
    y = np.zeros((N, Cog * groups, *full))
    for pos in itertools.product(*[range(s) for s in x.shape[2:]]):
        for kidx in itertools.product(*[range(kk) for kk in k]):
            o = tuple(pos[i] * st[i] + kidx[i] * d[i] for i in range(n))
            for g in range(groups):
                xin = x[(slice(None), slice(g * Cig, (g + 1) * Cig)) + pos]  # (N, Cig)
                ww = w[(slice(g * Cig, (g + 1) * Cig), slice(None)) + kidx]  # (Cig, Cog)
                y[(slice(None), slice(g * Cog, (g + 1) * Cog)) + o] += xin @ ww
    sl = tuple(slice(lo[i], full[i] - hi[i]) for i in range(n))
    return y[(slice(None), slice(None)) + sl]


def ref_pool(x, k, stride, lo, hi, mode):
    n = len(k)
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi)), constant_values=fill)
    out = [(xp.shape[2 + i] - k[i]) // stride[i] + 1 for i in range(n)]
    y = np.zeros(x.shape[:2] + tuple(out))
    for pos in itertools.product(*[range(o) for o in out]):
        sl = tuple(slice(pos[i] * stride[i], pos[i] * stride[i] + k[i]) for i in range(n))
        win = xp[(slice(None), slice(None)) + sl].reshape(x.shape[:2] + (-1,))
        y[(slice(None), slice(None)) + pos] = win.max(-1) if mode == "max" else win.sum(-1) / np.prod(k)
    return y


# ---- convolution --------------------------------------------------------------------------

CONV_CASES = [
    # x shape, w shape, stride, pad_lo, pad_hi, dilation, groups
    ((2, 3, 9), (4, 3, 3), 1, 0, 0, 1, 1),
    ((2, 4, 11), (6, 2, 4), 2, 2, 1, 2, 2),
    ((2, 3, 7, 8), (5, 3, 3, 3), 1, 1, 1, 1, 1),
    ((1, 4, 9, 7), (6, 2, 3, 2), (2, 1), (1, 2), (0, 1), (1, 2), 2),
    ((2, 2, 5, 6, 4), (3, 2, 2, 3, 2), (1, 2, 1), (1, 0, 1), (0, 1, 1), 1, 1),
    ((1, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, 1, 4),  # depthwise
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_numpy(case):
    xs, ws, st, lo, hi, dil, groups = case
    x, w, b = RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[0])
    n = len(ws) - 2
    tup = lambda v: (v,) * n if np.isscalar(v) else tuple(v)
    pad = tuple(v for pair in zip(tup(lo), tup(hi)) for v in pair)
    y = fx.conv(fx.tensor(x), fx.tensor(w), fx.tensor(b), stride=st, pad=pad, dilation=dil, groups=groups)
    want = ref_conv(x, w, b, st, lo, hi, dil, groups)
    assert y.shape == want.shape
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES[:5])
def test_conv_gradients(case):
    xs, ws, st, lo, hi, dil, groups = case
    n = len(ws) - 2
    tup = lambda v: (v,) * n if np.isscalar(v) else tuple(v)
    pad = tuple(v for pair in zip(tup(lo), tup(hi)) for v in pair)
    x, w, b = RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[0])
    check_grad(lambda x, w, b: fx.conv(x, w, b, stride=st, pad=pad, dilation=dil, groups=groups), x, w, b)


def test_conv_batch_threads_agree_with_single_samples():
    # the batch is split over threads: each sample must equal its own convolution
    x, w = RNG.normal(size=(9, 3, 12, 12)).astype(np.float32), RNG.normal(size=(8, 3, 3, 3)).astype(np.float32)
    y = np.asarray(fx.conv(fx.tensor(x), fx.tensor(w), pad=1))
    for i in range(9):
        np.testing.assert_allclose(y[i:i + 1], np.asarray(fx.conv(fx.tensor(x[i:i + 1]), fx.tensor(w), pad=1)),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, ref_conv(x.astype(np.float64), w.astype(np.float64), pad_lo=1, pad_hi=1),
                               rtol=1e-4, atol=1e-4)


CONVT_CASES = [
    ((2, 3, 4), (3, 2, 3), 2, 1, 1, 1, 1, 1),
    ((1, 4, 3, 4), (4, 3, 3, 2), (2, 1), (1, 0), (0, 1), (1, 2), 2, (1, 0)),
    ((2, 2, 3, 3), (2, 3, 2, 2), 2, 0, 0, 1, 1, 0),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), 2, 1, 0, 1, 1, 1),
]


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose_forward_and_gradients(case):
    xs, ws, st, lo, hi, dil, groups, op = case
    n = len(ws) - 2
    tup = lambda v: (v,) * n if np.isscalar(v) else tuple(v)
    pad = tuple(v for pair in zip(tup(lo), tup(hi)) for v in pair)
    x, w, b = RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[1] * groups)
    f = lambda x, w, b: fx.conv_transpose(x, w, b, stride=st, pad=pad, dilation=dil, groups=groups, outpad=op)
    y = f(fx.tensor(x), fx.tensor(w), fx.tensor(b))
    want = ref_conv_transpose(x, w, st, lo, hi, dil, groups, op) + b.reshape((1, -1) + (1,) * n)
    assert y.shape == want.shape
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12, atol=1e-12)
    check_grad(f, x, w, b)


def test_conv_transpose_is_the_adjoint_of_conv():
    x, w = RNG.normal(size=(2, 4, 9, 9)), RNG.normal(size=(6, 2, 3, 3))
    y = fx.conv(fx.tensor(x), fx.tensor(w), stride=2, pad=1, groups=2)
    u = RNG.normal(size=y.shape)
    xt = fx.conv_transpose(fx.tensor(u), fx.tensor(w), stride=2, pad=1, groups=2)
    assert xt.shape == x.shape
    np.testing.assert_allclose((np.asarray(y) * u).sum(), (x * np.asarray(xt)).sum(), rtol=1e-12)


def test_conv_layer_shapes_samepad_and_repr():
    c = fx.Conv((3, 3), 2, 4, fx.relu, pad=fx.SamePad())
    assert c.weight.shape == (4, 2, 3, 3) and c.bias.shape == (4,)
    assert c(fx.ones32(1, 2, 7, 6)).shape == (1, 4, 7, 6)
    # stride 2 with SamePad: ceil(n / 2)
    assert fx.Conv((3, 3), 2, 4, pad=fx.SamePad(), stride=2)(fx.ones32(1, 2, 7, 6)).shape == (1, 4, 4, 3)
    # even kernel and dilation: total padding dilation·(k − 1), larger half first
    c2 = fx.Conv((4,), 1, 1, pad=fx.SamePad(), dilation=2, bias=False, init=fx.ones32)
    y = np.asarray(c2(fx.tensor(np.arange(8, dtype=np.float32).reshape(1, 1, 8))))
    x = np.pad(np.arange(8.0), (3, 3))
    np.testing.assert_allclose(y[0, 0], [x[i] + x[i + 2] + x[i + 4] + x[i + 6] for i in range(8)])
    assert "Conv((3, 3), 2 => 4, relu" in repr(c)
    assert fx.Conv((3,), 1, 2, bias=False).bias is False
    assert fx.DepthwiseConv((3, 3), 3, 6).weight.shape == (6, 1, 3, 3)
    assert fx.Conv(3, 1, 2).weight.shape == (2, 1, 3, 3)


def test_conv_layer_matches_functional_with_activation():
    c = fx.Conv((3, 3), 3, 5, fx.relu, stride=2, pad=1)
    x = fx.randn32(2, 3, 8, 8)
    want = np.maximum(np.asarray(fx.conv(x, c.weight, c.bias, stride=2, pad=1)), 0)
    np.testing.assert_allclose(np.asarray(c(x)), want, rtol=1e-6)


def test_conv_layer_gradient_through_parameters():
    fx.seed(3)
    c = fx.Conv((2, 2), 2, 3, fx.tanh, init=fx.glorot_uniform(dtype="float64"), pad=(1, 0, 0, 1))
    x = RNG.normal(size=(2, 2, 4, 4))
    (g,) = fx.gradient(lambda m: (m(x) ** 2).sum(), c)
    w0 = np.asarray(c.weight).copy()

    def f(wv):
        return float(((np.tanh(ref_conv(x, wv, np.asarray(c.bias), 1, (1, 0), (0, 1)))) ** 2).sum())
    num = np.zeros_like(w0)
    for k in range(w0.size):
        wp, wm = w0.copy(), w0.copy()
        wp.flat[k] += 1e-6
        wm.flat[k] -= 1e-6
        num.flat[k] = (f(wp) - f(wm)) / 2e-6
    np.testing.assert_allclose(np.asarray(g.weight), num, rtol=1e-5, atol=1e-7)


def test_conv_transpose_layer():
    ct = fx.ConvTranspose((3, 3), 4, 2, stride=2, pad=1, outpad=1)
    assert ct.weight.shape == (4, 2, 3, 3) and ct.bias.shape == (2,)
    assert ct(fx.ones32(1, 4, 5, 5)).shape == (1, 2, 10, 10)
    assert "ConvTranspose((3, 3), 4 => 2" in repr(ct)


def test_conv_errors_name_expected_and_received_shapes():
    c = fx.Conv((3, 3), 3, 4)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*\(2, 2, 8, 8\)"):
        c(fx.ones32(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"4-d input.*\(2, 3, 8\)"):
        c(fx.ones32(2, 3, 8))
    with pytest.raises(ValueError, match="does not fit"):
        c(fx.ones32(1, 3, 2, 2))
    m = fx.Chain(fx.Conv((3, 3), 1, 2), fx.Conv((3, 3), 3, 4))
    with pytest.raises(ValueError, match=r"layer 1.*expects 3 input channels.*\(1, 2, 6, 6\)"):
        m(fx.ones32(1, 1, 8, 8))
    with pytest.raises(ValueError):
        fx.Conv((3, 3), 3, 4, groups=2)
    with pytest.raises(ValueError):
        fx.Conv((3, 3), 1, 1, pad=(1, 2, 3))
    with pytest.raises(ValueError):
        fx.conv(fx.ones32(1, 4, 5, 5), fx.ones32(2, 3, 3, 3))


# ---- pooling ------------------------------------------------------------------------------

POOL_CASES = [
    ((2, 3, 8), (2,), (2,), (0,), (0,)),
    ((2, 2, 7, 6), (3, 2), (2, 2), (1, 0), (1, 1)),
    ((1, 2, 6, 6), (2, 2), (1, 1), (0, 0), (0, 0)),
    ((1, 2, 4, 5, 4), (2, 2, 3), (2, 1, 1), (0, 1, 1), (1, 0, 1)),
]


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_forward_and_gradients(case, mode):
    xs, k, st, lo, hi = case
    x = RNG.permutation(np.prod(xs)).reshape(xs).astype(np.float64) / 7.0  # distinct: no max ties
    pad = tuple(v for pair in zip(lo, hi) for v in pair)
    f = (lambda t: fx.maxpool(t, k, pad=pad, stride=st)) if mode == "max" else (
        lambda t: fx.meanpool(t, k, pad=pad, stride=st))
    y = f(fx.tensor(x))
    want = ref_pool(x, k, st, lo, hi, mode)
    assert y.shape == want.shape
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12)
    check_grad(f, x)


def test_pool_layers():
    x = fx.tensor(RNG.normal(size=(2, 3, 8, 6)))
    assert fx.MaxPool((2, 2))(x).shape == (2, 3, 4, 3)
    assert fx.MeanPool((3, 3), stride=1, pad=1)(x).shape == (2, 3, 8, 6)
    xn = np.asarray(x)
    np.testing.assert_allclose(np.asarray(fx.GlobalMaxPool()(x)), xn.max(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(np.asarray(fx.GlobalMeanPool()(x)), xn.mean(axis=(2, 3), keepdims=True))
    # adaptive: stride = in ÷ out, window = in − (out − 1)·stride
    a = np.asarray(fx.AdaptiveMaxPool((3, 2))(x))
    np.testing.assert_allclose(a, ref_pool(xn, (4, 3), (2, 3), (0, 0), (0, 0), "max"))
    a = np.asarray(fx.AdaptiveMeanPool((4, 3))(x))
    np.testing.assert_allclose(a, xn.reshape(2, 3, 4, 2, 3, 2).mean(axis=(3, 5)))
    assert repr(fx.MaxPool((2, 2))) == "MaxPool((2, 2))"
    with pytest.raises(ValueError, match=r"4-d input.*\(2, 8\)"):
        fx.MaxPool((2, 2))(fx.ones32(2, 8))


def test_global_pool_gradients():
    x = RNG.permutation(48).reshape(2, 3, 2, 4) / 5.0
    check_grad(lambda t: fx.GlobalMaxPool()(t), x)
    check_grad(lambda t: fx.GlobalMeanPool()(t), x)
    check_grad(lambda t: fx.AdaptiveMeanPool((2, 2))(t), x)


# ---- resampling ---------------------------------------------------------------------------

def ref_linear_axis(x, axis, m, align):
    n = x.shape[axis]
    out = []
    for j in range(m):
        if align:
            s = j * (n - 1) / (m - 1) if m > 1 else 0.0
        else:
            s = max((j + 0.5) * n / m - 0.5, 0.0)
        i0 = min(int(np.floor(s)), n - 1)
        i1 = min(i0 + 1, n - 1)
        t = s - i0 if i1 != i0 else 0.0
        out.append((1 - t) * np.take(x, i0, axis) + t * np.take(x, i1, axis))
    return np.stack(out, axis)


@pytest.mark.parametrize("align", [True, False])
def test_upsample_bilinear(align):
    x = RNG.normal(size=(2, 2, 3, 4))
    y = fx.upsample_bilinear(fx.tensor(x), (2, 1.5), align_corners=align)
    want = ref_linear_axis(ref_linear_axis(x, 2, 6, align), 3, 6, align)
    assert y.shape == want.shape
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12, atol=1e-12)
    check_grad(lambda t: fx.upsample_bilinear(t, size=(5, 7), align_corners=align), x)


def test_upsample_nearest_and_layer():
    x = RNG.normal(size=(1, 2, 3, 2))
    y = fx.upsample_nearest(fx.tensor(x), (2, 3))
    np.testing.assert_array_equal(np.asarray(y), x.repeat(2, axis=2).repeat(3, axis=3))
    check_grad(lambda t: fx.upsample_nearest(t, 2), x)
    assert fx.Upsample(scale=2)(fx.tensor(x)).shape == (1, 2, 6, 4)
    assert fx.Upsample("bilinear", size=(4, 4))(fx.tensor(x)).shape == (1, 2, 4, 4)
    assert fx.Upsample(3)(fx.tensor(x)).shape == (1, 2, 9, 6)
    with pytest.raises(ValueError):
        fx.Upsample("cubic", scale=2)
    with pytest.raises(ValueError):
        fx.Upsample(scale=2, size=3)


def test_pixel_shuffle():
    x = RNG.normal(size=(2, 8, 3, 2))
    y = np.asarray(fx.PixelShuffle(2)(fx.tensor(x)))
    want = x.reshape(2, 2, 2, 2, 3, 2).transpose(0, 1, 4, 2, 5, 3).reshape(2, 2, 6, 4)
    np.testing.assert_array_equal(y, want)
    check_grad(lambda t: fx.pixel_shuffle(t, 2), x)
    with pytest.raises(ValueError):
        fx.pixel_shuffle(fx.ones32(1, 6, 2, 2), 2)


# ---- against PyTorch ----------------------------------------------------------------------

def test_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b = RNG.normal(size=(2, 4, 9, 8)), RNG.normal(size=(6, 2, 3, 2)), RNG.normal(size=6)
    y = fx.conv(fx.tensor(x), fx.tensor(w), fx.tensor(b), stride=(2, 1), pad=(1, 2), dilation=(1, 2), groups=2)
    want = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=(2, 1), padding=(1, 2),
                    dilation=(1, 2), groups=2)
    np.testing.assert_allclose(np.asarray(y), want.numpy(), rtol=1e-10, atol=1e-10)
    wt = RNG.normal(size=(4, 3, 3, 3))
    y = fx.conv_transpose(fx.tensor(x), fx.tensor(wt), stride=2, pad=1, outpad=1)
    want = F.conv_transpose2d(torch.tensor(x), torch.tensor(wt), stride=2, padding=1, output_padding=1)
    np.testing.assert_allclose(np.asarray(y), want.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(fx.maxpool(fx.tensor(x), (3, 2), stride=2, pad=1)),
                               F.max_pool2d(torch.tensor(x), (3, 2), stride=2, padding=1).numpy())
    np.testing.assert_allclose(np.asarray(fx.meanpool(fx.tensor(x), (3, 2), stride=2, pad=1)),
                               F.avg_pool2d(torch.tensor(x), (3, 2), stride=2, padding=1).numpy(), rtol=1e-12)
    for align in (True, False):
        np.testing.assert_allclose(
            np.asarray(fx.upsample_bilinear(fx.tensor(x), size=(13, 11), align_corners=align)),
            F.interpolate(torch.tensor(x), size=(13, 11), mode="bilinear", align_corners=align).numpy(),
            rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(fx.upsample_nearest(fx.tensor(x), size=(13, 11))),
                               F.interpolate(torch.tensor(x), size=(13, 11), mode="nearest").numpy())
    np.testing.assert_array_equal(np.asarray(fx.pixel_shuffle(fx.tensor(x), 2)),
                                  F.pixel_shuffle(torch.tensor(x), 2).numpy())
