"""Optimisation rules of Optimisers.jl and the state tree: ``setup``, ``update_``,
``update``, the pure ``init``/``apply`` interface. Each rule class is a thin shell over
its Rust rule (``rust/src/optim/<rule>.rs``); every step is computed there.

Python conventions: the field ``lambda`` is spelled ``lambda_``; positional and keyword
arguments may be mixed; a rule is an immutable value (``fx.adjust`` makes new ones).
"""
# (no ``from __future__ import annotations`` here: help() and inspect.signature show the
# rules' annotations as types, not strings)
import copy
import warnings
from typing import Any, ClassVar, Sequence, Union

import numpy as np

from . import _core
from ._core import Leaf, Tensor
from ._tree import Node, children, map_tree, trainable_children

__all__ = ["Rule", "Leaf", "setup", "update_", "update", "init", "apply",
           "Descent", "Momentum", "Nesterov", "Rprop", "RMSProp", "Adam", "RAdam", "AdaMax", "OAdam",
           "AdaGrad", "AdaDelta", "AMSGrad", "NAdam", "AdamW", "AdaBelief", "Lion", "WeightDecay",
           "SignDecay", "ClipGrad", "ClipNorm", "OptimiserChain", "AccumGrad", "MixedPrecision",
           "adjust_", "adjust", "freeze_", "thaw_", "clip_norm_"]

#: what names a float dtype: "float32", np.float64, np.dtype("float32")
DTypeLike = Union[str, type, np.dtype]

_RUST_NAME = {"lambda_": "lambda"}
_PY_NAME = {v: k for k, v in _RUST_NAME.items()}


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
    """Base of every optimisation rule. Built-in subclasses list ``_fields`` as
    ``((name, default), ...)`` in Optimisers.jl's constructor order; their steps are
    computed in Rust.

    A rule of your own is a subclass with ``init(self, x)`` (the state for parameter
    ``x``; leave it out for a rule without state) and ``apply(self, state, x, dx)``
    returning ``(state, step)``, where the new parameter is ``x - step`` (a step of None
    makes no step this time). ``x`` and ``dx`` arrive as ``fx.Tensor``; compute with
    Tensor operations, or with numpy after ``np.asarray``. The state is made of arrays
    (Tensors or numpy), numbers, tuples and None, as a built-in rule's. Hyperparameters
    are the public attributes set in ``__init__``: ``fx.adjust_`` changes them and
    checkpoints store them. Such a rule works wherever a built-in one does:
    ``fx.setup``, ``update_``/``update``, ``OptimiserChain`` (mixed with built-in
    rules), ``AccumGrad``, ``MixedPrecision``, ``adjust_``, ``freeze_``/``thaw_``,
    ``fx.save``/``fx.load`` and the pure ``fx.optimise.init``/``apply``.

    A checkpoint names the rule by its module and qualified name
    (``mymodule.MyRule``). ``fx.load`` looks it up among the rule classes defined so far
    in the loading program (defining a subclass registers it), so import the module that
    defines it first; a class of the same qualified name in another module is taken
    when it is the only one (a rule saved from a script's ``__main__``, loaded in a
    notebook). ``fx.load`` never imports anything itself, and it rebuilds the rule from
    its public attributes without calling ``__init__``.

    >>> import flux_rs as fx, numpy as np
    >>> class SignDescent(fx.Rule):
    ...     def __init__(self, eta=0.1):
    ...         self.eta = eta
    ...     def apply(self, state, x, dx):
    ...         return state, self.eta * np.sign(np.asarray(dx))
    >>> m = {"w": fx.tensor(np.array([1.0, 1.0]))}
    >>> st = fx.setup(fx.OptimiserChain(fx.ClipGrad(1.0), SignDescent(0.5)), m)
    >>> _ = fx.update_(st, m, {"w": np.array([3.0, -0.1])})
    >>> m["w"].tolist()
    [0.5, 1.5]
    """

    _fields: ClassVar[tuple[tuple[str, Any], ...]] = ()
    #: other accepted spellings of a keyword (RMSProp's ``centered``, as Optimisers.jl)
    _aliases: ClassVar[dict[str, str]] = {}
    #: True for rules written in Python (a subclass with its own ``apply``)
    _user: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.apply is Rule.apply:
            return  # a built-in rule: its step is in Rust
        cls._user = True
        if cls.init is Rule.init:
            cls.init = _no_state  # type: ignore[method-assign]
        # a fresh compiled core on each use: it calls back into this very object
        cls._core = property(_core.RuleCore.python)  # type: ignore[assignment]
        _USER_RULES[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def init(self, x) -> Any:
        """The initial state for parameter ``x`` (:func:`fx.optimise.init <init>`).

        >>> import flux_rs as fx, numpy as np
        >>> fx.Momentum().init(np.zeros(2))
        array([0., 0.])
        """
        return init(self, x)

    def apply(self, state, x, dx) -> tuple[Any, Any]:
        """One step, ``(new_state, step)`` (:func:`fx.optimise.apply <apply>`).

        >>> import flux_rs as fx, numpy as np
        >>> fx.Descent(0.5).apply(None, np.zeros(1), np.ones(1))
        (None, array([0.5]))
        """
        return apply(self, state, x, dx)

    def __init__(self, *args, **kwargs):
        names = [k for k, _ in self._fields]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments "
                            f"({', '.join(names)}), got {len(args)}")
        vals = dict(self._fields)
        vals.update(zip(names, args))
        for k, v in kwargs.items():
            k = self._aliases.get(k, k)
            if k not in vals:
                raise TypeError(f"{type(self).__name__} has no field {k!r}; its fields are {', '.join(names)}")
            if k in names[:len(args)]:
                raise TypeError(f"{type(self).__name__} got {k!r} both positionally and as a keyword")
            vals[k] = v
        self._init_fields(vals)

    def _init_fields(self, vals: dict):
        if self._user:
            self.__dict__.update(vals)
            return
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
        if self._user:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {k: getattr(self, k) for k, _ in self._fields}

    def _replace(self, **kw) -> "Rule":
        """A copy with some fields changed (what ``adjust`` uses)."""
        if self._user:
            new = object.__new__(type(self))
            new.__dict__.update(vars(self))
            new.__dict__.update(kw)
            return new
        new = object.__new__(type(self))
        vals = self._values()
        vals.update(kw)
        new._init_fields(vals)
        return new

    def __setattr__(self, k, v):
        if self._user:  # a Python rule's __init__ sets its fields
            object.__setattr__(self, k, v)
            return
        raise AttributeError(f"{type(self).__name__} is immutable; use fx.adjust_(state, {k}=...) to change a rule")

    def __eq__(self, other):
        return type(self) is type(other) and self._values() == other._values()

    def __hash__(self):
        return hash((type(self).__name__, tuple(self._values().items())))

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self._values().items()) + ")"

    def __reduce__(self):
        if self._user:
            return (_rebuild_rule, (type(self), dict(vars(self))))
        return (_rebuild_rule, (type(self), self._values()))


#: Rules written in Python, by ``module.qualname``: how ``fx.load`` finds their class.
_USER_RULES: dict[str, type] = {}


def _no_state(self, x) -> None:
    """A Python rule without ``init`` keeps no state."""
    return None


def _rebuild_rule(cls, vals):
    r = object.__new__(cls)
    r._init_fields(vals)
    return r


#: Every rule's default hyperparameters, read from Rust (``flux_core::optim::defaults``,
#: where they are written once); each constructor's signature below is built from them.
_RUST_DEFAULTS: dict[str, dict[str, Any]] = _core.rule_defaults()


def _defaults(name: str) -> dict[str, Any]:
    """``name``'s defaults from Rust, with Python's spelling of the field names."""
    return {_PY_NAME.get(k, k): v for k, v in _RUST_DEFAULTS[name].items()}


class Descent(Rule):
    """Plain gradient descent (Optimisers.jl's ``Descent``).

    Step: ``dx′ = η·g``; the parameter becomes ``x − dx′``. State: none.

    Fields:
        eta: the learning rate η (not checked: a negative η is accepted, as in Julia).

    >>> import flux_rs as fx, numpy as np
    >>> st, dx = fx.optimise.apply(fx.Descent(0.1), None, np.array([1.0]), np.array([2.0]))
    >>> dx.tolist()
    [0.2]
    """
    _d = _defaults("Descent")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"]) -> None:
        self._init_fields({"eta": eta})

    def __repr__(self) -> str:
        return f"Descent({self.eta!r})"


class Momentum(Rule):
    """Heavy-ball momentum, with the learning rate inside the velocity (PyTorch's
    ``SGD(momentum=ρ, dampening=0)``).

    Step: ``v ← ρ·v + η·g``; ``dx′ = v``. State: ``v`` (zeros like x).

    Fields:
        eta: the learning rate η.
        rho: the momentum ρ.

    >>> import flux_rs as fx, numpy as np
    >>> v, dx = fx.optimise.apply(fx.Momentum(0.1), np.array([1.0]), np.zeros(1), np.array([2.0]))
    >>> v.tolist(), dx.tolist()
    ([1.1], [1.1])
    """
    _d = _defaults("Momentum")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], rho: float = _d["rho"]) -> None:
        self._init_fields({"eta": eta, "rho": rho})


class Nesterov(Rule):
    """Nesterov accelerated momentum.

    Step (with the old ``v``): ``dx′ = −ρ²·v + (1 + ρ)·η·g``; then ``v ← ρ·v − η·g``
    (``v`` holds the negative of a descent direction). State: ``v`` (zeros like x).

    Fields:
        eta: the learning rate η.
        rho: the momentum ρ.

    >>> import flux_rs as fx, numpy as np
    >>> v, dx = fx.optimise.apply(fx.Nesterov(), np.zeros(2), np.zeros(2), np.array([16.0, 88.0]))
    >>> v.round(6).tolist(), dx.round(6).tolist()
    ([-0.016, -0.088], [0.0304, 0.1672])
    """
    _d = _defaults("Nesterov")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], rho: float = _d["rho"]) -> None:
        self._init_fields({"eta": eta, "rho": rho})


class Rprop(Rule):
    """Resilient propagation: a per-entry step size that grows while the gradient keeps
    its sign and shrinks when it flips.

    Step, with ``p = g_prev·g``: ``step ← min(step·ℓ₂, Γ₂)`` if p > 0,
    ``max(step·ℓ₁, Γ₁)`` if p < 0; ``g_prev ← 0`` where p < 0, else ``g``;
    ``dx′ = step·sign(g_prev)``. State: ``(g_prev, step)``, zeros and η.

    Fields:
        eta: the initial step size η.
        ell: ``(decrease, increase)`` factors ℓ.
        gamma: ``(min step, max step)`` bounds Γ.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.Rprop(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(2)), np.zeros(2), np.array([3.0, -0.5]))
    >>> dx.tolist()
    [0.1, -0.1]
    """
    _d = _defaults("Rprop")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], ell: tuple[float, float] = _d["ell"],
                 gamma: tuple[float, float] = _d["gamma"]) -> None:
        self._init_fields({"eta": eta, "ell": ell, "gamma": gamma})


class RMSProp(Rule):
    """RMSProp, optionally centred.

    Step: ``s ← ρ·s + (1 − ρ)·g²``; centred also ``c ← ρ·c + (1 − ρ)·g``;
    ``dx′ = η·g / (√(s − c²) + ϵ)`` (``c = 0`` when not centred; ϵ outside the root).
    State: ``(s, c)``, with ``c`` None when not centred.

    Fields:
        eta: the learning rate η.
        rho: the decay ρ of the running mean of g².
        epsilon: ϵ, for numerical stability.
        centred: subtract the square of the running mean of g (``centered=`` is
            accepted too, as in Optimisers.jl). ``fx.adjust`` cannot change it.

    >>> import flux_rs as fx
    >>> fx.RMSProp(centred=True).centred, fx.RMSProp(centered=True).centred
    (True, True)
    >>> fx.RMSProp(0.01)
    RMSProp(eta=0.01, rho=0.9, epsilon=1e-08, centred=False)
    """
    _d = _defaults("RMSProp")
    _fields = tuple(_d.items())
    _aliases = {"centered": "centred"}

    def __init__(self, eta: float = _d["eta"], rho: float = _d["rho"], epsilon: float = _d["epsilon"],
                 centred: bool = _d["centred"], *, centered: bool | None = None) -> None:
        if centered is not None:  # either spelling; the flag is ``centred or centered`` as in Julia
            centred = _norm_value("centered", False, centered) or centred
        self._init_fields({"eta": eta, "rho": rho, "epsilon": epsilon, "centred": centred})


class Adam(Rule):
    """Adam: bias-corrected first and second moment estimates.

    Step t: ``m ← β₁·m + (1 − β₁)·g``; ``v ← β₂·v + (1 − β₂)·g²``;
    ``dx′ = η·(m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ϵ)`` (ϵ after the root, as PyTorch);
    ``βt ← βt·β``. State: ``(m, v, βt)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of the first and second moments.
        epsilon: ϵ, for numerical stability.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.Adam(0.1)
    >>> o
    Adam(eta=0.1, beta=(0.9, 0.999), epsilon=1e-08)
    >>> (m, v, bt), dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(2)), np.zeros(2), np.ones(2))
    >>> m.round(6).tolist(), dx.round(6).tolist()
    ([0.1, 0.1], [0.1, 0.1])
    """
    _d = _defaults("Adam")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class RAdam(Rule):
    """Rectified Adam: Adam whose adaptive step is scaled by ``r`` once the variance of
    its estimate is tractable (``ρt > 4``), and plain bias-corrected momentum before.

    Step t: m, v as Adam; ``ρ∞ = 2/(1 − β₂) − 1``, ``ρt = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ)``;
    if ``ρt > 4``: ``r = √((ρt−4)(ρt−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρt))`` and
    ``dx′ = η·r·(m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ϵ)``, else ``dx′ = η·m/(1 − β₁ᵗ)``.
    State: ``(m, v, βt, t)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of the moments.
        epsilon: ϵ, for numerical stability.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.RAdam(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([2.0]))
    >>> dx.round(6).tolist(), st[3]
    ([0.2], 2)
    """
    _d = _defaults("RAdam")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class AdaMax(Rule):
    """AdaMax: Adam with the infinity norm in place of the second moment.

    Step t: ``m ← β₁·m + (1 − β₁)·g``; ``u ← max(β₂·u, |g|)``;
    ``dx′ = (η/(1 − β₁ᵗ))·m/(u + ϵ)``; ``βt ← βt·β``. State: ``(m, u, βt)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of m and u.
        epsilon: ϵ, for numerical stability.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.AdaMax(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([-3.0]))
    >>> dx.round(6).tolist()
    [-0.1]
    """
    _d = _defaults("AdaMax")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class OAdam(Rule):
    """Optimistic Adam: twice this step's Adam term minus the last one.

    Step t: m, v as Adam; ``term ← η·(m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ϵ)``;
    ``dx′ = 2·term − term_old``; ``βt ← βt·β``. State: ``(m, v, βt, term)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of the moments (default (0.5, 0.9)).
        epsilon: ϵ, for numerical stability.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.OAdam(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([1.0]))
    >>> dx.round(6).tolist()
    [0.2]
    """
    _d = _defaults("OAdam")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class AdaGrad(Rule):
    """AdaGrad: each entry's step scaled by the root of its summed squared gradients.

    Step: ``acc ← acc + g²``; ``dx′ = η·g / (√acc + ϵ)``. State: ``acc``, filled with ϵ.

    Fields:
        eta: the learning rate η.
        epsilon: ϵ, the initial accumulator and the stabiliser.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.AdaGrad(0.5)
    >>> acc, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([4.0]))
    >>> dx.round(6).tolist()
    [0.5]
    """
    _d = _defaults("AdaGrad")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "epsilon": epsilon})


class AdaDelta(Rule):
    """AdaDelta: no learning rate; the step is scaled by the ratio of the running RMS of
    past steps to that of the gradients (``fx.adjust_(state, η)`` leaves it alone).

    Step: ``acc ← ρ·acc + (1 − ρ)·g²``; ``dx′ = g·√(Δacc + ϵ)/√(acc + ϵ)`` (the old Δacc);
    ``Δacc ← ρ·Δacc + (1 − ρ)·dx′²``. State: ``(acc, Δacc)``, zeros.

    Fields:
        rho: the decay ρ of both running means.
        epsilon: ϵ, inside both roots.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.AdaDelta()
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([1.0]))
    >>> float(dx[0]) < 1e-3
    True
    """
    _d = _defaults("AdaDelta")
    _fields = tuple(_d.items())

    def __init__(self, rho: float = _d["rho"], epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"rho": rho, "epsilon": epsilon})


class AMSGrad(Rule):
    """AMSGrad: Adam without bias correction whose second moment never decreases.

    Step: ``m ← β₁·m + (1 − β₁)·g``; ``v ← β₂·v + (1 − β₂)·g²``; ``v̂ ← max(v̂, v)``;
    ``dx′ = η·m/(√v̂ + ϵ)``. State: ``(m, v, v̂)``, each filled with ϵ.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of the moments.
        epsilon: ϵ, the initial state and the stabiliser.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.AMSGrad(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([1.0]))
    >>> dx.round(4).tolist()
    [0.3162]
    """
    _d = _defaults("AMSGrad")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class NAdam(Rule):
    """Nesterov-accelerated Adam (Optimisers.jl's form, with its extra β₂ on v).

    Step t: m, v as Adam;
    ``dx′ = η·(β₁·m/(1 − β₁·β₁ᵗ) + (1 − β₁)·g/(1 − β₁ᵗ)) / (√(β₂·v/(1 − β₂ᵗ)) + ϵ)``;
    ``βt ← βt·β``. State: ``(m, v, βt)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of the moments.
        epsilon: ϵ, for numerical stability.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.NAdam(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([1.0]))
    >>> dx.round(4).tolist()
    [0.1474]
    """
    _d = _defaults("NAdam")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class AdamW(Rule):
    """Adam with weight decay, coupled to η by default (PyTorch's ``AdamW``).

    Step t: with Adam's direction ``a = (m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ϵ)``,
    ``dx′ = η·(a + λ·x)`` when ``couple``, else ``dx′ = η·a + λ·x``. State: ``(m, v, βt)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of the moments.
        lambda_: the weight decay λ (Optimisers.jl's ``lambda``).
        epsilon: ϵ, for numerical stability.
        couple: scale the decay by η (True, PyTorch) or not (the paper's form).

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.AdamW(0.1, lambda_=0.5)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.ones(1)), np.ones(1), np.ones(1))
    >>> dx.round(6).tolist()
    [0.15]
    """
    _d = _defaults("AdamW")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 lambda_: float = _d["lambda_"], epsilon: float = _d["epsilon"], couple: bool = _d["couple"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "lambda_": lambda_, "epsilon": epsilon, "couple": couple})


class AdaBelief(Rule):
    """AdaBelief: Adam whose second moment tracks the gradient's deviation from m.

    Step t: ``m ← β₁·m + (1 − β₁)·g``; ``s ← β₂·s + (1 − β₂)·(g − m)² + ϵ``;
    ``dx′ = η·(m/(1 − β₁ᵗ)) / (√(s/(1 − β₂ᵗ)) + ϵ)``; ``βt ← βt·β``. State: ``(m, s, βt)``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``, the decays of m and s.
        epsilon: ϵ, added to s every step and after the root (default 1e-16).

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.AdaBelief(0.1)
    >>> st, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(1)), np.zeros(1), np.array([1.0]))
    >>> dx.round(4).tolist()
    [0.1111]
    """
    _d = _defaults("AdaBelief")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"],
                 epsilon: float = _d["epsilon"]) -> None:
        self._init_fields({"eta": eta, "beta": beta, "epsilon": epsilon})


class Lion(Rule):
    """Lion, exactly as Optimisers.jl implements it (the momentum's weights are swapped
    relative to the paper, so with the defaults the step is close to ``η·sign(g)``).

    Step: ``m ← β₂·g + (1 − β₂)·m``; ``dx′ = η·sign((β₂ − β₁)·g + β₁·m)``. State: ``m``.

    Fields:
        eta: the learning rate η.
        beta: ``(β₁, β₂)``.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.Lion(0.1)
    >>> m, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(2)), np.zeros(2), np.array([3.0, -0.01]))
    >>> dx.tolist()
    [0.1, -0.1]
    """
    _d = _defaults("Lion")
    _fields = tuple(_d.items())

    def __init__(self, eta: float = _d["eta"], beta: tuple[float, float] = _d["beta"]) -> None:
        self._init_fields({"eta": eta, "beta": beta})


class WeightDecay(Rule):
    """L2 penalty added to the gradient, as if ``λ/2·‖x‖²`` were added to the loss; put it
    before the main rule in an ``OptimiserChain``.

    Step: ``dx′ = g + λ·x``. State: none.

    Fields:
        lambda_: the decay λ (Optimisers.jl's ``lambda``; ``fx.adjust`` also accepts the
            old name ``gamma``, with a DeprecationWarning).

    >>> import flux_rs as fx, numpy as np
    >>> _, dx = fx.optimise.apply(fx.WeightDecay(0.1), None, np.array([2.0]), np.array([1.0]))
    >>> dx.tolist()
    [1.2]
    """
    _d = _defaults("WeightDecay")
    _fields = tuple(_d.items())

    def __init__(self, lambda_: float = _d["lambda_"]) -> None:
        self._init_fields({"lambda_": lambda_})


class SignDecay(Rule):
    """L1 penalty added to the gradient, as if ``λ·‖x‖₁`` were added to the loss.

    Step: ``dx′ = g + λ·sign(x)`` (sign(0) = 0). State: none.

    Fields:
        lambda_: the decay λ (Optimisers.jl's ``lambda``).

    >>> import flux_rs as fx, numpy as np
    >>> _, dx = fx.optimise.apply(fx.SignDecay(0.5), None, np.array([-2.0, 0.0]), np.array([1.0, 1.0]))
    >>> dx.tolist()
    [0.5, 1.0]
    """
    _d = _defaults("SignDecay")
    _fields = tuple(_d.items())

    def __init__(self, lambda_: float = _d["lambda_"]) -> None:
        self._init_fields({"lambda_": lambda_})


class ClipGrad(Rule):
    """Clip each gradient entry to ``[−δ, δ]``.

    Step: ``dx′ = clamp(g, −δ, δ)``. State: none.

    Fields:
        delta: the bound δ (stored as a float: ``ClipGrad(2).delta == 2.0``).

    >>> import flux_rs as fx, numpy as np
    >>> _, dx = fx.optimise.apply(fx.ClipGrad(2), None, np.zeros(3), np.array([-5.0, 1.0, 3.0]))
    >>> dx.tolist()
    [-2.0, 1.0, 2.0]
    """
    _d = _defaults("ClipGrad")
    _fields = tuple(_d.items())

    def __init__(self, delta: float = _d["delta"]) -> None:
        self._init_fields({"delta": delta})


class ClipNorm(Rule):
    """Rescale each gradient array (not the whole model: see :func:`clip_norm_`) so that
    its p-norm is at most ω.

    Step: ``n = ‖g‖_p``; ``dx′ = g·min(ω/n, 1)``; a non-finite ``n`` raises ValueError
    when ``throw``. State: none.

    Fields:
        omega: the largest norm ω.
        p: the order of the norm (``float("inf")`` for the max-norm).
        throw: raise on a non-finite norm.

    >>> import flux_rs as fx, numpy as np
    >>> _, dx = fx.optimise.apply(fx.ClipNorm(1.0), None, np.zeros(2), np.array([3.0, 4.0]))
    >>> dx.round(6).tolist()
    [0.6, 0.8]
    """
    _d = _defaults("ClipNorm")
    _fields = tuple(_d.items())

    def __init__(self, omega: float = _d["omega"], p: float = _d["p"], throw: bool = _d["throw"]) -> None:
        self._init_fields({"omega": omega, "p": p, "throw": throw})


class OptimiserChain(Rule):
    """Apply several rules in order, each to the step the previous one made:
    ``OptimiserChain(ClipGrad(1.0), Descent(0.1))`` clips, then scales. A member that
    makes no step (AccumGrad before its n-th gradient) stops the chain for that call.
    ``OptimiserChain()`` is the identity (a step of the plain gradient).

    Step: ``g₀ = g``; ``gₖ = apply(optsₖ, stateₖ, x, gₖ₋₁)``; ``dx′ = g_last``.
    State: a tuple of each member's state, in order.

    Fields:
        opts: the member rules, a tuple (given positionally, or as ``opts=[...]``).

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.OptimiserChain(fx.ClipGrad(1.0), fx.Descent(0.1))
    >>> o
    OptimiserChain(ClipGrad(delta=1.0), Descent(0.1))
    >>> _, dx = fx.optimise.apply(o, fx.optimise.init(o, np.zeros(3)), np.zeros(3), np.array([0.3, 1.0, 7.0]))
    >>> dx.round(6).tolist()
    [0.03, 0.1, 0.1]
    """
    _fields = (("opts", ()),)

    def __init__(self, *opts: Rule, **kwargs: Sequence[Rule]) -> None:
        # ``opts=[...]`` (Optimisers.jl's field name) is the one keyword accepted
        if "opts" in kwargs:
            if opts:
                raise TypeError("OptimiserChain takes its rules positionally or as opts=, not both")
            opts = tuple(kwargs.pop("opts"))
        if kwargs:
            raise TypeError(f"OptimiserChain has no field {next(iter(kwargs))!r}; its only field is opts")
        self._init_fields({"opts": opts})

    def _init_fields(self, vals: dict):
        opts = tuple(vals["opts"])
        for r in opts:
            if not isinstance(r, Rule):
                raise TypeError(f"OptimiserChain members must be rules such as fx.Adam(), got {type(r).__name__}")
        object.__setattr__(self, "opts", opts)
        object.__setattr__(self, "_core", _core.RuleCore("OptimiserChain", {"opts": list(opts)}))

    def __repr__(self):
        return "OptimiserChain(" + ", ".join(repr(r) for r in self.opts) + ")"


class AccumGrad(Rule):
    """Accumulate ``n`` gradients and pass on their mean every ``n``-th call; the calls
    in between make no step (and the rules after it in a chain do not run). Use it
    first in a chain: ``OptimiserChain(AccumGrad(4), Adam())``.

    Step: ``acc ← g/n`` on the first call of a cycle, else ``acc ← acc + g/n``; on the
    n-th call ``dx′ = acc`` (the mean), otherwise no step. State: ``(acc, counter)``.

    Fields:
        n: how many gradients to accumulate, an int ≥ 1 (required).

    >>> import flux_rs as fx, numpy as np
    >>> o, x = fx.AccumGrad(2), np.zeros(1)
    >>> s = fx.optimise.init(o, x)
    >>> s, dx = fx.optimise.apply(o, s, x, np.array([1.0]))
    >>> dx is None
    True
    >>> s, dx = fx.optimise.apply(o, s, x, np.array([3.0]))
    >>> dx.tolist()
    [2.0]
    """
    _fields = (("n", 1),)  # no default (n is required); the 1 says that n is an int

    def __init__(self, n: int) -> None:
        self._init_fields({"n": n})


def _dtype_name(d) -> str | None:
    """'float32' / 'float64' for anything naming a float dtype, else None."""
    if isinstance(d, Rule):
        return None
    if isinstance(d, str):
        name = {"f32": "float32", "f64": "float64"}.get(d, d)
    else:
        name = getattr(d, "name", None)
        if not isinstance(name, str):
            try:
                name = np.dtype(d).name
            except TypeError:
                return None
    return name if name in ("float32", "float64") else None


class MixedPrecision(Rule):
    """Keep a higher-precision master copy of each parameter (``master``, float64 by
    default), step it with ``rule`` in that precision, and give the parameter the
    master copy rounded to its own dtype, so small steps are not lost to float32
    rounding. Optimisers.jl's ``MixedPrecision(T, rule)`` is spelled
    ``MixedPrecision(rule, master="float64")``; ``MixedPrecision("float64", rule)``
    (dtype first, as in Julia) is accepted too. It must wrap the whole rule, not sit
    inside an OptimiserChain.

    Step: ``(inner, d) = apply(rule, inner, xT, g)``; ``xT ← xT − d``; the parameter
    becomes ``xT`` rounded to its dtype. State: ``(xT, inner)``.

    On the GPU (no float64 there) a ``"float32"`` master moves the pair down a step:
    the master copy and the inner state live on the GPU and the parameter becomes the
    master rounded to float16 (stored as float32 values; needs the adapter's
    ``shader-f16``, else ``fx.setup`` raises an error saying so). A ``"float64"``
    master stays on the host, the parameter float32.

    Fields:
        rule: the wrapped rule.
        master: the dtype of the master copy, ``"float32"`` or ``"float64"``.

    >>> import flux_rs as fx, numpy as np
    >>> o = fx.MixedPrecision(fx.Descent(1e-9))
    >>> o
    MixedPrecision('float64', Descent(1e-09))
    >>> x = np.ones(1, np.float32)
    >>> s = fx.optimise.init(o, x)
    >>> s[0].dtype
    dtype('float64')
    """
    _d = _defaults("MixedPrecision")
    _fields = (("rule", None),) + tuple(_d.items())

    def __init__(self, rule: Rule | DTypeLike, master: DTypeLike | Rule = _d["master"]) -> None:
        if isinstance(master, Rule) and not isinstance(rule, Rule):  # Julia's order: MixedPrecision(T, rule)
            rule, master = master, rule
        self._init_fields({"rule": rule, "master": master})

    def _init_fields(self, vals: dict):
        rule, master = vals["rule"], vals.get("master", "float64")
        if not isinstance(rule, Rule):
            raise TypeError(f"MixedPrecision wraps a rule such as fx.Adam(), got {type(rule).__name__}")
        name = _dtype_name(master)
        if name is None:
            raise TypeError(f"MixedPrecision's master must be 'float32' or 'float64', got {master!r}")
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "master", name)
        object.__setattr__(self, "_core", _core.RuleCore("MixedPrecision", {"rule": rule, "master": name}))

    def __repr__(self):
        return f"MixedPrecision({self.master!r}, {self.rule!r})"


# ---- the state tree ------------------------------------------------------------------

def setup(rule: Rule, model) -> Any:
    """The optimiser state tree for ``model``: an ``fx.Leaf`` for every trainable
    Tensor, None elsewhere, mirroring the model's structure. A Tensor reached twice
    gets one Leaf.

    >>> import flux_rs as fx
    >>> st = fx.setup(fx.Momentum(0.1), fx.Dense(2, 1))
    >>> st.weight
    Leaf(Momentum(eta=0.1, rho=0.9), Float32[0.0, 0.0] (1, 2))
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
    if type(tree) is Node and type(grads) is Node:  # the common case: nothing to check here
        _core.update_tree(tree, model, grads)
        return tree, model
    if isinstance(tree, Rule) and hasattr(model, "_implicit_update"):
        return model._implicit_update(tree, grads)  # the implicit style: update_(opt, params, grads)
    if isinstance(tree, Rule):
        raise TypeError("update_ needs the optimiser state, not a rule: first "
                        f"`opt_state = fx.setup({tree!r}, model)`, then `fx.update_(opt_state, model, grads[0])`")
    if isinstance(grads, tuple) and _looks_like_whole_gradient(model, grads):
        warnings.warn("update_ wants the gradient of the model alone, not the whole tuple from fx.gradient; "
                      "you probably want grads[0]", stacklevel=2)
        grads = grads[0]
    # the walk over state, model and gradient and the step, in one call into Rust
    # (src/tree.rs: tied parameters summed, None gradients skipped, frozen leaves kept)
    _core.update_tree(tree, model, grads)
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


def _has_python_rule(rule) -> bool:
    """Is ``rule``, or a rule inside it, written in Python?"""
    if getattr(rule, "_user", False):
        return True
    inner = rule.opts if isinstance(rule, OptimiserChain) else (rule.rule,) if isinstance(rule, MixedPrecision) else ()
    return any(_has_python_rule(r) for r in inner)


def apply(rule: Rule, state, x, dx):
    """One step of the pure interface: ``(new_state, step)``, where the new parameter is
    ``x - step``. Nothing passed in is modified. ``step`` is None when the rule makes
    no step this time (AccumGrad before its n-th gradient).

    >>> import flux_rs as fx, numpy as np
    >>> s, step = fx.optimise.apply(fx.Momentum(0.1), np.zeros(2), np.zeros(2), np.array([25.0, 33.0]))
    >>> s.tolist()
    [2.5, 3.3000000000000003]
    """
    s, d = _core.rule_apply(rule, state, x, dx, not _has_python_rule(rule))
    return _to_numpy_tree(s), (None if d is None else d.numpy())


# ---- adjust, freeze, global-norm clipping ---------------------------------------------

_MODEL_VALUES = (Tensor, np.ndarray, np.generic, int, float, complex)


def _leaves(tree, fname: str) -> list:
    """Every distinct Leaf of a state (sub)tree. Model values (Tensors, arrays, numbers)
    are an error: these functions act on the state from ``fx.setup``, not the model."""
    out: dict[int, Leaf] = {}

    def go(t):
        if t is None:
            return
        if isinstance(t, Leaf):
            out.setdefault(id(t), t)
            return
        if isinstance(t, _MODEL_VALUES):
            raise TypeError(f"{fname} must not be applied to a model ({type(t).__name__}), "
                            "only to the state tree from fx.setup")
        ch = children(t)
        if ch is not None:
            for _, v in ch:
                go(v)

    go(tree)
    return list(out.values())


def _accepts(rule: Rule) -> set:
    """The keyword names ``adjust`` can act on for this rule."""
    if isinstance(rule, OptimiserChain):
        return set().union(*(_accepts(r) for r in rule.opts))
    if isinstance(rule, MixedPrecision):
        return _accepts(rule.rule)
    names = set(rule._values())
    if isinstance(rule, WeightDecay):
        names.add("gamma")  # the old name of lambda, as Optimisers.jl still accepts
    return names


def _adjust_rule(rule: Rule, eta, kw: dict) -> Rule:
    if isinstance(rule, OptimiserChain):
        return rule._replace(opts=tuple(_adjust_rule(r, eta, kw) for r in rule.opts))
    if isinstance(rule, MixedPrecision):
        return rule._replace(rule=_adjust_rule(rule.rule, eta, kw))
    names = set(rule._values())
    ch = {}
    if eta is not None and "eta" in names:
        ch["eta"] = eta
    for k, v in kw.items():
        if k in ("centred", "centered") and isinstance(rule, RMSProp):
            raise ValueError("adjust cannot change RMSProp's centred: the two variants keep different "
                             "state; make a new state with fx.setup(fx.RMSProp(centred=...), model)")
        if k == "gamma" and isinstance(rule, WeightDecay):
            warnings.warn("WeightDecay's field is now lambda_, not gamma", DeprecationWarning, stacklevel=4)
            ch["lambda_"] = v
        elif k in names:
            ch[k] = v
    return rule._replace(**ch) if ch else rule


def _adjust_args(eta, kw: dict, rules: list, fname: str) -> dict:
    kw = {("lambda_" if k == "lambda" else k): v for k, v in kw.items()}
    if "eta" in kw:
        if eta is not None:
            raise TypeError(f"{fname} got eta both positionally and as a keyword")
    if eta is None and not kw:
        raise TypeError(f"{fname} must be given something to act on: a learning rate, "
                        "e.g. fx.adjust_(opt_state, 0.01), or keywords, e.g. fx.adjust_(opt_state, beta=(0.8, 0.99))")
    if eta is not None and (isinstance(eta, bool) or not isinstance(eta, (int, float, np.integer, np.floating))):
        raise TypeError(f"the learning rate must be a real number, got {eta!r}")
    if kw:
        valid = set().union(*(_accepts(r) for r in rules)) if rules else set()
        unknown = [k for k in kw if k not in valid]
        if unknown:
            where = ("no rule here has " if rules else "this state tree holds no fx.Leaf, so nothing has ")
            raise TypeError(f"{fname}: {where}the field{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}; the fields here are "
                            f"{', '.join(sorted(valid)) or 'none'}")
    return kw


def adjust_(tree, eta=None, **kw) -> None:
    """Change hyperparameters in place, in every rule of a state (sub)tree, keeping the
    stored state (momenta, step counts). A number sets ``eta`` wherever a rule has it
    (inside chains too; rules without it are left alone); keywords set those fields on
    every rule that has them. A keyword that no rule in the subtree has is a TypeError
    (Optimisers.jl ignores it silently). Returns None.

    >>> import flux_rs as fx, numpy as np
    >>> m = {"a": fx.tensor(np.zeros(2)), "b": fx.tensor(np.zeros(2))}
    >>> st = fx.setup(fx.OptimiserChain(fx.ClipGrad(1.0), fx.Adam()), m)
    >>> fx.adjust_(st, 0.1)
    >>> fx.adjust_(st["b"], delta=2.5)
    >>> st["a"].rule, st["b"].rule
    (OptimiserChain(ClipGrad(delta=1.0), Adam(eta=0.1, beta=(0.9, 0.999), epsilon=1e-08)), OptimiserChain(ClipGrad(delta=2.5), Adam(eta=0.1, beta=(0.9, 0.999), epsilon=1e-08)))
    """
    if isinstance(tree, Rule):
        raise TypeError(f"adjust_ acts on the state tree from fx.setup; a rule is immutable, so use "
                        f"fx.adjust({tree!r}, ...) to get a changed copy")
    leaves = _leaves(tree, "adjust_")
    kw = _adjust_args(eta, kw, [l.rule for l in leaves], "adjust_")
    memo: dict[int, Rule] = {}  # leaves sharing one rule object share the new one
    for l in leaves:
        r = l.rule
        if id(r) not in memo:
            memo[id(r)] = _adjust_rule(r, eta, kw)
        l.rule = memo[id(r)]


def adjust(tree, eta=None, **kw):
    """Like :func:`adjust_` but returns a new state tree (its state arrays copied) and
    leaves ``tree`` alone; given a rule, returns the changed rule.

    >>> import flux_rs as fx
    >>> fx.adjust(fx.Adam(), 0.1, beta=(0.8, 0.9))
    Adam(eta=0.1, beta=(0.8, 0.9), epsilon=1e-08)
    """
    if isinstance(tree, Rule):
        kw = _adjust_args(eta, kw, [tree], "adjust")
        return _adjust_rule(tree, eta, kw)
    _leaves(tree, "adjust")  # model values are an error before anything is copied
    new = _copy_state(tree, {})
    adjust_(new, eta, **kw)
    return new


def freeze_(tree) -> None:
    """Mark every Leaf of a state (sub)tree frozen: ``update_`` then leaves those
    parameters and their state alone until :func:`thaw_`.

    >>> import flux_rs as fx, numpy as np
    >>> m = {"a": fx.tensor(np.ones(1)), "b": fx.tensor(np.ones(1))}
    >>> st = fx.setup(fx.Descent(0.5), m)
    >>> fx.freeze_(st["a"])
    >>> _ = fx.update_(st, m, {"a": np.ones(1), "b": np.ones(1)})
    >>> m["a"].tolist(), m["b"].tolist()
    ([1.0], [0.5])
    """
    for l in _leaves(tree, "freeze_"):
        l.frozen = True


def thaw_(tree) -> None:
    """Undo :func:`freeze_` on every Leaf of a state (sub)tree.

    >>> import flux_rs as fx, numpy as np
    >>> st = fx.setup(fx.Descent(), [fx.tensor(np.ones(1))])
    >>> fx.freeze_(st); fx.thaw_(st)
    >>> st[0].frozen
    False
    """
    for l in _leaves(tree, "thaw_"):
        l.frozen = False


def clip_norm_(grads, omega: float, p: float = 2, *, throw: bool = True) -> float:
    """Clip a whole gradient tree by its global p-norm, in place: when the norm ``n`` of
    all gradient arrays together exceeds ``omega``, every array is scaled by
    ``omega / n`` (PyTorch's ``clip_grad_norm_``; ``fx.ClipNorm`` does this per array).
    Returns ``n``, the norm before clipping. A non-finite norm raises ValueError unless
    ``throw=False``. Gradients may be Tensors or float numpy arrays; None is skipped.

    >>> import flux_rs as fx, numpy as np
    >>> g = {"w": fx.tensor(np.array([3.0, 0.0])), "b": fx.tensor(np.array([4.0]))}
    >>> fx.clip_norm_(g, 1.0)
    5.0
    >>> g["w"].tolist(), g["b"].tolist()
    ([0.6000000000000001, 0.0], [0.8])
    """
    arrays: dict[int, Any] = {}

    def go(g):
        if g is None:
            return
        ch = None if isinstance(g, (Tensor, np.ndarray)) else children(g)
        if ch is None:
            arrays.setdefault(id(g), g)
            return
        for _, v in ch:
            go(v)

    go(grads)
    return _core.clip_global_norm_(list(arrays.values()), float(omega), float(p), bool(throw))
