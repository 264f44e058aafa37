"""Optimisation rules of Optimisers.jl and the state tree: ``setup``, ``update_``,
``update``, the pure ``init``/``apply`` interface. Each rule class is a thin shell over
its Rust rule (``rust/src/optim/<rule>.rs``); every step is computed there.

Python conventions: the field ``lambda`` is spelled ``lambda_``; positional and keyword
arguments may be mixed; a rule is an immutable value (``fx.adjust`` makes new ones).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import numpy as np

from . import _core
from ._core import Leaf, Tensor
from ._tree import Node, children, map_tree, trainable_children

__all__ = ["Rule", "Leaf", "setup", "update_", "update", "init", "apply",
           "Descent", "Momentum", "Nesterov", "Rprop", "RMSProp", "Adam", "RAdam", "AdaMax", "OAdam",
           "AdaGrad", "AdaDelta", "AMSGrad", "NAdam", "AdamW", "AdaBelief", "Lion", "WeightDecay",
           "SignDecay", "ClipGrad", "ClipNorm"]

_RUST_NAME = {"lambda_": "lambda"}


def _norm_value(name, default, v):
    """Check a hyperparameter against the kind of its default, as Optimisers.jl's @def."""
    if isinstance(default, bool):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {v!r}")
        return bool(v)
    if isinstance(default, float):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {v!r}")
        return float(v)
    if isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {v!r}")
        return int(v)
    if isinstance(default, tuple):
        if not isinstance(v, (tuple, list)) or len(v) != len(default):
            raise TypeError(f"{name} must be a tuple of {len(default)} numbers, got {v!r}")
        return tuple(_norm_value(name, d, x) for d, x in zip(default, v))
    return v


class Rule:
    """Base of every optimisation rule. Subclasses list ``_fields`` as
    ``((name, default), ...)`` in Optimisers.jl's constructor order."""

    _fields: ClassVar[tuple[tuple[str, Any], ...]] = ()

    def __init__(self, *args, **kwargs):
        names = [k for k, _ in self._fields]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments "
                            f"({', '.join(names)}), got {len(args)}")
        vals = dict(self._fields)
        vals.update(zip(names, args))
        for k, v in kwargs.items():
            if k not in vals:
                raise TypeError(f"{type(self).__name__} has no field {k!r}; its fields are {', '.join(names)}")
            if k in names[:len(args)]:
                raise TypeError(f"{type(self).__name__} got {k!r} both positionally and as a keyword")
            vals[k] = v
        self._init_fields(vals)

    def _init_fields(self, vals: dict):
        defaults = dict(self._fields)
        vals = {k: _norm_value(k, defaults[k], v) for k, v in vals.items()}
        for k, v in vals.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_core", _core.RuleCore(self._rust_name(), self._rust_fields(vals)))

    def _rust_name(self) -> str:
        return type(self).__name__

    def _rust_fields(self, vals: dict) -> dict:
        return {_RUST_NAME.get(k, k): v for k, v in vals.items()}

    def _values(self) -> dict:
        return {k: getattr(self, k) for k, _ in self._fields}

    def _replace(self, **kw) -> "Rule":
        """A copy with some fields changed (what ``adjust`` uses)."""
        new = object.__new__(type(self))
        vals = self._values()
        vals.update(kw)
        new._init_fields(vals)
        return new

    def __setattr__(self, k, v):
        raise AttributeError(f"{type(self).__name__} is immutable; use fx.adjust_(state, {k}=...) to change a rule")

    def __eq__(self, other):
        return type(self) is type(other) and self._values() == other._values()

    def __hash__(self):
        return hash((type(self).__name__, tuple(self._values().items())))

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self._values().items()) + ")"

    def __reduce__(self):
        return (_rebuild_rule, (type(self), self._values()))


def _rebuild_rule(cls, vals):
    r = object.__new__(cls)
    r._init_fields(vals)
    return r


def _rule(name: str, fields: tuple, doc: str):
    cls = type(name, (Rule,), {"_fields": fields, "__doc__": doc, "__module__": __name__})
    return cls


class Descent(Rule):
    """Plain gradient descent: ``x ← x − η·g``.

    >>> import flux_rs as fx, numpy as np
    >>> st, dx = fx.optimise.apply(fx.Descent(0.1), None, np.array([1.0]), np.array([2.0]))
    >>> dx.tolist()
    [0.2]
    """
    _fields = (("eta", 0.1),)

    def __repr__(self):
        return f"Descent({self.eta!r})"


Momentum = _rule("Momentum", (("eta", 0.01), ("rho", 0.9)),
                 "Heavy-ball momentum: ``v ← ρ·v + η·g; x ← x − v``.\n\n>>> import flux_rs as fx\n>>> fx.Momentum(0.1)\nMomentum(eta=0.1, rho=0.9)\n")
Nesterov = _rule("Nesterov", (("eta", 0.001), ("rho", 0.9)),
                 "Nesterov momentum.\n\n>>> import flux_rs as fx\n>>> fx.Nesterov().rho\n0.9\n")
Rprop = _rule("Rprop", (("eta", 1e-3), ("ell", (0.5, 1.2)), ("gamma", (1e-6, 50.0))),
              "Resilient propagation.\n\n>>> import flux_rs as fx\n>>> fx.Rprop().ell\n(0.5, 1.2)\n")
RMSProp = _rule("RMSProp", (("eta", 0.001), ("rho", 0.9), ("epsilon", 1e-8), ("centred", False)),
                "RMSProp, optionally centred.\n\n>>> import flux_rs as fx\n>>> fx.RMSProp(centred=True).centred\nTrue\n")
Adam = _rule("Adam", (("eta", 0.001), ("beta", (0.9, 0.999)), ("epsilon", 1e-8)),
             "Adam.\n\n>>> import flux_rs as fx\n>>> fx.Adam(0.01)\nAdam(eta=0.01, beta=(0.9, 0.999), epsilon=1e-08)\n")
RAdam = _rule("RAdam", (("eta", 0.001), ("beta", (0.9, 0.999)), ("epsilon", 1e-8)),
              "Rectified Adam.\n\n>>> import flux_rs as fx\n>>> fx.RAdam().eta\n0.001\n")
AdaMax = _rule("AdaMax", (("eta", 0.001), ("beta", (0.9, 0.999)), ("epsilon", 1e-8)),
               "AdaMax (infinity-norm Adam).\n\n>>> import flux_rs as fx\n>>> fx.AdaMax().eta\n0.001\n")
OAdam = _rule("OAdam", (("eta", 0.001), ("beta", (0.5, 0.9)), ("epsilon", 1e-8)),
              "Optimistic Adam.\n\n>>> import flux_rs as fx\n>>> fx.OAdam().beta\n(0.5, 0.9)\n")
AdaGrad = _rule("AdaGrad", (("eta", 0.1), ("epsilon", 1e-8)),
                "AdaGrad.\n\n>>> import flux_rs as fx\n>>> fx.AdaGrad().eta\n0.1\n")
AdaDelta = _rule("AdaDelta", (("rho", 0.9), ("epsilon", 1e-8)),
                 "AdaDelta (no learning rate).\n\n>>> import flux_rs as fx\n>>> fx.AdaDelta().rho\n0.9\n")
AMSGrad = _rule("AMSGrad", (("eta", 0.001), ("beta", (0.9, 0.999)), ("epsilon", 1e-8)),
                "AMSGrad.\n\n>>> import flux_rs as fx\n>>> fx.AMSGrad().eta\n0.001\n")
NAdam = _rule("NAdam", (("eta", 0.001), ("beta", (0.9, 0.999)), ("epsilon", 1e-8)),
              "Nesterov Adam.\n\n>>> import flux_rs as fx\n>>> fx.NAdam().eta\n0.001\n")
AdamW = _rule("AdamW", (("eta", 0.001), ("beta", (0.9, 0.999)), ("lambda_", 0.0), ("epsilon", 1e-8), ("couple", True)),
              "Adam with weight decay (coupled to η by default, as PyTorch).\n\n>>> import flux_rs as fx\n>>> fx.AdamW(lambda_=0.1).lambda_\n0.1\n")
AdaBelief = _rule("AdaBelief", (("eta", 0.001), ("beta", (0.9, 0.999)), ("epsilon", 1e-16)),
                  "AdaBelief.\n\n>>> import flux_rs as fx\n>>> fx.AdaBelief().epsilon\n1e-16\n")
Lion = _rule("Lion", (("eta", 0.001), ("beta", (0.9, 0.999))),
             "Lion (as implemented in Optimisers.jl).\n\n>>> import flux_rs as fx\n>>> fx.Lion().eta\n0.001\n")
WeightDecay = _rule("WeightDecay", (("lambda_", 5e-4),),
                    "L2 penalty added to the gradient: ``g + λ·x``.\n\n>>> import flux_rs as fx\n>>> fx.WeightDecay(0.1).lambda_\n0.1\n")
SignDecay = _rule("SignDecay", (("lambda_", 1e-3),),
                  "L1 penalty added to the gradient: ``g + λ·sign(x)``.\n\n>>> import flux_rs as fx\n>>> fx.SignDecay().lambda_\n0.001\n")
ClipGrad = _rule("ClipGrad", (("delta", 10.0),),
                 "Clip each gradient entry to [−δ, δ].\n\n>>> import flux_rs as fx\n>>> fx.ClipGrad(2).delta\n2.0\n")
ClipNorm = _rule("ClipNorm", (("omega", 10.0), ("p", 2.0), ("throw", True)),
                 "Rescale each gradient array to p-norm at most ω.\n\n>>> import flux_rs as fx\n>>> fx.ClipNorm(5, 1).p\n1.0\n")


# ---- the state tree ------------------------------------------------------------------

def setup(rule: Rule, model) -> Any:
    """The optimiser state tree for ``model``: an ``fx.Leaf`` for every trainable
    Tensor, None elsewhere, mirroring the model's structure. A Tensor reached twice
    gets one Leaf.

    >>> import flux_rs as fx
    >>> st = fx.setup(fx.Momentum(0.1), fx.Dense(2, 1))
    >>> st.weight
    Leaf(Momentum(eta=0.1, rho=0.9), Tensor([[0., 0.]], dtype=float32))
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"setup needs a rule such as fx.Adam() first, got {type(rule).__name__}")
    leaves: dict[int, Leaf] = {}

    def leaf(x):
        if isinstance(x, Tensor):
            if id(x) not in leaves:
                leaves[id(x)] = Leaf(rule, _core.rule_init(rule, x))
            return leaves[id(x)]
        return None

    tree = map_tree(leaf, model, walk=trainable_children)
    if not leaves:
        warnings.warn("setup found no trainable parameters in this model", stacklevel=2)
    return tree


def _keyed(ch):
    return {} if ch is None else dict(ch)


def _looks_like_whole_gradient(model, grads) -> bool:
    return (isinstance(grads, tuple) and not isinstance(grads, Node) and not hasattr(grads, "_fields")
            and not isinstance(model, (tuple, list)) and len(grads) >= 1)


def update_(tree, model, grads, *more):
    """Apply one optimisation step in place, to every parameter with a gradient, in a
    single call into Rust. Returns ``(tree, model)``. A None gradient leaves a parameter
    and its state alone; tied parameters get the sum of their gradients.

    >>> import flux_rs as fx, numpy as np
    >>> m = {"w": fx.tensor(np.array([1.0, 2.0]))}
    >>> st = fx.setup(fx.Descent(0.1), m)
    >>> _ = fx.update_(st, m, {"w": np.array([10.0, 10.0])})
    >>> m["w"].tolist()
    [0.0, 1.0]
    """
    if isinstance(tree, Rule) and hasattr(model, "_implicit_update"):
        return model._implicit_update(tree, grads)  # the implicit style: update_(opt, params, grads)
    if isinstance(tree, Rule):
        raise TypeError("update_ needs the optimiser state, not a rule: first "
                        f"`opt_state = fx.setup({tree!r}, model)`, then `fx.update_(opt_state, model, grads[0])`")
    if _looks_like_whole_gradient(model, grads):
        warnings.warn("update_ wants the gradient of the model alone, not the whole tuple from fx.gradient; "
                      "you probably want grads[0]", stacklevel=2)
        grads = grads[0]
    acc: dict[int, list] = {}

    def walk(t, m, g, path):
        if t is None or g is None:
            return
        if isinstance(t, Leaf):
            if not isinstance(m, Tensor):
                raise TypeError(f"the state has a Leaf at {path or 'the root'} but the model has "
                                f"{type(m).__name__} there; is the state from fx.setup of this model?")
            entry = acc.get(id(t))
            if entry is None:
                acc[id(t)] = [t, m, g]
            else:
                entry[2] = _core.tensor(entry[2], m.dtype.name) + g  # tied: sum the gradients
            return
        tc = children(t)
        if tc is None:
            return
        mc, gc = _keyed(trainable_children(m)), _keyed(children(g))
        for k, sub in tc:
            walk(sub, mc.get(k), gc.get(k), f"{path}.{k}" if path else str(k))

    walk(tree, model, grads, "")
    items = [e for e in acc.values() if not e[0].frozen]
    if items:
        _core.update_many([e[0] for e in items], [e[1] for e in items], [e[2] for e in items])
    return tree, model


def _copy_state(tree, memo: dict):
    if isinstance(tree, Leaf):
        if id(tree) not in memo:
            memo[id(tree)] = tree._copy()
        return memo[id(tree)]
    ch = children(tree)
    if ch is None:
        return tree
    from ._tree import rebuild_like
    return rebuild_like(tree, [k for k, _ in ch], [_copy_state(v, memo) for _, v in ch])


def update(tree, model, grads, *more):
    """Like :func:`update_` but leaves ``tree`` and ``model`` untouched and returns new ones.

    >>> import flux_rs as fx, numpy as np
    >>> m = [fx.tensor(np.array([1.0]))]
    >>> st2, m2 = fx.update(fx.setup(fx.Descent(0.5), m), m, [np.array([1.0])])
    >>> m[0].tolist(), m2[0].tolist()
    ([1.0], [0.5])
    """
    memo: dict = {}
    model2 = copy.deepcopy(model, memo)
    tree2 = _copy_state(tree, {})
    return update_(tree2, model2, grads, *more)


# ---- the pure rule interface -----------------------------------------------------------

def _to_numpy_tree(s):
    if isinstance(s, Tensor):
        return s.numpy()
    if isinstance(s, tuple):
        return tuple(_to_numpy_tree(v) for v in s)
    return s


def init(rule: Rule, x) -> Any:
    """The initial state of ``rule`` for parameter ``x``, as numpy arrays and numbers.

    >>> import flux_rs as fx, numpy as np
    >>> fx.optimise.init(fx.Momentum(), np.zeros(2))
    array([0., 0.])
    """
    return _to_numpy_tree(_core.rule_init(rule, x))


def apply(rule: Rule, state, x, dx):
    """One step of the pure interface: ``(new_state, step)``, where the new parameter is
    ``x - step``. Nothing passed in is modified. ``step`` is None when the rule makes
    no step this time (AccumGrad before its n-th gradient).

    >>> import flux_rs as fx, numpy as np
    >>> s, step = fx.optimise.apply(fx.Momentum(0.1), np.zeros(2), np.zeros(2), np.array([25.0, 33.0]))
    >>> s.tolist()
    [2.5, 3.3000000000000003]
    """
    s, d = _core.rule_apply(rule, state, x, dx)
    return _to_numpy_tree(s), (None if d is None else d.numpy())
