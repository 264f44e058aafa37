"""Normalisation and dropout layers, and the train/test mode switch (Flux §6).

Layers with a mode (Dropout, AlphaDropout, BatchNorm, InstanceNorm, GroupNorm) have a
field ``active``: ``None`` (automatic: training behaviour only while a gradient is
being recorded), ``True`` (always training) or ``False`` (always inference).
``fx.trainmode_`` / ``fx.testmode_`` set it on every such layer of a model.

Each norm layer holds its parameters and running statistics and calls one Rust
function (``_core.batchnorm``, ``instancenorm``, ``groupnorm``, ``layernorm``): the
standardisation, the affine part, a known activation (``fx.activations.KERNELS``) and
the running-statistics update are one fused op with one backward rule
(``flux_core::ops::norm``). An activation that is not a kernel is applied after it.
"""
from __future__ import annotations

import copyreg
from typing import Any, Callable, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import children, layer
from ._typing import Activation, ascii_alias, check_activation
from .activations import KERNELS, identity
from .layers import _fn_name, as_input

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "Dropout", "AlphaDropout", "trainmode_",
           "testmode_", "dropout", "alpha_dropout"]


def _is_active(lay) -> bool:
    a = lay.active
    return _core.is_recording() if a is None else bool(a)


def _check_active(active):
    if active not in (None, True, False):
        raise ValueError(f"active must be None (automatic), True or False, got {active!r}")
    return active


def testmode_(model, mode=True):
    """Put every layer with a mode into inference (``mode=True``), training
    (``mode=False``) or automatic (``mode=None`` or ``"auto"``) behaviour. Returns the model.

    >>> import flux_rs as fx
    >>> m = fx.Chain(fx.Dense(2, 2), fx.Dropout(0.5))
    >>> fx.testmode_(m)[1].active
    False
    """
    return _mode(model, mode, "testmode_", lambda inference: not inference)


testmode_.__test__ = False  # not a pytest test, despite its name


def trainmode_(model, mode=True):
    """Training behaviour for ``mode=True`` (the default), inference for ``False``,
    automatic for ``None`` / ``"auto"``. Returns the model.

    >>> import flux_rs as fx
    >>> fx.trainmode_(fx.BatchNorm(3)).active
    True
    """
    return _mode(model, mode, "trainmode_", lambda training: training)


def _mode(model, mode, name: str, active_for):
    """Set every layer's ``active`` to ``active_for(mode)`` for a bool mode, or to None
    (automatic) for None / "auto"; any other mode is a ValueError naming ``name``."""
    if mode is None or (isinstance(mode, str) and mode.lstrip(":") == "auto"):
        value = None
    elif mode is True or mode is False:
        value = active_for(mode)
    else:
        raise ValueError(f"{name} mode must be True, False, None or 'auto', got {mode!r}")
    _set_mode(model, value, set())
    return model


def _set_mode(x, value, seen):
    if id(x) in seen:
        return
    seen.add(id(x))
    if getattr(type(x), "_has_mode", False):
        x.active = value
    ch = children(x)
    for _, c in ch or ():
        if c is not None and not isinstance(c, Tensor):
            _set_mode(c, value, seen)


def _dt(t: Tensor) -> str:
    return "float64" if t.dtype == np.float64 else "float32"


def _init_vec(init, n: int):
    v = init(n)
    return v if isinstance(v, Tensor) else _core.tensor(v)


def _ones32(n):
    return _core.full([n], 1.0, "float32")


def _zeros32(n):
    return _core.full([n], 0.0, "float32")


def _kernel(λ):
    """(name, parameter) of a fusable activation, else ("identity", None)."""
    return KERNELS.get(λ) or KERNELS[identity]


def _after(λ, y):
    """``λ(y)`` for an activation the fused op could not apply itself."""
    return y if λ in KERNELS else λ(y)


#: a parameter initialiser: ``init(n)`` gives a vector of n values
Init = Callable[[int], Any]


def _ascii_keywords(lay, λ, lambda_, initβ, init_beta, initγ, init_gamma):
    """Flux's Unicode keywords or their ASCII spellings (``lambda_``, ``init_beta``,
    ``init_gamma``), whichever was given."""
    name = type(lay).__name__
    return (check_activation(name, ascii_alias(name, "λ", λ, "lambda_", lambda_, default=identity)),
            ascii_alias(name, "initβ", initβ, "init_beta", init_beta, default=_zeros32),
            ascii_alias(name, "initγ", initγ, "init_gamma", init_gamma, default=_ones32))


def _check_size(layer: str, what: str, n) -> None:
    """A positive integer size, or a TypeError/ValueError naming it (before a negative
    size reaches Rust as an OverflowError)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{layer}: {what} must be a positive integer, got {n!r}")
    if n <= 0:
        raise ValueError(f"{layer}: {what} must be a positive integer, got {n}")


def _check_eps_momentum(layer: str, eps, momentum) -> tuple[float, float]:
    """(eps, momentum) as floats: eps finite and ≥ 0 (a negative one makes √(σ² + ε) NaN
    for small variances), momentum in [0, 1] (the weight of a batch in the running
    statistics)."""
    e, m = float(eps), float(momentum)
    if not (0.0 <= e < float("inf")):
        raise ValueError(f"{layer}: eps must be a finite non-negative number, got {eps!r}")
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"{layer}: momentum must be in [0, 1], got {momentum!r}")
    return e, m


class _Norm:
    _has_mode = True

    def _with_stats(self, chs, λ, initβ, initγ, affine, track_stats, active, eps, momentum):
        """Fields of the norms with running statistics (BatchNorm, InstanceNorm)."""
        self.λ = λ
        self._params(chs, initβ, initγ, affine)
        dt = _dt(self.γ) if affine else "float32"
        self.μ = _core.full([chs], 0.0, dt) if track_stats else None
        self.σ2 = _core.full([chs], 1.0, dt) if track_stats else None
        self.ϵ, self.momentum = _check_eps_momentum(type(self).__name__, eps, momentum)
        self.track_stats = bool(track_stats)
        self.active = _check_active(active)

    def _with_stats_call(self, op, x):
        """The forward of the norms with running statistics: ``op`` their fused kernel."""
        x = as_input(x, self._dtype(x))
        y = op(x, self.chs, self.γ, self.β, self.μ, self.σ2, self.active, self.ϵ, self.momentum, *_kernel(self.λ))
        return _after(self.λ, y)

    def _params(self, chs, initβ, initγ, affine):
        _check_size(type(self).__name__, "chs", chs)
        self.chs = int(chs)
        self.affine = bool(affine)
        self.β = _init_vec(initβ, chs) if affine else None
        self.γ = _init_vec(initγ, chs) if affine else None

    def _dtype(self, x):
        if self.affine:
            return self.γ.dtype
        if self.μ is not None:
            return self.μ.dtype
        return x.dtype if isinstance(x, Tensor) else np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float32

    def _extra(self) -> str:
        s = "" if self.λ is identity else f", {_fn_name(self.λ)}"
        if not self.affine:
            s += ", affine=False"
        if self.active is not None:
            s += f", active={self.active}"
        return s


@layer(trainable=("β", "γ"))
class BatchNorm(_Norm):
    """Batch normalisation over the channel dimension 1 of (batch, C, ...): statistics
    over every other dimension. ``y = λ(γ·(x − μ)/√(σ² + ε) + β)``; in training (or
    without tracked statistics) the batch's mean and uncorrected variance, else the
    running ones, updated with ``momentum`` (the variance unbiased). Trainable: β, γ.
    ``lambda_``, ``init_beta`` and ``init_gamma`` are the ASCII spellings of ``λ``,
    ``initβ`` and ``initγ`` (in every norm layer).

    >>> import flux_rs as fx
    >>> bn = fx.BatchNorm(3)
    >>> bn.β.shape, bn.μ.shape, bn(fx.ones32(4, 3, 2, 2)).shape
    ((3,), (3,), (4, 3, 2, 2))
    >>> fx.BatchNorm(2, fx.relu, init_gamma=fx.zeros32).γ.tolist()
    [0.0, 0.0]
    """

    def __init__(self, chs: int, λ: Activation = identity, *, initβ: Init = _zeros32, initγ: Init = _ones32,
                 affine: bool = True, track_stats: bool = True, active: bool | None = None, eps: float = 1e-5,
                 momentum: float = 0.1, lambda_: Activation | None = None,
                 init_beta: Init | None = None, init_gamma: Init | None = None) -> None:
        λ, initβ, initγ = _ascii_keywords(self, λ, lambda_, initβ, init_beta, initγ, init_gamma)
        self._with_stats(chs, λ, initβ, initγ, affine, track_stats, active, eps, momentum)

    def __call__(self, x):
        return self._with_stats_call(_core.batchnorm, x)

    def __repr__(self):
        return f"BatchNorm({self.chs}{self._extra()})"


@layer(trainable=("β", "γ"))
class InstanceNorm(_Norm):
    """Instance normalisation: statistics per sample and channel over the spatial dims.
    ``affine`` and ``track_stats`` default to False, as in Flux.

    >>> import flux_rs as fx
    >>> fx.InstanceNorm(2)(fx.randn32(3, 2, 5)).shape
    (3, 2, 5)
    """

    def __init__(self, chs: int, λ: Activation = identity, *, initβ: Init = _zeros32, initγ: Init = _ones32,
                 affine: bool = False, track_stats: bool = False, active: bool | None = None, eps: float = 1e-5,
                 momentum: float = 0.1, lambda_: Activation | None = None,
                 init_beta: Init | None = None, init_gamma: Init | None = None) -> None:
        λ, initβ, initγ = _ascii_keywords(self, λ, lambda_, initβ, init_beta, initγ, init_gamma)
        self._with_stats(chs, λ, initβ, initγ, affine, track_stats, active, eps, momentum)

    def __call__(self, x):
        return self._with_stats_call(_core.instancenorm, x)

    def __repr__(self):
        return f"InstanceNorm({self.chs}{self._extra()})"


@layer(trainable=("β", "γ"))
class GroupNorm(_Norm):
    """Group normalisation: the channels split into ``G`` groups; statistics per sample
    and group over the group's channels and the spatial dims. No running statistics.

    >>> import flux_rs as fx
    >>> fx.GroupNorm(4, 2)(fx.randn32(3, 4, 5, 5)).shape
    (3, 4, 5, 5)
    """

    def __init__(self, chs: int, G: int, λ: Activation = identity, *, initβ: Init = _zeros32,
                 initγ: Init = _ones32, affine: bool = True, active: bool | None = None, eps: float = 1e-5,
                 momentum: float = 0.1, lambda_: Activation | None = None,
                 init_beta: Init | None = None, init_gamma: Init | None = None) -> None:
        λ, initβ, initγ = _ascii_keywords(self, λ, lambda_, initβ, init_beta, initγ, init_gamma)
        _check_size("GroupNorm", "chs", chs)
        _check_size("GroupNorm", "G", G)
        if chs % G:
            raise ValueError(f"GroupNorm: the number of channels ({chs}) must be divisible by the number of groups ({G})")
        self.G = int(G)
        self.λ = λ
        self._params(chs, initβ, initγ, affine)
        self.μ = self.σ2 = None
        self.ϵ, self.momentum = _check_eps_momentum("GroupNorm", eps, momentum)
        self.active = _check_active(active)

    def __call__(self, x):
        x = as_input(x, self._dtype(x))
        y = _core.groupnorm(x, self.chs, self.G, self.γ, self.β, self.ϵ, *_kernel(self.λ))
        return _after(self.λ, y)

    def __repr__(self):
        return f"GroupNorm({self.chs}, {self.G}{self._extra()})"


class LayerNorm:
    """Normalise over the last ``len(size)`` dimensions (which must equal ``size``), with
    the uncorrected variance and ``σ² + ε``; then a learnable :class:`Scale` of shape
    ``size`` when ``affine``, then ``λ``.

    >>> import flux_rs as fx
    >>> ln = fx.LayerNorm(4)
    >>> y = ln(fx.tensor([[1.0, 2.0, 3.0, 4.0]]))
    >>> abs(float(y.mean().item())) < 1e-6, ln.diag.scale.shape
    (True, (4,))
    """

    def __init__(self, size: int | Sequence[int], λ: Activation = identity, *, affine: bool = True, eps: float = 1e-5,
                 lambda_: Activation | None = None) -> None:
        λ = check_activation("LayerNorm", ascii_alias("LayerNorm", "λ", λ, "lambda_", lambda_, default=identity))
        from .basic import Scale
        self.size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        for s in self.size:
            _check_size("LayerNorm", "size", s)
        self.λ = λ
        self.affine = bool(affine)
        self.diag = Scale(*self.size) if affine else None
        self.ϵ = _check_eps_momentum("LayerNorm", eps, 0.0)[0]

    def __call__(self, x):
        x = as_input(x, self.diag.scale.dtype if self.affine else (x.dtype if isinstance(x, Tensor) else np.float32))
        d = self.diag
        if d is None:
            return _after(self.λ, _core.layernorm(x, list(self.size), None, None, self.ϵ, *_kernel(self.λ)))
        bias = d.bias if isinstance(d.bias, Tensor) else None
        if bias is None or d.σ is not identity:
            # a Scale changed by hand: normalise, then call it as it is
            return self.λ(d(_core.layernorm(x, list(self.size), None, None, self.ϵ)))
        return _after(self.λ, _core.layernorm(x, list(self.size), d.scale, bias, self.ϵ, *_kernel(self.λ)))

    def __repr__(self):
        sz = self.size[0] if len(self.size) == 1 else self.size
        s = f"LayerNorm({sz}" + ("" if self.λ is identity else f", {_fn_name(self.λ)}")
        return s + ("" if self.affine else ", affine=False") + ")"


# A Dropout holding its own fx.Rng must survive copy.deepcopy (fx.update copies the
# model) and pickling: an Rng is rebuilt from its exact stream position.
copyreg.pickle(_core.Rng, lambda r: (_core.Rng._fromstate, r._getstate()))


def _rng_arg(rng):
    if rng is None or isinstance(rng, _core.Rng):
        return rng
    if isinstance(rng, (int, np.integer)):
        return _core.Rng(int(rng))
    raise TypeError(f"rng must be an fx.Rng, an int seed or None (the global generator), got {type(rng).__name__}")


def _mask_shape(x: Tensor, dims) -> list[int]:
    if dims is None or dims == ":":
        return list(x.shape)
    ds = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    nd = x.ndim
    keep = set()
    for d in ds:
        if not -nd <= d < nd:
            raise ValueError(f"dropout dims {dims!r} out of range for an input of shape {tuple(x.shape)}")
        keep.add(d % nd)
    return [s if i in keep else 1 for i, s in enumerate(x.shape)]


def dropout(x, p: float, *, dims=None, rng=None):
    """Functional dropout (always active): each element (or slice, with ``dims``) is
    zeroed with probability ``p`` and the rest scaled by 1/(1−p).

    >>> import flux_rs as fx
    >>> y = fx.dropout(fx.ones32(1000), 0.5, rng=0).numpy()
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """
    x = x if isinstance(x, Tensor) else _core.tensor(x)
    return _core.dropout(x, float(p), _mask_shape(x, dims), _rng_arg(rng))


def alpha_dropout(x, p: float, *, rng=None):
    """Functional alpha dropout (always active), which keeps SELU's mean and variance.

    >>> import flux_rs as fx
    >>> fx.alpha_dropout(fx.ones32(3), 0.0).tolist()
    [1.0, 1.0, 1.0]
    """
    x = x if isinstance(x, Tensor) else _core.tensor(x)
    return _core.alpha_dropout(x, float(p), _rng_arg(rng))


def _check_p(p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout probability must be a number in [0, 1], got {p!r}")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return float(p)


@layer(trainable=())
class Dropout:
    """Dropout with probability ``p``; ``dims`` are the dimensions along which the mask
    varies (e.g. ``dims=1`` on NCHW: one decision per channel, shared by the batch and
    all positions). ``rng``: an ``fx.Rng``, an int seed, or None for the global one.
    On the GPU the mask is drawn there, keyed by a seed from ``rng``: the same keep
    probability and scale as on the CPU, not the same elements.

    >>> import flux_rs as fx
    >>> d = fx.Dropout(0.5)
    >>> d(fx.ones32(2, 3)).tolist()   # outside a gradient: inactive
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    _has_mode = True

    def __init__(self, p: float, *, dims: int | Sequence[int] | None = None, rng: Any = None,
                 active: bool | None = None) -> None:
        self.p = _check_p(p)
        self.dims = dims
        self.active = _check_active(active)
        self.rng = _rng_arg(rng)

    def __call__(self, x):
        if not _is_active(self) or self.p == 0:
            return x
        return dropout(x, self.p, dims=self.dims, rng=self.rng)

    def __repr__(self):
        s = f"Dropout({self.p}"
        if self.dims is not None:
            s += f", dims={self.dims!r}"
        if self.active is not None:
            s += f", active={self.active}"
        return s + ")"


@layer(trainable=())
class AlphaDropout:
    """Dropout for self-normalising (SELU) networks: dropped values become SELU's
    saturation value and an affine correction keeps mean and variance.

    >>> import flux_rs as fx
    >>> fx.AlphaDropout(0.2, active=True)(fx.ones32(4)).shape
    (4,)
    """
    _has_mode = True

    def __init__(self, p: float, *, rng: Any = None, active: bool | None = None) -> None:
        self.p = _check_p(p)
        self.active = _check_active(active)
        self.rng = _rng_arg(rng)

    def __call__(self, x):
        if not _is_active(self):
            return x
        return alpha_dropout(x, self.p, rng=self.rng)

    def __repr__(self):
        return f"AlphaDropout({self.p})"
