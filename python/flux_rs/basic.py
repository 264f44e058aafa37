"""Embedding, Scale, Bilinear and the combinators SkipConnection, Parallel, Maxout;
functional gather/scatter, where, clamp and split. Every number is computed by a Rust
op; these classes hold parameters and check shapes."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import layer
from ._typing import Activation, TensorLike, ascii_alias, check_activation
from .activations import identity
from .init import glorot_uniform
from .layers import _fn_name, _fused, as_input, make_bias, make_weight

__all__ = ["Embedding", "Scale", "Bilinear", "SkipConnection", "Parallel", "Maxout", "gather", "scatter",
           "where", "clamp", "split"]


def gather(src, idx):
    """Rows of ``src`` picked by the integer array ``idx`` (0-based): shape
    ``idx.shape + src.shape[1:]`` (NNlib's ``gather`` with the batch first).

    >>> import flux_rs as fx
    >>> fx.gather(fx.tensor([[1.0, 2.0], [3.0, 4.0]]), [1, 1, 0]).tolist()
    [[3.0, 4.0], [3.0, 4.0], [1.0, 2.0]]
    """
    return _core.gather_rows(src, idx)


def scatter(src, idx, n: int | None = None, *, op: str = "add"):
    """The adjoint of :func:`gather`: row ``j`` of ``src`` is added into row ``idx[j]``
    of an ``n``-row result (``n`` defaults to ``max(idx) + 1``); ``op="mean"`` averages
    the rows that land together.

    >>> import flux_rs as fx
    >>> fx.scatter(fx.tensor([1.0, 2.0, 3.0]), [0, 2, 0]).tolist()
    [4.0, 0.0, 2.0]
    """
    ia = np.asarray(idx)
    if n is None:
        n = int(ia.max()) + 1 if ia.size else 0
    out = _core.scatter_add(src, ia, int(n))
    if op == "add":
        return out
    if op != "mean":
        raise ValueError(f"scatter op must be 'add' or 'mean', got {op!r}")
    ones = _core.full(list(ia.shape), 1.0, "float64" if out.dtype == np.float64 else "float32")
    if out.device != "cpu":  # count on the result's device
        ones._to_device_(out.device)
    counts = _core.scatter_add(ones, ia, int(n))
    counts = _core.clamp(counts, 1.0, float("inf"))
    return out / counts.reshape(*([int(n)] + [1] * (out.ndim - 1)))


def where(cond, a, b):
    """``a`` where ``cond`` is true (non-zero) else ``b``, broadcasting; the gradient
    flows only into the branch taken.

    >>> import flux_rs as fx, numpy as np
    >>> fx.where(np.array([True, False]), fx.tensor([1.0, 2.0]), 0.0).tolist()
    [1.0, 0.0]
    """
    return _core.where_(cond, a, b)


def clamp(x, lo=None, hi=None):
    """``min(max(x, lo), hi)``; the gradient passes where ``lo ≤ x ≤ hi``.

    >>> import flux_rs as fx
    >>> fx.clamp(fx.tensor([-2.0, 0.5, 3.0]), 0, 1).tolist()
    [0.0, 0.5, 1.0]
    """
    return _core.clamp(x, -np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))


def split(x, sizes, dims: int = 0):
    """Split along ``dims`` into pieces of the given ``sizes`` (a list), or into
    ``sizes`` equal pieces (an int).

    >>> import flux_rs as fx
    >>> [t.shape for t in fx.split(fx.ones32(2, 6), 3, dims=1)]
    [(2, 2), (2, 2), (2, 2)]
    """
    x = x if isinstance(x, Tensor) else _core.tensor(x)
    if isinstance(sizes, (int, np.integer)):
        n = x.shape[dims]
        if sizes <= 0 or n % sizes:
            raise ValueError(f"cannot split a dimension of size {n} into {sizes} equal pieces")
        sizes = [n // int(sizes)] * int(sizes)
    return _core.split(x, [int(s) for s in sizes], int(dims))


@layer(trainable=("weight",))
class Embedding:
    """A lookup table: ``Embedding(n, d)`` maps integer indices in ``range(n)`` (any
    array shape) to rows of ``weight`` (n, d), giving ``idx.shape + (d,)``. A float
    input with last dimension ``n`` is taken as one-hot (``x @ weight``). Row
    ``padding_idx`` starts at zero and gets no gradient. Init: standard normal.

    >>> import flux_rs as fx
    >>> e = fx.Embedding(10, 3)
    >>> e([[1, 2], [3, 4]]).shape
    (2, 2, 3)
    """

    def __init__(self, n: int, d: int, *, init: Callable[..., Any] | None = None, padding_idx: int | None = None,
                 rng: Any = None) -> None:
        if init is None:
            from .init import randn32
            init = randn32
        self.weight = make_weight(init, (n, d), rng)
        if padding_idx is not None:
            if not -n <= padding_idx < n:
                raise ValueError(f"padding_idx {padding_idx} is out of range for {n} rows")
            padding_idx = int(padding_idx) % n
            z = np.asarray(self.weight).copy()
            z[padding_idx] = 0
            _core.assign_(self.weight, z)
        self.padding_idx = padding_idx

    def __call__(self, idx):
        w = self.weight
        if isinstance(idx, Tensor) or (isinstance(idx, np.ndarray) and idx.dtype.kind == "f"):
            x = as_input(idx, w.dtype)
            if x.ndim == 0 or x.shape[-1] != w.shape[0]:
                raise ValueError(f"{self!r} takes integer indices or one-hot rows of length {w.shape[0]}, "
                                 f"got a float array of shape {tuple(x.shape)}")
            return x @ w
        ia = np.asarray(idx)
        if ia.dtype.kind not in "iu":
            raise TypeError(f"{self!r} takes integer indices, got an array of dtype {ia.dtype}")
        return _core.embedding(w, ia, self.padding_idx)

    def __repr__(self):
        n, d = self.weight.shape
        extra = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({n} => {d}{extra})"


class Scale:
    """Elementwise ``σ(scale ⊙ x + bias)`` with ``scale`` and ``bias`` of shape ``size``
    (broadcast against the trailing dims of ``x``); init ones and zeros. ``sigma=`` is the
    ASCII spelling of ``σ``.

    >>> import flux_rs as fx
    >>> fx.Scale(2)(fx.tensor([[1.0, 2.0]])).tolist()
    [[1.0, 2.0]]
    """

    def __init__(self, *size: int | Sequence[int], σ: Activation = identity, bias: bool | TensorLike = True,
                 init: Callable[..., Any] | None = None, sigma: Activation | None = None) -> None:
        σ = ascii_alias("Scale", "σ", σ, "sigma", sigma, default=identity)
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        if not size or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
            raise ValueError(f"Scale needs positive sizes, got {size}")
        self.scale = init(*size) if init is not None else _core.full(list(size), 1.0, "float32")
        if not isinstance(self.scale, Tensor):
            self.scale = _core.tensor(self.scale)
        self.bias = make_bias(bias, size, self.scale.dtype)
        self.σ = check_activation(type(self).__name__, σ)

    def __call__(self, x):
        x = as_input(x, self.scale.dtype)
        b = self.bias if isinstance(self.bias, Tensor) else None
        act, param, post = _fused(self.σ)
        y = _core.scale_layer(x, self.scale, b, act, param)
        return y if post is None else post(y)

    def __repr__(self):
        s = ", ".join(str(v) for v in self.scale.shape)
        return f"Scale({s}" + ("" if self.σ is identity else f", {_fn_name(self.σ)}") + (
            ", bias=False" if self.bias is False else "") + ")"


class Bilinear:
    """``z[:, i] = σ(xᵀ W[i] y + b[i])`` with W (out, in1, in2); ``in_`` is an int
    (in1 = in2) or a pair. Called with ``(x, y)`` or with ``x`` alone (``y = x``);
    x (..., in1), y (..., in2).

    >>> import flux_rs as fx
    >>> b = fx.Bilinear((3, 4), 2)
    >>> b((fx.ones32(5, 3), fx.ones32(5, 4))).shape
    (5, 2)
    """

    def __init__(self, in_: int | tuple[int, int], out: int, σ: Activation = identity, *,
                 bias: bool | TensorLike = True, init: Callable[..., Any] = glorot_uniform, rng: Any = None) -> None:
        in1, in2 = (in_, in_) if isinstance(in_, (int, np.integer)) else tuple(in_)
        self.weight = make_weight(init, (out, in1, in2), rng)
        self.bias = make_bias(bias, out, self.weight.dtype)
        self.σ = check_activation(type(self).__name__, σ)

    def __call__(self, x, y=None):
        if y is None:
            x, y = x if isinstance(x, tuple) else (x, x)
        w = self.weight
        x, y = as_input(x, w.dtype), as_input(y, w.dtype)
        b = self.bias if isinstance(self.bias, Tensor) else None
        act, param, post = _fused(self.σ)
        z = _core.bilinear_layer(x, y, w, b, act, param)
        return z if post is None else post(z)

    def __repr__(self):
        out, a, b = self.weight.shape
        ins = f"{a}" if a == b else f"({a}, {b})"
        return f"Bilinear({ins} => {out}" + ("" if self.σ is identity else f", {_fn_name(self.σ)}") + ")"


class SkipConnection:
    """``connection(layer(x), x)``, e.g. ``SkipConnection(m, lambda y, x: y + x)``.

    ``layers`` and ``connection`` may be any Python callables, so this shell calls them
    from Python (each computes in Rust); Rust programs use
    ``flux_core::nn::combinators::SkipConnection``, which holds Rust modules.

    >>> import flux_rs as fx, operator
    >>> fx.SkipConnection(fx.Dense(2, 2), operator.add)(fx.ones32(1, 2)).shape
    (1, 2)
    """

    def __init__(self, layers: Callable[..., Any], connection: Callable[..., Any]) -> None:
        self.layers = layers
        self.connection = connection

    def __call__(self, x):
        return self.connection(self.layers(x), x)

    def __repr__(self):
        return f"SkipConnection({self.layers!r}, {_fn_name(self.connection)})"


class Parallel:
    """``connection(f1(x), f2(x), …)`` for one input; with k inputs and k layers,
    ``connection(f1(x1), …, fk(xk))``; one layer and k inputs applies it to each.
    Layers may be named: ``Parallel(conn, a=..., b=...)``. The layers and the
    connection may be any Python callables, so this shell calls them from Python (each
    computes in Rust); Rust programs use ``flux_core::nn::combinators::Parallel``.

    >>> import flux_rs as fx
    >>> p = fx.Parallel(lambda *ys: fx.cat(ys, 1), fx.Dense(2, 3), fx.Dense(2, 1))
    >>> p(fx.ones32(4, 2)).shape
    (4, 4)
    """

    def __init__(self, connection: Callable[..., Any], *layers: Callable[..., Any], **named: Callable[..., Any]) -> None:
        from ._tree import Node
        if layers and named:
            raise TypeError("Parallel takes positional layers or named layers, not both")
        if not layers and not named:
            raise ValueError("Parallel needs at least one layer")
        self.connection = connection
        self.layers = Node("", tuple(named), tuple(named.values())) if named else tuple(layers)

    def __call__(self, *xs):
        if len(xs) == 1 and isinstance(xs[0], tuple):
            xs = xs[0]
        ls = list(self.layers)
        if len(xs) == 1:
            ys = [l(xs[0]) for l in ls]
        elif len(ls) == 1:
            ys = [ls[0](x) for x in xs]
        elif len(ls) == len(xs):
            ys = [l(x) for l, x in zip(ls, xs)]
        else:
            raise ValueError(f"Parallel with {len(ls)} layers cannot take {len(xs)} inputs")
        return self.connection(*ys)

    def __repr__(self):
        inner = ", ".join(repr(l) for l in self.layers)
        return f"Parallel({_fn_name(self.connection)}, {inner})"


class Maxout:
    """The elementwise maximum of several layers' outputs: ``Maxout(l1, l2, …)`` or
    ``Maxout(make_layer, n)`` (``n`` fresh layers).

    >>> import flux_rs as fx
    >>> fx.Maxout(lambda: fx.Dense(3, 2), 4)(fx.ones32(5, 3)).shape
    (5, 2)
    """

    def __init__(self, *layers: Callable[..., Any]) -> None:
        if len(layers) == 2 and callable(layers[0]) and isinstance(layers[1], (int, np.integer)):
            f, n = layers
            layers = tuple(f() for _ in range(int(n)))
        if not layers:
            raise ValueError("Maxout needs at least one layer")
        self.layers = tuple(layers)

    def __call__(self, x):
        # the members may be any callables (Python); their maximum is one Rust call
        return _core.maxout([l(x) for l in self.layers])

    def __repr__(self):
        return f"Maxout({', '.join(repr(l) for l in self.layers)})"
