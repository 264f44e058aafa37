"""Convolution, pooling and resampling layers (NCHW, PyTorch weight layout).

Every layer is a thin shell over one Rust kernel in ``flux_rs._core``; these classes
only hold parameters, normalise arguments and name shapes in error messages.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from ._typing import Activation, TensorLike, check_activation
from .activations import identity
from .init import glorot_uniform
from .layers import _fn_name, _fused, as_input, make_bias, make_weight

__all__ = ["SamePad", "Conv", "ConvTranspose", "DepthwiseConv", "MaxPool", "MeanPool", "GlobalMaxPool",
           "GlobalMeanPool", "AdaptiveMaxPool", "AdaptiveMeanPool", "Upsample", "PixelShuffle",
           "conv", "conv_transpose", "maxpool", "meanpool", "upsample_nearest", "upsample_bilinear",
           "pixel_shuffle"]


class SamePad:
    """Padding that keeps the spatial size at stride 1 (``ceil(n / stride)`` otherwise):
    total ``dilation·(k − 1)`` per dimension, the larger half first (as Flux).

    >>> import flux_rs as fx
    >>> fx.Conv((3, 3), 1, 2, pad=fx.SamePad())(fx.ones32(1, 1, 5, 5)).shape
    (1, 2, 5, 5)
    """

    def __repr__(self):
        return "SamePad()"


def _ints(v, what: str) -> tuple:
    """``v`` (an int or a sequence of them) as a tuple of non-negative ints: a
    ValueError naming ``what`` for a negative entry, a TypeError for a non-integer."""
    vs = (v,) if isinstance(v, (int, np.integer)) else v
    try:
        vs = tuple(vs)
    except TypeError:
        raise TypeError(f"{what} must be an int or a tuple of ints, got {v!r}") from None
    for a in vs:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{what} must be an int or a tuple of ints, got {v!r}")
        if a < 0:
            raise ValueError(f"{what} must not be negative, got {v!r}")
    return tuple(int(a) for a in vs)


def _tuple(v, n: int, what: str) -> tuple:
    v = _ints(v, what)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"{what} needs 1 or {n} entries, got {v}")
    return v


def _positive(v: tuple, what: str) -> tuple:
    """``v`` with every entry at least 1 (a stride or dilation of 0 has no meaning)."""
    if any(a < 1 for a in v):
        raise ValueError(f"{what} must be at least 1, got {v}")
    return v


def _kernel(k) -> tuple:
    if isinstance(k, (int, np.integer)):
        return (int(k), int(k))
    k = tuple(int(a) for a in k)
    if not 1 <= len(k) <= 3 or any(a <= 0 for a in k):
        raise ValueError(f"a kernel/window size must be 1 to 3 positive ints, got {k}")
    return k


def _pads(pad, k: tuple, dilation: tuple) -> tuple[list[int], list[int]]:
    """(lo, hi) per spatial dim from an int, an N-tuple, a 2N-tuple (lo, hi per dim, in
    NCHW order) or SamePad()."""
    n = len(k)
    if isinstance(pad, SamePad) or pad is SamePad:
        tot = [d * (kk - 1) for kk, d in zip(k, dilation)]
        return [-(-t // 2) for t in tot], [t // 2 for t in tot]
    if isinstance(pad, str) and pad.lower() == "same":
        return _pads(SamePad(), k, dilation)
    p = _ints(pad, "pad")
    if len(p) == 1:
        return [p[0]] * n, [p[0]] * n
    if len(p) == n:
        return list(p), list(p)
    if len(p) == 2 * n:
        return list(p[0::2]), list(p[1::2])
    raise ValueError(f"pad must be an int, {n} ints, {2 * n} ints (lo, hi per dimension) or SamePad(), got {pad!r}")


def _check_input(layer, x: Tensor, n: int, ch: int | None):
    """A ValueError naming what the layer expects and what it got."""
    if x.ndim != n + 2:
        raise ValueError(f"{layer!r} expects a {n + 2}-d input (batch, channels, {n} spatial), "
                         f"got shape {tuple(x.shape)}")
    if ch is not None and x.shape[1] != ch:
        raise ValueError(f"{layer!r} expects {ch} input channels (dimension 1), got shape {tuple(x.shape)}")


def conv(x, w, b=None, *, stride=1, pad=0, dilation=1, groups=1):
    """Functional cross-correlation (``torch.nn.functional.conv{1,2,3}d``): ``x`` (N, C,
    spatial...), ``w`` (O, C / groups, k...), optional bias (O,).

    >>> import flux_rs as fx
    >>> fx.conv(fx.ones32(1, 1, 4, 4), fx.ones32(1, 1, 3, 3)).tolist()
    [[[[9.0, 9.0], [9.0, 9.0]]]]
    """
    w = w if isinstance(w, Tensor) else _core.tensor(w)
    k = tuple(w.shape[2:])
    n = len(k)
    s, d = _tuple(stride, n, "stride"), _tuple(dilation, n, "dilation")
    lo, hi = _pads(pad, k, d)
    return _core.conv(x, w, b, list(s), lo, hi, list(d), int(groups))


def conv_transpose(x, w, b=None, *, stride=1, pad=0, dilation=1, groups=1, outpad=0):
    """Functional transposed convolution (``conv_transpose{1,2,3}d``): ``w`` (C_in,
    C_out / groups, k...).

    >>> import flux_rs as fx
    >>> fx.conv_transpose(fx.ones32(1, 1, 2, 2), fx.ones32(1, 1, 2, 2), stride=2).shape
    (1, 1, 4, 4)
    """
    w = w if isinstance(w, Tensor) else _core.tensor(w)
    k = tuple(w.shape[2:])
    n = len(k)
    s, d = _tuple(stride, n, "stride"), _tuple(dilation, n, "dilation")
    lo, hi = _pads(pad, k, d)
    return _core.conv_transpose(x, w, b, list(s), lo, hi, list(d), int(groups), list(_tuple(outpad, n, "outpad")))


class Conv:
    """Convolution layer: ``σ(conv(x, weight) + bias)`` with weight (out, in / groups, k...)
    as in PyTorch, input (batch, in, spatial...). ``k`` is a tuple (1 to 3 dims; an int
    means a square 2-D kernel). ``pad`` is an int, one int per dim, (lo, hi) per dim or
    ``fx.SamePad()``.

    >>> import flux_rs as fx
    >>> c = fx.Conv((5, 5), 1, 6, fx.relu)
    >>> c.weight.shape, c(fx.ones32(2, 1, 28, 28)).shape
    ((6, 1, 5, 5), (2, 6, 24, 24))
    """

    def __init__(self, k: int | Sequence[int], in_: int, out: int, σ: Activation = identity, *, stride: int | Sequence[int] = 1, pad: Any = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool | TensorLike = True, init: Callable[..., Any] = glorot_uniform,
                 rng: Any = None) -> None:
        k = _kernel(k)
        if not (isinstance(in_, int) and isinstance(out, int)) or in_ <= 0 or out <= 0:
            raise TypeError(f"Conv(k, in_, out) takes two positive sizes, got {in_!r}, {out!r}")
        if groups <= 0 or in_ % groups or out % groups:
            raise ValueError(f"in_ ({in_}) and out ({out}) must both be divisible by groups ({groups})")
        n = len(k)
        self.weight = make_weight(init, (out, in_ // groups) + k, rng)
        self.bias = make_bias(bias, out, self.weight.dtype)
        self.σ = check_activation(type(self).__name__, σ)
        self.stride = _positive(_tuple(stride, n, "stride"), "stride")
        self.dilation = _positive(_tuple(dilation, n, "dilation"), "dilation")
        self.pad = pad if isinstance(pad, SamePad) else pad
        self.groups = int(groups)
        _pads(pad, k, self.dilation)  # validate now, not at the first call

    def __call__(self, x):
        w = self.weight
        x = as_input(x, w.dtype)
        k = tuple(w.shape[2:])
        _check_input(self, x, len(k), w.shape[1] * self.groups)
        lo, hi = _pads(self.pad, k, self.dilation)
        b = self.bias if isinstance(self.bias, Tensor) else None
        act, param, post = _fused(self.σ)
        y = _core.conv(x, w, b, list(self.stride), lo, hi, list(self.dilation), self.groups, act, param)
        return y if post is None else post(y)

    def __repr__(self):
        out, cin = self.weight.shape[:2]
        k = tuple(self.weight.shape[2:])
        s = f"Conv({k}, {cin * self.groups} => {out}"
        if self.σ is not identity:
            s += f", {_fn_name(self.σ)}"
        if any(v != 1 for v in self.stride):
            s += f", stride={self.stride if len(set(self.stride)) > 1 else self.stride[0]}"
        if self.pad != 0:
            s += f", pad={self.pad!r}"
        if any(v != 1 for v in self.dilation):
            s += f", dilation={self.dilation if len(set(self.dilation)) > 1 else self.dilation[0]}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is False:
            s += ", bias=False"
        return s + ")"


def DepthwiseConv(k, in_: int, out: int, σ=identity, **kw):
    """A :class:`Conv` with ``groups = in_`` (``out`` must be a multiple of ``in_``).

    >>> import flux_rs as fx
    >>> fx.DepthwiseConv((3, 3), 4, 8).weight.shape
    (8, 1, 3, 3)
    """
    if out % in_:
        raise ValueError(f"DepthwiseConv needs out ({out}) to be a multiple of in_ ({in_})")
    return Conv(k, in_, out, σ, groups=in_, **kw)


class ConvTranspose:
    """Transposed convolution layer; weight (in, out / groups, k...) as in PyTorch. Output
    size per dim: ``(n − 1)·stride + dilation·(k − 1) + 1 − pad_lo − pad_hi + outpad``.

    >>> import flux_rs as fx
    >>> fx.ConvTranspose((2, 2), 3, 1, stride=2)(fx.ones32(1, 3, 4, 4)).shape
    (1, 1, 8, 8)
    """

    def __init__(self, k: int | Sequence[int], in_: int, out: int, σ: Activation = identity, *, stride: int | Sequence[int] = 1, pad: Any = 0,
                 outpad: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool | TensorLike = True,
                 init: Callable[..., Any] = glorot_uniform, rng: Any = None) -> None:
        k = _kernel(k)
        if groups <= 0 or in_ % groups or out % groups:
            raise ValueError(f"in_ ({in_}) and out ({out}) must both be divisible by groups ({groups})")
        n = len(k)
        # Flux's init sees the kernel as (k..., out/groups, in): fan_in = ∏k·out/groups
        self.weight = make_weight(init, (in_, out // groups) + k, rng)
        self.bias = make_bias(bias, out, self.weight.dtype)
        self.σ = check_activation(type(self).__name__, σ)
        self.stride = _positive(_tuple(stride, n, "stride"), "stride")
        self.dilation = _positive(_tuple(dilation, n, "dilation"), "dilation")
        self.pad = pad
        self.outpad = _tuple(outpad, n, "outpad")
        self.groups = int(groups)
        _pads(pad, k, self.dilation)

    def __call__(self, x):
        w = self.weight
        x = as_input(x, w.dtype)
        k = tuple(w.shape[2:])
        _check_input(self, x, len(k), w.shape[0])
        lo, hi = _pads(self.pad, k, self.dilation)
        b = self.bias if isinstance(self.bias, Tensor) else None
        act, param, post = _fused(self.σ)
        y = _core.conv_transpose_layer(x, w, b, list(self.stride), lo, hi, list(self.dilation), self.groups,
                                       list(self.outpad), act, param)
        return y if post is None else post(y)

    def __repr__(self):
        cin, og = self.weight.shape[:2]
        s = f"ConvTranspose({tuple(self.weight.shape[2:])}, {cin} => {og * self.groups}"
        if self.σ is not identity:
            s += f", {_fn_name(self.σ)}"
        if any(v != 1 for v in self.stride):
            s += f", stride={self.stride}"
        if self.pad != 0:
            s += f", pad={self.pad!r}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ")"


def _pool_args(window, pad, stride):
    k = _kernel(window)
    s = k if stride is None else _positive(_tuple(stride, len(k), "stride"), "stride")
    lo, hi = _pads(pad, k, (1,) * len(k))
    return k, s, lo, hi


def maxpool(x, window, *, pad=0, stride=None):
    """Functional max pooling over the spatial dims of (N, C, spatial...).

    >>> import flux_rs as fx
    >>> fx.maxpool(fx.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), (2, 2)).tolist()
    [[[[4.0]]]]
    """
    k, s, lo, hi = _pool_args(window, pad, stride)
    return _core.pool(x, "max", list(k), list(s), lo, hi)


def meanpool(x, window, *, pad=0, stride=None):
    """Functional mean pooling (padding counts towards the window size, as NNlib).

    >>> import flux_rs as fx
    >>> fx.meanpool(fx.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), (2, 2)).tolist()
    [[[[2.5]]]]
    """
    k, s, lo, hi = _pool_args(window, pad, stride)
    return _core.pool(x, "mean", list(k), list(s), lo, hi)


class _Pool:
    _mode = "max"

    def __init__(self, window: int | Sequence[int], *, pad: Any = 0, stride: int | Sequence[int] | None = None) -> None:
        self.k, self.stride, self.lo, self.hi = _pool_args(window, pad, stride)
        self.pad = pad

    def __call__(self, x):
        if not isinstance(x, Tensor):
            x = _core.tensor(x)
        _check_input(self, x, len(self.k), None)
        return _core.pool(x, self._mode, list(self.k), list(self.stride), self.lo, self.hi)

    def __repr__(self):
        s = f"{type(self).__name__}({self.k}"
        if self.pad != 0:
            s += f", pad={self.pad!r}"
        if self.stride != self.k:
            s += f", stride={self.stride}"
        return s + ")"


class MaxPool(_Pool):
    """Max pooling; ``stride`` defaults to the window.

    >>> import flux_rs as fx
    >>> fx.MaxPool((2, 2))(fx.ones32(1, 3, 8, 8)).shape
    (1, 3, 4, 4)
    """
    _mode = "max"


class MeanPool(_Pool):
    """Mean pooling; ``stride`` defaults to the window.

    >>> import flux_rs as fx
    >>> fx.MeanPool((2,))(fx.ones32(1, 3, 8)).shape
    (1, 3, 4)
    """
    _mode = "mean"


class GlobalMaxPool:
    """(N, C, spatial...) → (N, C, 1, ...): the maximum over all spatial positions.

    >>> import flux_rs as fx
    >>> fx.GlobalMaxPool()(fx.ones32(2, 3, 4, 4)).shape
    (2, 3, 1, 1)
    """

    _reduce = "max"

    def __call__(self, x):
        if not isinstance(x, Tensor):
            x = _core.tensor(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r} expects (batch, channels, spatial...), got shape {tuple(x.shape)}")
        return getattr(x, self._reduce)(dims=tuple(range(2, x.ndim)), keepdims=True)

    def __repr__(self):
        return f"{type(self).__name__}()"


class GlobalMeanPool(GlobalMaxPool):
    """(N, C, spatial...) → (N, C, 1, ...): the mean over all spatial positions.

    >>> import flux_rs as fx
    >>> fx.GlobalMeanPool()(fx.ones32(2, 3, 4, 4)).shape
    (2, 3, 1, 1)
    """

    _reduce = "mean"


class AdaptiveMaxPool:
    """Pooling to a fixed output size: stride ``in ÷ out``, window ``in − (out − 1)·stride``.

    >>> import flux_rs as fx
    >>> fx.AdaptiveMaxPool((2, 2))(fx.ones32(1, 3, 7, 9)).shape
    (1, 3, 2, 2)
    """
    _mode = "max"

    def __init__(self, out: int | Sequence[int]) -> None:
        self.out = _kernel(out)

    def __call__(self, x):
        if not isinstance(x, Tensor):
            x = _core.tensor(x)
        _check_input(self, x, len(self.out), None)
        ins = tuple(x.shape[2:])
        if any(i < o for i, o in zip(ins, self.out)):
            raise ValueError(f"{self!r} cannot pool spatial shape {ins} up to {self.out}")
        stride = [i // o for i, o in zip(ins, self.out)]
        window = [i - (o - 1) * s for i, o, s in zip(ins, self.out, stride)]
        z = [0] * len(ins)
        return _core.pool(x, self._mode, window, stride, z, z)

    def __repr__(self):
        return f"{type(self).__name__}({self.out})"


class AdaptiveMeanPool(AdaptiveMaxPool):
    """Mean pooling to a fixed output size.

    >>> import flux_rs as fx
    >>> fx.AdaptiveMeanPool((1, 1))(fx.ones32(1, 3, 5, 5)).tolist()
    [[[[1.0]], [[1.0]], [[1.0]]]]
    """
    _mode = "mean"


def _scales(scale) -> tuple:
    """``scale`` as a tuple of positive finite numbers, or a ValueError naming it."""
    sc = (scale,) if isinstance(scale, (int, float, np.integer, np.floating)) else tuple(scale)
    for s in sc:
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise TypeError(f"scale must be a number or a tuple of numbers, got {scale!r}")
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
    return sc


def _resize(scale, size) -> tuple:
    """``(scale, size)`` as tuples for Rust, which checks them against the input and
    computes the output size (a TypeError here for a non-number)."""
    return (None if scale is None else tuple(float(s) for s in _scales(scale)),
            None if size is None else _ints(size, "size"))


def upsample_nearest(x, scale=None, *, size=None):
    """Nearest-neighbour upsampling of the spatial dims by ``scale`` or to ``size``.

    >>> import flux_rs as fx
    >>> fx.upsample_nearest(fx.tensor([[[1.0, 2.0]]]), 2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    """
    return _core.upsample(x, "nearest", *_resize(scale, size))


def upsample_bilinear(x, scale=None, *, size=None, align_corners=True):
    """Linear interpolation of every spatial dim (bilinear for 2-D, trilinear for 3-D);
    ``align_corners=True`` is NNlib's default, ``False`` PyTorch's.

    >>> import flux_rs as fx
    >>> fx.upsample_bilinear(fx.tensor([[[0.0, 3.0]]]), size=4).tolist()
    [[[0.0, 1.0, 2.0, 3.0]]]
    """
    return _core.upsample(x, "linear", *_resize(scale, size), bool(align_corners))


class Upsample:
    """Upsampling layer: ``Upsample(mode="nearest", scale=..., size=...)``; modes
    ``"nearest"``, ``"bilinear"``, ``"trilinear"`` (and ``"linear"``). ``Upsample(2)``
    is nearest with scale 2.

    >>> import flux_rs as fx
    >>> fx.Upsample(scale=2)(fx.ones32(1, 1, 3, 3)).shape
    (1, 1, 6, 6)
    """

    def __init__(self, mode: str = "nearest", *, scale: float | Sequence[float] | None = None,
                 size: int | Sequence[int] | None = None, align_corners: bool = True) -> None:
        if not isinstance(mode, str):
            mode, scale = "nearest", mode
        mode = mode.lstrip(":")
        if mode not in ("nearest", "bilinear", "trilinear", "linear"):
            raise ValueError(f"Upsample mode must be nearest, linear, bilinear or trilinear, got {mode!r}")
        if (scale is None) == (size is None):
            raise ValueError("Upsample needs exactly one of scale and size")
        _resize(scale, size)  # a TypeError now for a non-number
        self.mode, self.scale, self.size, self.align_corners = mode, scale, size, align_corners

    def __call__(self, x):
        # Rust checks the input against the configuration and computes the output size
        return _core.upsample(x, self.mode, *_resize(self.scale, self.size), self.align_corners)

    def __repr__(self):
        what = f"scale={self.scale!r}" if self.scale is not None else f"size={self.size!r}"
        return f"Upsample({self.mode!r}, {what})"


def pixel_shuffle(x, r: int):
    """(N, C·r², H, W) → (N, C, H·r, W·r), PyTorch's channel order.

    >>> import flux_rs as fx
    >>> fx.pixel_shuffle(fx.ones32(1, 8, 2, 2), 2).shape
    (1, 2, 4, 4)
    """
    return _core.pixel_shuffle(x, int(r))


class PixelShuffle:
    """Layer form of :func:`pixel_shuffle`.

    >>> import flux_rs as fx
    >>> fx.PixelShuffle(3)(fx.ones32(1, 9, 2, 2)).shape
    (1, 1, 6, 6)
    """

    def __init__(self, r: int) -> None:
        self.r = int(r)
        if self.r < 1:
            raise ValueError(f"PixelShuffle needs a positive factor, got {r!r}")

    def __call__(self, x):
        return _core.pixel_shuffle(x, self.r)

    def __repr__(self):
        return f"PixelShuffle({self.r})"
