"""``fx.gradient`` and ``fx.withgradient`` with Flux (Zygote) semantics."""
from __future__ import annotations

import types
from typing import Any, Callable, NamedTuple

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import Node, children, rebuild_like

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
    # one walk per argument finds the tensors to watch and remembers the tree, so the
    # gradient trees are rebuilt from that plan without walking the model again
    params: list[Tensor] = []
    seen: set[int] = set()
    plans = [_plan(a, set(), params, seen) for a in conv]
    val, gs = record_gradient(params, lambda: f(*conv))
    gmap = {id(p): g for p, g in zip(params, gs)}
    return WithGradient(val, tuple(_grad_of(orig, plan, gmap) for orig, plan in zip(args, plans)))


def record_gradient(params: list, run: Callable[[], Any]) -> tuple[Any, list]:
    """Run ``run()`` with a tape watching ``params``; return its value and the gradient
    of its scalar loss for each parameter (None where it does not depend on one). The
    tape is closed on every path, errors included."""
    _core.tape_start(params)
    try:
        val = run()
        loss = _loss_of(val)
    except BaseException:
        _core.tape_abort()
        raise
    if loss is None:
        _core.tape_abort()
        return val, [None] * len(params)
    return val, _core.tape_finish(loss, params)


def gradient(f: Callable, *args) -> tuple:
    """A tuple with one gradient per argument of ``f`` (None where there is none).
    Models get structural gradients: ``grads[0].layers[0].weight``.

    >>> import flux_rs as fx
    >>> fx.gradient(lambda a, b: a * b, 2.0, 3.0)
    (3.0, 2.0)
    """
    return withgradient(f, *args).grad


_NONE = object()  # a plan entry whose gradient is None (non-tensor leaf, cut cycle)


# Types whose instances ``children`` walks through their ``__dict__`` (fields not
# starting with "_"), learnt per type on first sight by comparing with ``children``
# itself; a type where the two ever differ is never fast-pathed. Saves the generic
# checks of ``children`` (a few µs per layer) on every gradient of a small model.
_PLAIN: dict = {}
_LEAF_TYPES = (types.FunctionType, types.BuiltinFunctionType, int, float, str, bool, type(None))


def _kids(x):
    t = type(x)
    if t is tuple or t is list:
        return list(enumerate(x))
    if t is dict:
        return list(x.items())
    if t in _LEAF_TYPES:
        return None
    plain = _PLAIN.get(t)
    if plain:
        return [(k, v) for k, v in x.__dict__.items() if not k.startswith("_")]
    ch = children(x)
    if plain is None:
        if len(_PLAIN) > 4096:  # classes made on the fly must not pile up here
            _PLAIN.clear()
        d = getattr(x, "__dict__", None)
        # containers' subclasses are never plain: an empty one could match by chance
        _PLAIN[t] = (ch is not None and type(d) is dict and not isinstance(x, (tuple, list, dict, Node))
                     and ch == [(k, v) for k, v in d.items() if not k.startswith("_")])
    return ch


def _plan(x, visiting: set, params: list, seen: set):
    """The tree of ``x`` as a plan for :func:`_rebuild`: a Tensor stands for itself, a
    container for ``(x, keys, subplans)``; every Tensor met is appended to ``params``
    once. The same walk as ``map_tree`` (children order, cycles cut at the second visit)."""
    if isinstance(x, Tensor):
        if id(x) not in seen:
            seen.add(id(x))
            params.append(x)
        return x
    ch = _kids(x)
    if ch is None or id(x) in visiting:
        return _NONE
    visiting.add(id(x))
    sub = [_NONE if v is None else _plan(v, visiting, params, seen) for _, v in ch]
    visiting.discard(id(x))
    if all(s is _NONE for s in sub):
        return _NONE
    return (x, [k for k, _ in ch], sub)


def _rebuild(plan, gmap: dict, done: set):
    """The gradient tree of a plan. A tensor reached twice gets the whole gradient at
    its first place and None after, so that update_, which sums over places, counts it
    once. Subtrees with no gradient collapse to None, as Zygote's ``nothing``."""
    if plan is _NONE:
        return None
    if isinstance(plan, Tensor):
        if id(plan) in done:
            return None
        done.add(id(plan))
        return gmap.get(id(plan))
    x, keys, sub = plan
    vals = [_rebuild(s, gmap, done) for s in sub]
    if all(v is None for v in vals):
        return None
    t = type(x)
    if t is tuple:
        return tuple(vals)
    if t is list:
        return vals
    if _PLAIN.get(t):  # what rebuild_like makes of an object
        return Node(t.__name__, tuple(keys), tuple(vals))
    return rebuild_like(x, keys, vals)


def _grad_of(orig, plan, gmap: dict):
    if isinstance(orig, float):
        g = gmap.get(id(plan)) if isinstance(plan, Tensor) else None
        return None if g is None else g.item()
    if isinstance(plan, Tensor):
        return gmap.get(id(plan))
    return _rebuild(plan, gmap, set())
