"""``fx.gradient`` and ``fx.withgradient`` with Flux (Zygote) semantics."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import children, map_tree, tensors

__all__ = ["gradient", "withgradient", "WithGradient"]


class WithGradient(NamedTuple):
    """What :func:`withgradient` returns: ``val`` (all that ``f`` returned) and ``grad``."""
    val: Any
    grad: tuple


def _as_arg(a):
    """Floats and float numpy arrays become Tensors so that they can be differentiated."""
    if isinstance(a, float):
        return _core.tensor(a, "float64")
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return _core.tensor(a)
    return a


def _loss_of(val) -> Tensor | None:
    loss = val[0] if isinstance(val, tuple) and len(val) > 0 else val
    if isinstance(loss, Tensor):
        return loss
    if isinstance(loss, (int, float, np.floating, np.integer)):
        return None  # a constant: every gradient is None
    raise TypeError(f"the function being differentiated must return a scalar Tensor (or a tuple whose first "
                    f"element is one), got {type(loss).__name__}")


def withgradient(f: Callable, *args) -> WithGradient:
    """The value of ``f(*args)`` and the gradient of its scalar result with respect to
    each argument. If ``f`` returns a tuple, the gradient is of its first element and
    ``val`` is the whole tuple.

    >>> import flux_rs as fx, numpy as np
    >>> val, (g,) = fx.withgradient(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]))
    >>> float(val), np.asarray(g).tolist()
    (5.0, [2.0, 4.0])
    """
    if len(args) == 1 and type(args[0]).__name__ == "Params" and hasattr(args[0], "_implicit_withgradient"):
        return args[0]._implicit_withgradient(f)
    conv = [_as_arg(a) for a in args]
    params: list[Tensor] = []
    seen: set[int] = set()
    for a in conv:
        for t in tensors(a):
            if id(t) not in seen:
                seen.add(id(t))
                params.append(t)
    _core.tape_start(params)
    try:
        val = f(*conv)
        loss = _loss_of(val)
    except BaseException:
        _core.tape_abort()
        raise
    if loss is None:
        _core.tape_abort()
        gs = [None] * len(params)
    else:
        gs = _core.tape_finish(loss, params)
    gmap = {id(p): g for p, g in zip(params, gs)}
    return WithGradient(val, tuple(_structure(orig, a, gmap) for orig, a in zip(args, conv)))


def gradient(f: Callable, *args) -> tuple:
    """A tuple with one gradient per argument of ``f`` (None where there is none).
    Models get structural gradients: ``grads[0].layers[0].weight``.

    >>> import flux_rs as fx
    >>> fx.gradient(lambda a, b: a * b, 2.0, 3.0)
    (3.0, 2.0)
    """
    return withgradient(f, *args).grad


def _structure(orig, conv, gmap: dict):
    if isinstance(orig, float):
        g = gmap.get(id(conv))
        return None if g is None else g.item()
    if isinstance(conv, Tensor):
        return gmap.get(id(conv))
    if children(conv) is None:
        return None
    # a tensor reached twice gets the whole gradient at its first place and None after,
    # so that update_, which sums over places, counts it once
    done: set[int] = set()

    def leaf(x):
        if isinstance(x, Tensor) and id(x) not in done:
            done.add(id(x))
            return gmap.get(id(x))
        return None

    return map_tree(leaf, conv)
