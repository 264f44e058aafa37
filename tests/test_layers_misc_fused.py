"""ConvTranspose, Scale, Bilinear, Maxout, Upsample and PixelShuffle are shells over one
Rust call each: no tensor arithmetic in Python, exactly one computing `_core` function
per forward (Maxout: one beyond its members' own), inside a gradient too, and the same
bits as the Rust layers (`flux_core::nn::{conv, scale, bilinear, combinators,
resample}`) built from the same parameters."""
import numpy as np
import pytest

import flux_rs as fx
from conftest import core_calls, no_arithmetic
from flux_rs import _core

RNG = np.random.default_rng(31)


def data(*shape, dtype="float32"):
    return fx.tensor(RNG.normal(size=shape), dtype)


def bits(t):
    return np.asarray(t).tobytes()


LAYERS = [
    (lambda: fx.ConvTranspose((3, 3), 4, 6, fx.relu, stride=2, pad=1, outpad=1, groups=2), (2, 4, 5, 5),
     ["conv_transpose_layer"]),
    (lambda: fx.Scale(3, 4, σ=fx.tanh), (2, 3, 4), ["scale_layer"]),
    (lambda: fx.Scale(4, bias=False), (5, 4), ["scale_layer"]),
    (lambda: fx.Bilinear((3, 4), 2, fx.elu), None, ["bilinear_layer"]),
    (lambda: fx.Bilinear(3, 2), (5, 3), ["bilinear_layer"]),
    (lambda: fx.Maxout(lambda: fx.Dense(3, 2), 3), (5, 3), ["dense", "dense", "dense", "maxout"]),
    (lambda: fx.Upsample(scale=(2, 1.5)), (1, 2, 3, 4), ["upsample"]),
    (lambda: fx.Upsample("bilinear", size=(5, 7), align_corners=False), (1, 2, 3, 4), ["upsample"]),
    (lambda: fx.PixelShuffle(2), (2, 8, 3, 3), ["pixel_shuffle"]),
]


def call(lay, shape):
    """The layer on data of `shape` (Bilinear with shape None: on a pair of inputs)."""
    if shape is None:
        x, y = data(5, 3), data(5, 4)
        return core_calls(lay, (x, y))
    return core_calls(lay, data(*shape))


@pytest.mark.parametrize("make, shape, ops", LAYERS)
def test_each_layer_is_one_rust_call(make, shape, ops):
    lay = make()
    _, calls = call(lay, shape)
    assert calls == ops, calls
    # inside a gradient too: the layer's op is one call (and one node on the tape)
    inside = []

    def loss(m):
        y, c = call(m, shape)
        inside.extend(c)
        return y.sum()
    _, grads = fx.withgradient(loss, lay)
    assert inside == ops, inside
    assert no_arithmetic(type(lay)), f"{type(lay).__name__}.__call__ computes in Python"
    # and the gradient reaches every parameter
    assert all(np.all(np.isfinite(np.asarray(t))) for t in fx.trainables(grads[0]) if t is not None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bit_identical_to_the_rust_layers(dtype):
    # ConvTranspose, grouped, strided, with padding and output padding
    ct = fx.ConvTranspose((3, 3), 4, 6, fx.leakyrelu, stride=2, pad=1, outpad=1, groups=2)
    ct.weight, ct.bias = data(4, 3, 3, 3, dtype=dtype), data(6, dtype=dtype)
    x = data(2, 4, 5, 5, dtype=dtype)
    want = _core._misc_forward("ConvTranspose", x, weight=ct.weight, bias=ct.bias, act="leakyrelu", stride=[2, 2],
                               pad_lo=[1, 1], pad_hi=[1, 1], groups=2, out_pad=[1, 1])
    got = ct(x)
    assert got.shape == (2, 6, 10, 10)
    assert bits(got) == bits(want)
    # Scale, with and without bias
    sc = fx.Scale(3, 4, σ=fx.tanh)
    sc.scale, sc.bias = data(3, 4, dtype=dtype), data(3, 4, dtype=dtype)
    x = data(2, 3, 4, dtype=dtype)
    assert bits(sc(x)) == bits(_core._misc_forward("Scale", x, weight=sc.scale, bias=sc.bias, act="tanh"))
    nb = fx.Scale(4, bias=False)
    nb.scale = data(4, dtype=dtype)
    x = data(5, 4, dtype=dtype)
    assert bits(nb(x)) == bits(_core._misc_forward("Scale", x, weight=nb.scale))
    # Bilinear on two inputs and on one
    bl = fx.Bilinear((3, 4), 2, fx.elu)
    bl.weight, bl.bias = data(2, 3, 4, dtype=dtype), data(2, dtype=dtype)
    x, y = data(5, 3, dtype=dtype), data(5, 4, dtype=dtype)
    assert bits(bl(x, y)) == bits(_core._misc_forward("Bilinear", x, y=y, weight=bl.weight, bias=bl.bias, act="elu"))
    sq = fx.Bilinear(3, 2, bias=False)
    sq.weight = data(2, 3, 3, dtype=dtype)
    assert bits(sq(x)) == bits(_core._misc_forward("Bilinear", x, weight=sq.weight))
    # Maxout of Dense members
    mo = fx.Maxout(lambda: fx.Dense(3, 2), 3)
    for d in mo.layers:
        d.weight, d.bias = data(2, 3, dtype=dtype), data(2, dtype=dtype)
    want = _core._misc_forward("Maxout", x, members=[(d.weight, d.bias) for d in mo.layers])
    assert bits(mo(x)) == bits(want)
    # Upsample, nearest and linear, by scale and by size; PixelShuffle
    x = data(1, 2, 3, 4, dtype=dtype)
    for lay, kw in [(fx.Upsample(scale=(2, 1.5)), dict(mode="nearest", scales=[2.0, 1.5])),
                    (fx.Upsample(3), dict(mode="nearest", scales=[3.0])),
                    (fx.Upsample("bilinear", size=(5, 7), align_corners=False),
                     dict(mode="bilinear", size=[5, 7], align_corners=False)),
                    (fx.Upsample("bilinear", scale=2), dict(mode="linear", scales=[2.0]))]:
        assert bits(lay(x)) == bits(_core._misc_forward("Upsample", x, **kw)), lay
    x = data(2, 8, 3, 3, dtype=dtype)
    assert bits(fx.PixelShuffle(2)(x)) == bits(_core._misc_forward("PixelShuffle", x, r=2))


def test_upsample_output_size_and_errors_come_from_rust():
    x = data(1, 1, 4, 5)
    assert fx.Upsample(scale=1.5)(x).shape == (1, 1, 6, 7)       # floor(4·1.5), floor(5·1.5)
    assert fx.Upsample(size=3)(x).shape == (1, 1, 3, 3)
    assert fx.upsample_nearest(x, (2, 1)).shape == (1, 1, 8, 5)
    with pytest.raises(ValueError, match="scale needs 1 or 2 entries"):
        fx.Upsample(scale=(2, 2, 2))(x)
    with pytest.raises(ValueError, match="size needs 1 or 2 entries"):
        fx.upsample_bilinear(x, size=(2, 3, 4))
    with pytest.raises(ValueError, match=r"batch, channels, spatial.*\(4, 5\)"):
        fx.Upsample(scale=2)(fx.ones32(4, 5))
    with pytest.raises(ValueError, match="empty size"):
        fx.Upsample(scale=0.1)(x)
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        _core.upsample(x, "nearest")
    with pytest.raises(ValueError, match="cubic"):
        _core.upsample(x, "cubic", [2.0])
    with pytest.raises(TypeError, match="scale must be a number"):
        fx.upsample_nearest(x, "2")


def test_pixel_shuffle_factor_is_checked():
    with pytest.raises(ValueError, match="positive factor"):
        fx.PixelShuffle(0)
    with pytest.raises(ValueError, match="positive factor"):
        fx.pixel_shuffle(fx.ones32(1, 4, 2, 2), -2)
    with pytest.raises(ValueError, match="divide by 2"):
        fx.PixelShuffle(2)(fx.ones32(1, 6, 2, 2))
