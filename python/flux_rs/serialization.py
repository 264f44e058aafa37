"""Model state and checkpoints: ``fx.state``, ``fx.loadmodel_``, ``fx.save``, ``fx.load``.

A checkpoint is a safetensors file: every Tensor of the tree is stored under its path
(``"model.layers.0.weight"``), and the metadata key ``"flux_rs"`` holds a JSON
description of the tree (containers, layer class names, numbers, strings, optimiser
``Leaf`` objects with their rule name, hyperparameters, state and frozen flag) with a
format version. The file is written from Rust atomically (temporary file, fsync,
rename, fsync of the directory) with a CRC-32 that ``fx.load`` checks. Nothing is ever
unpickled: a damaged file raises :class:`CheckpointError` (a ValueError).
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import _core
from ._core import Leaf, Tensor
from ._tree import Node, children, tensors

__all__ = ["state", "loadmodel_", "save", "load", "CheckpointError", "FORMAT_VERSION"]

FORMAT = "flux_rs.checkpoint"
FORMAT_VERSION = 1
_META = "flux_rs"
_CHECKSUM = "flux_rs.crc32"  # flux_core::io::CHECKSUM_KEY


class CheckpointError(ValueError):
    """A file that is not a readable flux_rs checkpoint: truncated, corrupted (the
    checksum does not match), not safetensors, or with a malformed tree description."""


# ---- fx.state -------------------------------------------------------------------------

def _is_array(x) -> bool:
    return isinstance(x, (Tensor, np.ndarray))


def state(x) -> Any:
    """The state of a model as a tree of plain containers, as ``Flux.state``: the same
    nested structure (all fields, trainable or not), objects as ``fx.Node`` named after
    their class, Tensors (as copy-on-write snapshots: later training does not change
    them), numpy arrays, numbers, strings, bools and None kept; every other leaf
    (functions, generators) becomes None.

    >>> import flux_rs as fx
    >>> s = fx.state(fx.Chain(fx.Dense(1, 2, fx.tanh, init=fx.ones32), fx.Dense(2, 1, bias=False)))
    >>> s.layers[0].weight.tolist(), s.layers[0].σ, s.layers[1].bias
    ([[1.0], [1.0]], None, False)
    """
    memo: dict[int, Any] = {}

    def go(v, visiting):
        if isinstance(v, Tensor):
            if id(v) not in memo:
                memo[id(v)] = v.copy()  # tied parameters stay one object
            return memo[id(v)]
        if isinstance(v, np.ndarray):
            return v.copy()
        if v is None or isinstance(v, (bool, int, float, str, np.generic)):
            return v
        ch = children(v)
        if ch is None or id(v) in visiting:
            return None
        visiting.add(id(v))
        try:
            vals = [go(c, visiting) for _, c in ch]
        finally:
            visiting.discard(id(v))
        keys = [k for k, _ in ch]
        if isinstance(v, Node):
            return Node(v._name, tuple(keys), tuple(vals))
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            return tuple(vals)
        if isinstance(v, list):
            return vals
        if isinstance(v, dict):
            return dict(zip(keys, vals))
        return Node(type(v).__name__, tuple(keys), tuple(vals))

    return go(x, set())


# ---- fx.loadmodel_ --------------------------------------------------------------------

def _join(path: str, k) -> str:
    return f"{path}.{k}" if path else str(k)


def _where(path: str) -> str:
    return path if path else "the root"


def _all_zero(a) -> bool:
    t = a if isinstance(a, Tensor) else _core.tensor(np.asarray(a, dtype=np.float64))
    return t.size == 0 or t.abs().max().item() == 0.0


def loadmodel_(model: Any, src: Any) -> Any:
    """Copy the arrays of ``src`` (a state from :func:`state` or :func:`load`, or another
    model) into ``model`` in place and return ``model``; the model's Tensors stay the
    same objects and keep their dtype. As ``Flux.loadmodel!``: the structures must match
    (ValueError naming the first differing path), array shapes must match (ValueError
    naming the path and both shapes), non-array leaves of the model (activation
    functions, sizes) are kept; ``bias=False`` in the source zero-fills an array, and an
    all-zero array may load into a ``False`` field. Tied parameters are loaded once and
    their other sources must agree. Fields are matched by name (``str`` of the key, in any
order); fields of the model that hold no arrays may be missing from the source (so
that a PyTorch ``state_dict`` loads).

    >>> import flux_rs as fx
    >>> a, b = fx.Dense(2, 3), fx.Dense(2, 3)
    >>> w = b.weight
    >>> _ = fx.loadmodel_(b, fx.state(a))
    >>> b.weight is w, b.weight.tolist() == a.weight.tolist()
    (True, True)
    """
    done: dict[int, Any] = {}

    def go(dst, s, path, visiting):
        if isinstance(dst, Tensor):
            if _is_array(s):
                ss = tuple(s.shape)
                if ss != tuple(dst.shape):
                    raise ValueError(f"loadmodel_: at {_where(path)}, cannot load an array of shape {ss} "
                                     f"into one of shape {tuple(dst.shape)}")
                if id(dst) in done:
                    if not np.array_equal(np.asarray(done[id(dst)]), np.asarray(s)):
                        raise ValueError(f"loadmodel_: at {_where(path)}, a tied parameter gets a different "
                                         "value than at its first place")
                    return
                _core.assign_(dst, s)
                done[id(dst)] = s
            elif s is False:
                _core.assign_(dst, _core.full(list(dst.shape), 0.0, str(np.dtype(dst.dtype))))
                done[id(dst)] = np.zeros(dst.shape)
            else:
                raise ValueError(f"loadmodel_: at {_where(path)}, the model has an array of shape "
                                 f"{tuple(dst.shape)} but the source has {type(s).__name__} {s!r:.60}")
            return
        dch = children(dst)
        if dch is None or isinstance(dst, np.ndarray):
            if _is_array(s) and not isinstance(dst, np.ndarray):
                if dst is False and _all_zero(s):
                    return
                raise ValueError(f"loadmodel_: at {_where(path)}, the source has an array of shape "
                                 f"{tuple(s.shape)} but the model has {type(dst).__name__} {dst!r:.60}")
            if isinstance(dst, np.ndarray) and _is_array(s):
                if tuple(s.shape) != dst.shape:
                    raise ValueError(f"loadmodel_: at {_where(path)}, cannot load an array of shape "
                                     f"{tuple(s.shape)} into one of shape {dst.shape}")
                dst[...] = np.asarray(s)
            return  # numbers, functions, strings of the model are kept, as in Flux
        if id(dst) in visiting:
            return
        sch = children(s) if s is not None else None
        if sch is None or _is_array(s):
            if s is None and not tensors(dst):
                return  # a layer without arrays saved as nothing
            raise ValueError(f"loadmodel_: the structures do not match at {_where(path)}: the model has "
                             f"{type(dst).__name__} with fields {[k for k, _ in dch]}, the source has "
                             f"{type(s).__name__}")
        dkeys, skeys = [str(k) for k, _ in dch], [str(k) for k, _ in sch]
        # fields holding no arrays (activation functions, sizes) may be absent from a
        # source such as a PyTorch file; every other field must be on both sides
        need = [str(k) for k, v in dch if str(k) in skeys or _is_array(v) or tensors(v)]
        if sorted(need) != sorted(skeys):
            first = next((k for k in need if k not in skeys), None) or next(k for k in skeys if k not in need)
            raise ValueError(f"loadmodel_: the structures do not match at {_join(path, first)}: tried to load "
                             f"fields {skeys} into {dkeys} at {_where(path)}")
        smap = {str(k): v for k, v in sch}
        visiting.add(id(dst))
        try:
            for k, v in dch:
                if str(k) in smap:
                    go(v, smap[str(k)], _join(path, k), visiting)
        finally:
            visiting.discard(id(dst))

    go(model, src, "", set())
    return model


# ---- encoding a tree ------------------------------------------------------------------

class _Enc:
    def __init__(self):
        self.tensors: list[tuple[str, Tensor]] = []
        self.keys: set[str] = set()
        self.ids: dict[int, int] = {}
        self.keep: list = []  # keeps encoded objects alive so that ids stay unique

    def key(self, path: str) -> str:
        k = path or "_"
        if k in self.keys:
            i = 2
            while f"{k}#{i}" in self.keys:
                i += 1
            k = f"{k}#{i}"
        self.keys.add(k)
        return k

    def shared(self, x):
        """(node id, first time?) for objects whose identity matters."""
        if id(x) in self.ids:
            return self.ids[id(x)], False
        self.ids[id(x)] = len(self.ids)
        self.keep.append(x)
        return self.ids[id(x)], True

    def scalar(self, x):
        if x is None:
            return {"t": "none"}
        if isinstance(x, (bool, np.bool_)):
            return {"t": "bool", "v": bool(x)}
        if isinstance(x, (int, np.integer)):
            return {"t": "int", "v": str(int(x))}
        if isinstance(x, (float, np.floating)):
            return {"t": "float", "v": repr(float(x))}
        if isinstance(x, str):
            return {"t": "str", "v": x}
        return None

    def rule(self, r, path):
        from .optimise import Rule
        if not isinstance(r, Rule):
            raise TypeError(f"save: the Leaf at {_where(path)} holds {type(r).__name__}, not an fx rule")
        d = {"t": "rule", "name": type(r).__name__,
             "fields": [[k, self.enc(v, _join(path, k), set())] for k, v in r._values().items()]}
        if r._user:  # a rule written in Python: fx.load finds its class by this name
            d["class"] = f"{type(r).__module__}.{type(r).__qualname__}"
        return d

    def enc(self, x, path: str, visiting: set):
        from .optimise import Rule
        s = self.scalar(x)
        if s is not None:
            return s
        if isinstance(x, Tensor):
            i, first = self.shared(x)
            if not first:
                return {"t": "ref", "id": i}
            k = self.key(path)
            self.tensors.append((k, x))
            return {"t": "tensor", "id": i, "k": k}
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "fiub":
                raise TypeError(f"save: cannot store the numpy array of dtype {x.dtype} at {_where(path)}")
            k = self.key(path)
            dt = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8) else np.float64
            self.tensors.append((k, _core.tensor(np.ascontiguousarray(x, dtype=dt), np.dtype(dt).name)))
            return {"t": "ndarray", "k": k, "dtype": x.dtype.str}
        if isinstance(x, Leaf):
            i, first = self.shared(x)
            if not first:
                return {"t": "ref", "id": i}
            return {"t": "leaf", "id": i, "rule": self.rule(x.rule, _join(path, "rule")),
                    "state": self.enc(x.state, _join(path, "state"), visiting), "frozen": bool(x.frozen)}
        if isinstance(x, Rule):
            return self.rule(x, path)
        if isinstance(x, _core.Rng):
            seed, stream, pos = x._getstate()
            return {"t": "rng", "seed": seed, "stream": str(stream), "pos": pos}
        ch = children(x)
        if ch is None:
            return {"t": "opaque", "repr": getattr(x, "__name__", type(x).__name__)}
        if id(x) in visiting:
            return {"t": "none"}  # a reference cycle is cut
        visiting.add(id(x))
        try:
            items = [self.enc(v, _join(path, k), visiting) for k, v in ch]
        finally:
            visiting.discard(id(x))
        keys = [k for k, _ in ch]
        if isinstance(x, Node):
            return {"t": "node", "name": x._name, "fields": list(keys), "items": items}
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return {"t": "node", "name": type(x).__name__, "fields": list(keys), "items": items}
        if isinstance(x, tuple):
            return {"t": "tuple", "items": items}
        if isinstance(x, list):
            return {"t": "list", "items": items}
        if isinstance(x, dict):
            ks = []
            for k in keys:
                e = self.scalar(k)
                if e is None:
                    raise TypeError(f"save: dict keys must be str, int, float, bool or None; got {k!r} at {_where(path)}")
                ks.append(e)
            return {"t": "dict", "keys": ks, "items": items}
        return {"t": "object", "name": type(x).__name__, "class": f"{type(x).__module__}.{type(x).__qualname__}",
                "fields": list(keys), "items": items}


def save(path: str | os.PathLike[str], tree: Any) -> None:
    """Write ``tree`` (a model, a state, an optimiser state tree of ``fx.Leaf``, or a
    dict of them, e.g. ``{"model": model, "opt": opt_state, "rng": loader.rng}``) to
    ``path`` in the safetensors format. Tensors are keyed by their path in the tree;
    the metadata describes the rest (see the module docstring). The write is atomic: a
    crash leaves the previous file intact.

    >>> import flux_rs as fx, tempfile, os
    >>> m = fx.Dense(2, 1)
    >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> fx.save(p, {"model": m, "opt": fx.setup(fx.Adam(), m)})
    >>> fx.load(p)["opt"].weight.rule
    Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-08)
    """
    e = _Enc()
    desc = e.enc(tree, "", set())
    meta = {_META: json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "tree": desc}, allow_nan=False)}
    _core.save_safetensors(os.fspath(path), e.tensors, meta)


# ---- decoding -------------------------------------------------------------------------

def _rule_class(name: str, qualname: str | None = None):
    from . import optimise
    from .optimise import Rule, _USER_RULES
    import flux_rs
    if qualname is not None:
        # a rule written in Python: its class must be defined in this program already
        # (a checkpoint never makes fx.load import or run anything)
        cls = _USER_RULES.get(qualname)
        if cls is None:  # saved from another module (a script's __main__): one class of that name
            same = {c for c in _USER_RULES.values() if qualname.endswith("." + c.__qualname__)}
            cls = same.pop() if len(same) == 1 else None
        if cls is None:
            mod = qualname.rsplit(".", 1)[0] if "." in qualname else qualname
            raise CheckpointError(f"the checkpoint uses the optimisation rule {qualname}, written in Python; "
                                  f"define it or import its module ({mod}) before fx.load")
        return cls
    for ns in (optimise, flux_rs):
        cls = getattr(ns, name, None)
        if isinstance(cls, type) and issubclass(cls, Rule):
            return cls
    raise CheckpointError(f"the checkpoint names the optimisation rule {name!r}, which this flux_rs does not have")


class _Dec:
    def __init__(self, tensors: dict):
        self.tensors = tensors
        self.memo: dict[int, Any] = {}

    def rule(self, d):
        from .optimise import _rebuild_rule
        cls = _rule_class(d["name"], d.get("class"))
        vals = {k: self.dec(v) for k, v in d["fields"]}
        return _rebuild_rule(cls, vals)

    def dec(self, d):
        t = d["t"]
        if t == "none" or t == "opaque":
            return None
        if t == "bool":
            return bool(d["v"])
        if t == "int":
            return int(d["v"])
        if t == "float":
            return float(d["v"])
        if t == "str":
            return str(d["v"])
        if t == "tensor":
            x = self.tensors[d["k"]]
            self.memo[d["id"]] = x
            return x
        if t == "ref":
            return self.memo[d["id"]]
        if t == "ndarray":
            return np.asarray(self.tensors[d["k"]]).astype(np.dtype(d["dtype"]))
        if t == "rule":
            return self.rule(d)
        if t == "leaf":
            x = Leaf(self.rule(d["rule"]), self.dec(d["state"]), bool(d["frozen"]))
            self.memo[d["id"]] = x
            return x
        if t == "rng":
            return _core.Rng._fromstate(d["seed"], int(d["stream"]), d["pos"])
        if t == "tuple":
            return tuple(self.dec(v) for v in d["items"])
        if t == "list":
            return [self.dec(v) for v in d["items"]]
        if t == "dict":
            return {self.dec(k): self.dec(v) for k, v in zip(d["keys"], d["items"], strict=True)}
        if t in ("node", "object"):
            if len(d["fields"]) != len(d["items"]):
                raise ValueError("fields and items differ in length")
            return Node(str(d["name"]), tuple(d["fields"]), tuple(self.dec(v) for v in d["items"]))
        raise ValueError(f"unknown node type {t!r}")


def _nest(flat: dict) -> dict:
    """Dotted names of a foreign file (``"layers.0.weight"``) as nested dicts."""
    out: dict = {}
    for name, t in flat.items():
        parts = name.split(".")
        node = out
        ok = all(p for p in parts)
        for p in parts[:-1]:
            nxt = node.setdefault(p, {}) if ok else None
            if not isinstance(nxt, dict):
                ok = False
                break
            node = nxt
        if ok and parts[-1] not in node:
            node[parts[-1]] = t
        else:
            out[name] = t
    return out


def load(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint written by :func:`save`: the tree with Tensors in place, objects
    (layers) as ``fx.Node`` named after their class, optimiser state as ``fx.Leaf``
    objects ready for ``fx.update_``, generators as ``fx.Rng``; tied Tensors and shared
    Leafs come back shared. Load it into a model with :func:`loadmodel_`. A safetensors
    file written by another tool (e.g. PyTorch, or a Rust program's
    ``flux_core::io::save`` of ``Module::parameters``) loads as nested dicts split at the
    dots of its names. A truncated, corrupted or malformed file raises
    :class:`CheckpointError`; nothing is unpickled.

    >>> import flux_rs as fx, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s.safetensors")
    >>> fx.save(p, {"w": fx.ones32(2), "step": 3})
    >>> fx.load(p)
    {'w': Tensor([1. 1.], dtype=float32), 'step': 3}
    """
    p = os.fspath(path)
    try:
        items, meta, _verified = _core.load_safetensors(p)
    except (ValueError, TypeError, OverflowError, MemoryError) as err:
        raise CheckpointError(str(err)) from None
    flat = dict(items)
    if _META not in meta:
        # a Rust program's `flux_core::io::save` writes the (verified) checksum and no
        # tree: its tensors load by name as below; any other flux_rs key without the
        # tree is a damaged header
        if any(k.startswith(_META) and k != _CHECKSUM for k in meta):
            raise CheckpointError(f"{p}: the flux_rs tree description is missing (corrupted header?)")
        try:
            return _nest(flat)
        except Exception as err:  # noqa: BLE001 - any failure to decode is the file's fault
            raise CheckpointError(f"{p}: malformed tensor names: {type(err).__name__}: {err}") from None
    try:
        info = json.loads(meta[_META])
        if info.get("format") != FORMAT:
            raise ValueError(f"format {info.get('format')!r}")
        v = info.get("version")
        if not isinstance(v, int) or v > FORMAT_VERSION or v < 1:
            raise CheckpointError(f"{p}: checkpoint format version {v!r}; this flux_rs reads versions 1 to "
                                  f"{FORMAT_VERSION}")
        return _Dec(flat).dec(info["tree"])
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - crafted metadata (deep, huge, odd): any failure is the file's
        raise CheckpointError(f"{p}: malformed flux_rs tree description: {type(err).__name__}: {err}") from None

