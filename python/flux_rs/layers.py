"""Layers: thin shells over Rust kernels. A layer is a plain object whose Tensor
attributes are its parameters (see ``fx.layer`` for restricting what trains)."""
from __future__ import annotations

import functools
import types
import warnings
from typing import Any, Callable

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import Node, trainable_children
from .activations import KERNELS, identity
from .init import glorot_uniform
from ._typing import Activation, TensorLike, check_activation

__all__ = ["Chain", "Dense", "flatten", "as_input", "show"]

_warned_f64 = False


def as_input(x, dtype, stacklevel: int = 3) -> Tensor:
    """``x`` as a Tensor of the layer's dtype; float64 into a float32 layer is converted
    with a one-time warning, as Flux does."""
    global _warned_f64
    if not isinstance(x, Tensor):
        x = _core.tensor(x, "float64" if isinstance(x, np.ndarray) and x.dtype == np.float64 else None)
    if x.dtype != dtype:
        if x.dtype == np.float64 and not _warned_f64:
            _warned_f64 = True
            warnings.warn("Layer with float32 parameters got float64 input; converting (this warning is shown once)",
                          stacklevel=stacklevel)
        x = x.astype(dtype)
    return x


def _input_like(x, w: Tensor) -> Tensor:
    """``as_input(x, w.dtype)``, for ``_core.dense`` when its input needs converting."""
    return as_input(x, w.dtype, stacklevel=4)  # warn at the line that called the layer


def make_weight(init, shape, rng=None) -> Tensor:
    """``init(*shape)`` (with ``rng=`` when given) as a Tensor of exactly that shape."""
    w = init(*shape, rng=rng) if rng is not None else init(*shape)
    if not isinstance(w, Tensor):
        w = _core.tensor(w)
    if tuple(w.shape) != tuple(shape):
        raise ValueError(f"init returned shape {tuple(w.shape)}, expected {tuple(shape)}")
    return w


def make_bias(bias, shape, dtype) -> "Tensor | bool":
    """The ``bias=`` convention of Flux layers: True → zeros, False/None → no bias
    (stored as False), an array → checked against ``shape`` and converted to ``dtype``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dt = "float64" if dtype == np.float64 else "float32"
    if bias is True:
        return _core.full(list(shape), 0.0, dt)
    if bias is False or bias is None:
        return False
    b = _core.tensor(bias, dt)
    if tuple(b.shape) != shape:
        raise ValueError(f"expected bias of shape {shape}, got {tuple(b.shape)}")
    return b


def _fused(σ):
    """``(name, param, post)``: the activation a Rust layer call applies inside its one
    call, and a Python callable to apply after it when ``σ`` is a user function (``None``
    when a Rust kernel covers ``σ``)."""
    k = KERNELS.get(σ)
    return (k[0], k[1], None) if k is not None else ("identity", None, σ)


def _fn_name(f) -> str:
    return getattr(f, "__name__", repr(f))


class Dense:
    """``y = σ(x @ weight.T + bias)``; weight (out, in) as in Flux and ``torch.nn.Linear``.

    >>> import flux_rs as fx
    >>> d = fx.Dense(2, 3, fx.relu)
    >>> d(fx.ones32(5, 2)).shape
    (5, 3)
    """

    def __init__(self, in_: int, out: int, σ: Activation = identity, *, bias: bool | TensorLike = True,
                 init: Callable[..., Any] = glorot_uniform, rng: Any = None) -> None:
        if not (isinstance(in_, int) and isinstance(out, int)) or in_ < 0 or out < 0:
            raise TypeError(f"Dense(in_, out) takes two sizes, got {in_!r}, {out!r}")
        self.weight = make_weight(init, (out, in_), rng)
        self.bias = make_bias(bias, out, self.weight.dtype)
        self.σ = check_activation("Dense", σ)

    def __call__(self, x):
        # _core.dense converts x itself when it is not a Tensor of the weight's dtype
        b = self.bias if type(self.bias) is Tensor else None
        kernel = KERNELS.get(self.σ)
        if kernel is not None:
            return _core.dense(x, self.weight, b, kernel[0], kernel[1])
        return self.σ(_core.dense(x, self.weight, b, "identity"))

    def __repr__(self):
        out, in_ = self.weight.shape
        act = "" if self.σ is identity else f", {_fn_name(self.σ)}"
        extra = ", bias=False" if self.bias is False else ""
        return f"Dense({in_} => {out}{act}{extra})"


class Chain:
    """Layers applied in order: ``Chain(l1, l2)(x) == l2(l1(x))``. Named layers with
    ``Chain(enc=..., dec=...)`` are reached as ``chain.layers.enc``.

    >>> import flux_rs as fx
    >>> m = fx.Chain(fx.Dense(4, 8, fx.relu), fx.Dense(8, 2))
    >>> m(fx.ones32(3, 4)).shape, m[0].weight.shape
    ((3, 2), (8, 4))
    """

    def __init__(self, *layers: Any, **named: Any) -> None:
        if layers and named:
            raise TypeError("Chain takes positional layers or named layers, not both")
        if "layers" in named:
            raise TypeError("a Chain layer cannot be named 'layers'")
        if len(layers) == 1 and isinstance(layers[0], list):
            layers = tuple(layers[0])
        self.layers = Node("", tuple(named), tuple(named.values())) if named else tuple(layers)

    def __call__(self, x: Any) -> Any:
        for l in self.layers:
            try:
                x = l(x)
            except ValueError as e:
                # the position is found only on this (rare) path: no enumerate per call
                i = next(j for j, m in enumerate(self.layers) if m is l)
                name = self.layers._fields[i] if isinstance(self.layers, Node) else i
                inner = getattr(e, "_flux_path", None)
                if inner is not None:
                    # a nested Chain already named its layer: prefix our position
                    path = [name] + inner
                    msg = f"in layer {'.'.join(map(str, path))} of the Chain, {e._flux_msg}"
                else:
                    path = [name]
                    msg = f"in layer {name} of the Chain, {_oneline(l)}: {e}"
                err = ValueError(msg)
                err._flux_path, err._flux_msg = path, msg.split(" of the Chain, ", 1)[1]
                raise err from e
        return x

    def __getitem__(self, i):
        if isinstance(i, slice):
            if isinstance(self.layers, Node):
                ks = self.layers._fields[i]
                return Chain(**{k: self.layers[k] for k in ks})
            return Chain(*self.layers[i])
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        return show(self)

    def _oneline(self):
        if isinstance(self.layers, Node):
            inner = ", ".join(f"{k}={_oneline(v)}" for k, v in zip(self.layers._fields, self.layers))
        else:
            inner = ", ".join(_oneline(l) for l in self.layers)
        return f"Chain({inner})"


def _is_fn(x) -> bool:
    return isinstance(x, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial))


def _oneline(x) -> str:
    """A one-line description of a layer (for error messages and nested reprs)."""
    f = getattr(x, "_oneline", None)
    return f() if f is not None else _fn_name(x) if _is_fn(x) else repr(x)


def _counts(x) -> tuple[int, int, int, int, int]:
    """(trainable arrays, their numbers, other arrays, their numbers, bytes) of a subtree."""
    from ._tree import tensors
    from .utils import trainables
    tr = trainables(x)
    ids = {id(t) for t in tr}
    rest = [t for t in tensors(x) if id(t) not in ids]
    return (len(tr), sum(t.size for t in tr), len(rest), sum(t.size for t in rest),
            sum(t.size * t.dtype.itemsize for t in tr + rest))


def _expand(x):
    """The sub-layers a container prints on their own lines, or None for a leaf layer."""
    from ._tree import Node as _N
    lay = getattr(x, "layers", None)
    if isinstance(x, Chain) or type(x).__name__ in ("Parallel", "Maxout", "SkipConnection"):
        if isinstance(lay, _N):
            items = [(k, v) for k, v in zip(lay._fields, lay)]
        elif isinstance(lay, tuple):
            items = [(None, v) for v in lay]
        else:
            items = [(None, lay)]
        head = type(x).__name__ + "("
        if type(x).__name__ == "Parallel":
            head += _fn_name(x.connection) + ","
        tail = [(None, x.connection)] if type(x).__name__ == "SkipConnection" else []
        return head, items + tail
    return None


def _param_note(x) -> str:
    n_tr, p_tr, n_o, p_o, _ = _counts(x)
    if p_tr == 0 and p_o == 0:
        return ""
    s = f"# {p_tr:,} parameters"
    if p_o:
        s += f", plus {p_o:,} non-trainable"
    return s


def _lines(x, indent: int, key=None) -> list[str]:
    pre = " " * indent + (f"{key}=" if key is not None else "")
    ex = _expand(x)
    if ex is None:
        body = pre + _oneline(x) + ","
        note = "" if _is_fn(x) else _param_note(x)
        return [body.ljust(40) + "  " + note if note else body]
    head, items = ex
    out = [pre + head]
    for k, v in items:
        out += _lines(v, indent + 2, k)
    out.append(" " * indent + "),")
    return out


def show(model) -> str:
    """A model's tree, one layer a line with its parameter count, and the totals (as
    Flux prints a model).

    >>> import flux_rs as fx
    >>> print(fx.show(fx.Chain(fx.Dense(2, 3, fx.relu), fx.Dense(3, 1))))
    Chain(
      Dense(2 => 3, relu),                    # 9 parameters
      Dense(3 => 1),                          # 4 parameters
    )                   # Total: 4 arrays, 13 parameters, 52 bytes.
    """
    ls = _lines(model, 0)
    if _expand(model) is None:
        return ls[0].rstrip(",").replace(",  ", "  ", 1) if len(ls) == 1 else "\n".join(ls)
    ls[-1] = ")"
    n_tr, p_tr, n_o, p_o, nbytes = _counts(model)
    total = f"# Total: {n_tr + n_o} arrays, {p_tr:,} parameters"
    if p_o:
        total += f" (plus {p_o:,} non-trainable)"
    ls[-1] = ")".ljust(20) + total + f", {nbytes:,} bytes."
    return "\n".join(ls)


def flatten(x):
    """Reshape to (batch, features): every dimension after the first is merged.

    >>> import flux_rs as fx
    >>> fx.flatten(fx.zeros32(2, 3, 4)).shape
    (2, 12)
    """
    if not isinstance(x, Tensor):
        x = _core.tensor(x)
    return x.reshape(x.shape[0] if x.ndim else 1, -1)


_ = trainable_children
