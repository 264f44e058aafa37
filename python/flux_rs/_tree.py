"""Tree walking: a model is any tree of Tensors inside tuples, lists, dicts and objects.

Objects are walked through their instance attributes in definition order, so a plain
class with Tensor attributes trains without registration. ``@fx.layer(trainable=...)``
narrows which attributes the optimiser sees. A Tensor reached twice is one parameter.
"""
from __future__ import annotations

import types
from typing import Any, Callable

from . import _core
from ._core import Tensor

__all__ = ["Node", "layer", "children", "trainable_children", "is_leaf_value"]

_ATOMS = (str, bytes, int, float, complex, bool, type(None), types.FunctionType,
          types.BuiltinFunctionType, types.MethodType, type, types.ModuleType)


# The nodes of gradient and state trees (built in Rust, src/tree.rs: every gradient
# makes one per layer and every update_ reads them).
Node = _core.Node


def _tree_eq(a, b) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        import numpy as np
        return a is b or (a is not None and b is not None and np.array_equal(np.asarray(a), np.asarray(b)))
    return a == b


def layer(cls=None, *, trainable: tuple | None = None):
    """Class decorator marking a layer: ``@fx.layer`` or ``@fx.layer(trainable=("w",))``.

    Every object is walked without it; ``trainable`` restricts what ``fx.setup`` and
    ``fx.trainables`` see to the named attributes.

    >>> import flux_rs as fx
    >>> @fx.layer(trainable=("w",))
    ... class Affine:
    ...     def __init__(self):
    ...         self.w, self.b = fx.ones32(2), fx.zeros32(2)
    >>> len(fx.trainables(Affine()))
    1
    """
    def wrap(c):
        c.__flux_trainable__ = None if trainable is None else tuple(
            (trainable,) if isinstance(trainable, str) else trainable)
        if c in _PLAIN_TYPES:  # decorated after its instances were walked: keep the registry true
            _PLAIN_TYPES[c] = c.__flux_trainable__
        return c
    return wrap if cls is None else wrap(cls)


def is_leaf_value(x: Any) -> bool:
    """True for values that are not containers (Tensors, numbers, functions, …)."""
    return children(x) is None


def _object_fields(x) -> dict | None:
    d = getattr(x, "__dict__", None)
    if d is None or isinstance(x, _ATOMS):
        return None
    return d


_LEAF_TYPES = frozenset({Tensor, str, bytes, int, float, complex, bool, type(None), types.FunctionType,
                         types.BuiltinFunctionType, types.MethodType})


def children(x: Any) -> list[tuple[Any, Any]] | None:
    """``[(key, child)]`` of a container, or None for a leaf value."""
    # exact-type fast paths for what trees are mostly made of (this runs on every step)
    t = type(x)
    if t in _LEAF_TYPES:
        return None
    if t is Node:
        return list(zip(x._fields, x._values))
    if t is tuple or t is list:
        return list(enumerate(x))
    if t is dict:
        return list(x.items())
    if t in _PLAIN_TYPES:
        return [(k, v) for k, v in x.__dict__.items() if k[0] != "_"]
    ch = _children_general(x)
    if ch is not None and t not in _PLAIN_TYPES and len(_PLAIN_TYPES) < 4096 and _is_plain_object(x):
        # later calls on this class take the fast path above (and src/tree.rs's walks)
        _PLAIN_TYPES[t] = getattr(t, "__flux_trainable__", None)
    return ch


# Classes whose instances are walked through their ``__dict__``, each with its
# ``@fx.layer(trainable=...)`` names (None: every field). The Rust walks of gradient and
# update_ read this dict; it is only ever added to, never rebound.
_PLAIN_TYPES: dict = {}


def _is_plain_object(x) -> bool:
    """An instance walked through its ``__dict__`` (not a container, array or atom)."""
    return (not isinstance(x, (Tensor, Node, tuple, list, dict) + _ATOMS) and type(x).__module__ != "numpy"
            and isinstance(getattr(x, "__dict__", None), dict))


def _children_general(x: Any) -> list[tuple[Any, Any]] | None:
    if isinstance(x, Tensor) or isinstance(x, _ATOMS):
        return None
    if isinstance(x, Node):
        return list(zip(x._fields, x._values))
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # namedtuple
        return list(zip(x._fields, x))
    if isinstance(x, (tuple, list)):
        return list(enumerate(x))
    if isinstance(x, dict):
        return list(x.items())
    try:
        import numpy as np
        if isinstance(x, (np.ndarray, np.generic)):
            return None
    except ImportError:  # pragma: no cover
        pass
    if callable(x) and not hasattr(x, "__dict__"):
        return None
    d = _object_fields(x)
    if d is None:
        return None
    return [(k, v) for k, v in d.items() if not k.startswith("_")]


def trainable_children(x: Any) -> list[tuple[Any, Any]] | None:
    """Like :func:`children` but restricted by ``@fx.layer(trainable=...)``; the other
    fields are reported with the value ``None`` so trees keep their shape."""
    ch = children(x)
    if ch is None:
        return None
    names = getattr(type(x), "__flux_trainable__", None)
    if names is None or isinstance(x, (tuple, list, dict, Node)):
        return ch
    return [(k, v if k in names else None) for k, v in ch]


def rebuild_like(x: Any, keys: list, values: list) -> Any:
    """A container of the same kind as ``x`` holding ``values``: tuples stay tuples,
    lists lists, dicts dicts; objects become a :class:`Node` named after their type."""
    if isinstance(x, Node):
        return Node(x._name, tuple(keys), tuple(values))
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return Node(type(x).__name__, tuple(keys), tuple(values))
    if isinstance(x, tuple):
        return tuple(values)
    if isinstance(x, list):
        return list(values)
    if isinstance(x, dict):
        return dict(zip(keys, values))
    return Node(type(x).__name__, tuple(keys), tuple(values))


def map_tree(f: Callable[[Any], Any], x: Any, *, walk=children, _visiting: set | None = None) -> Any:
    """Rebuild the tree of ``x`` with ``f`` applied to every leaf value. A subtree whose
    leaves all map to None collapses to None (as Zygote's ``nothing``); a reference
    cycle is cut at the second visit. ``f`` sees every occurrence of a shared value and
    decides itself what a repeat maps to."""
    visiting = set() if _visiting is None else _visiting
    ch = walk(x)
    if ch is None:
        return f(x)
    if id(x) in visiting:
        return None
    visiting.add(id(x))
    try:
        vals = [map_tree(f, v, walk=walk, _visiting=visiting) if v is not None else None for _, v in ch]
    finally:
        visiting.discard(id(x))
    if all(v is None for v in vals):
        return None
    return rebuild_like(x, [k for k, _ in ch], vals)


def tensors(x: Any, *, walk=children) -> list[Tensor]:
    """Every Tensor in the tree, each once, in walking order."""
    return values_of(x, Tensor, walk=walk)


def values_of(x: Any, kinds, *, walk=children) -> list:
    """Every value of type ``kinds`` in the tree (not looking inside them), each once, in
    walking order."""
    seen: set[int] = set()
    out: list = []

    def go(v, visited):
        if v is None or id(v) in visited:
            return
        if isinstance(v, kinds):
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
            return
        ch = walk(v)
        if ch is None:
            return
        visited.add(id(v))
        for _, c in ch:
            go(c, visited)

    go(x, set())
    return out
