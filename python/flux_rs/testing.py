"""A toolkit for property tests of optimisation rules, built on hypothesis.

Strategies: :func:`rules` (every built-in rule with valid hyperparameters),
:func:`rule` (one rule by name) and :func:`params_and_grads` (a parameter array and
gradients of the same shape and dtype). Invariant checks, each raising AssertionError
with what went wrong: :func:`check_pure`, :func:`check_state_roundtrip`,
:func:`check_frozen_leaf_static` and :func:`check_descent_direction`. The checks take
any rule, built-in or written in Python (``class MyRule(fx.Rule)``).

>>> import flux_rs.testing as fxt
>>> from hypothesis import given, settings
>>> @settings(max_examples=10, deadline=None)
... @given(fxt.rules(), fxt.params_and_grads(steps=2))
... def test_rules_are_pure(rule, xg):
...     fxt.check_pure(rule, *xg)
>>> test_rules_are_pure()

Needs hypothesis: ``pip install 'flux_rs[testing]'``.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Sequence

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as _err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("flux_rs.testing needs hypothesis: pip install 'flux_rs[testing]' "
                      "(or pip install hypothesis)") from _err

import numpy as np

from . import optimise as _opt
from ._core import Tensor
from .optimise import Rule

__all__ = ["RULE_NAMES", "ELEMENTS", "SHAPES", "rules", "rule", "params_and_grads", "check_pure", "check_state_roundtrip",
           "check_frozen_leaf_static", "check_descent_direction"]

# ---- hyperparameters ------------------------------------------------------------------

# zero, or not so small that a float32 result is subnormal
_unit = st.one_of(st.just(0.0), st.floats(1e-6, 1.0))
_eta = _unit
_rho = st.floats(0.0, 0.99)
_eps = st.floats(1e-8, 1e-3)
# β1 = 0 or ≥ 0.01 (a tiny β1^t underflows differently in float32 and float64)
_beta = st.tuples(st.one_of(st.just(0.0), st.floats(0.01, 0.99)), st.floats(0.5, 0.9999))

_RULES: dict[str, Any] = {
    "Descent": st.builds(_opt.Descent, _eta),
    "Momentum": st.builds(_opt.Momentum, _eta, _rho),
    "Nesterov": st.builds(_opt.Nesterov, _eta, _rho),
    "Rprop": st.builds(_opt.Rprop, st.floats(1e-4, 0.1), st.tuples(st.floats(0.1, 0.9), st.floats(1.0, 2.0)),
                       st.tuples(st.floats(1e-7, 1e-3), st.floats(1.0, 100.0))),
    "RMSProp": st.builds(_opt.RMSProp, _eta, _rho, _eps, centred=st.booleans()),
    "Adam": st.builds(_opt.Adam, _eta, _beta, _eps),
    "RAdam": st.builds(_opt.RAdam, _eta, _beta, _eps),
    "AdaMax": st.builds(_opt.AdaMax, _eta, _beta, _eps),
    "OAdam": st.builds(_opt.OAdam, _eta, _beta, _eps),
    "AdaGrad": st.builds(_opt.AdaGrad, _eta, _eps),
    "AdaDelta": st.builds(_opt.AdaDelta, _rho, _eps),
    "AMSGrad": st.builds(_opt.AMSGrad, _eta, _beta, _eps),
    "NAdam": st.builds(_opt.NAdam, _eta, _beta, _eps),
    "AdamW": st.builds(_opt.AdamW, _eta, _beta, st.floats(0.0, 0.5), _eps, couple=st.booleans()),
    "AdaBelief": st.builds(_opt.AdaBelief, _eta, _beta, st.floats(1e-16, 1e-8)),
    "Lion": st.builds(_opt.Lion, _eta, _beta),
    "WeightDecay": st.builds(_opt.WeightDecay, _unit),
    "SignDecay": st.builds(_opt.SignDecay, _unit),
    "ClipGrad": st.builds(_opt.ClipGrad, st.floats(0.0, 10.0)),
    "ClipNorm": st.builds(_opt.ClipNorm, st.floats(0.0, 10.0), st.sampled_from([1, 2, 3, 0.5, 0, np.inf, -np.inf])),
    "OptimiserChain": st.one_of(
        st.builds(lambda a, b: _opt.OptimiserChain(_opt.WeightDecay(a), _opt.Adam(b)), _unit, _eta),
        st.builds(lambda a, b: _opt.OptimiserChain(_opt.ClipGrad(a), _opt.Momentum(b)), st.floats(0.1, 5.0), _eta),
        st.builds(lambda a: _opt.OptimiserChain(_opt.ClipNorm(a), _opt.OptimiserChain(_opt.SignDecay(), _opt.Nesterov())),
                  st.floats(0.1, 5.0)),
        st.just(_opt.OptimiserChain())),
    "AccumGrad": st.one_of(
        st.builds(_opt.AccumGrad, st.integers(1, 3)),
        st.builds(lambda n, e: _opt.OptimiserChain(_opt.AccumGrad(n), _opt.Descent(e)), st.integers(1, 3), _eta)),
    "MixedPrecision": st.builds(lambda e: _opt.MixedPrecision(_opt.Adam(e)), _eta),
}

#: The name of every built-in rule, in the order of Optimisers.jl's docs.
RULE_NAMES: tuple[str, ...] = tuple(_RULES)


def rule(name: str):
    """A strategy for the built-in rule ``name`` with valid hyperparameters (learning
    rates in [0, 1], decay rates below 1, positive epsilons; chains, AccumGrad and
    MixedPrecision wrap other rules).

    >>> import flux_rs as fx, flux_rs.testing as fxt
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(fxt.rule("Adam"))
    ... def test_adam(r):
    ...     assert isinstance(r, fx.Adam) and 0 <= r.eta <= 1
    >>> test_adam()
    """
    if name not in _RULES:
        raise ValueError(f"no built-in rule named {name!r}; the rules are {', '.join(RULE_NAMES)}")
    return _RULES[name]


def rules(names: Sequence[str] | None = None):
    """A strategy drawing any built-in rule (or one of ``names``) with valid
    hyperparameters; shrinks towards the first name.

    >>> import flux_rs as fx, flux_rs.testing as fxt
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(fxt.rules(["Descent", "Lion"]))
    ... def test_two(r):
    ...     assert isinstance(r, (fx.Descent, fx.Lion))
    >>> test_two()
    """
    names = RULE_NAMES if names is None else tuple(names)
    if not names:
        raise ValueError("rules() needs at least one rule name")
    return st.one_of([rule(n) for n in names])


# ---- arrays ----------------------------------------------------------------------------

# zeros, moderate values and large ones; no subnormals (float32 flushes them
# differently from float64, a property of the dtype, not of a rule)
_small = st.floats(-10.0, 10.0).filter(lambda v: v == 0 or abs(v) > 1e-4)
_large = st.builds(lambda s, v: s * v, st.sampled_from([-1.0, 1.0]), st.floats(1e3, 1e5))
ELEMENTS = st.one_of(st.just(0.0), _small, _small, _large)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def params_and_grads(dtype=None, shapes=SHAPES, elements=ELEMENTS, steps: int | None = None):
    """A strategy for ``(x, g)``: a parameter array and a gradient of the same shape and
    dtype (float32 or float64 unless ``dtype`` is given), or ``(x, [g1, …, gk])`` with
    ``steps=k``. ``shapes`` and ``elements`` are hypothesis strategies (by default up to
    3 dimensions of up to 4, values from zero through ±1e5, no subnormals).

    >>> import flux_rs.testing as fxt
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(fxt.params_and_grads(dtype="float32", steps=2))
    ... def test_arrays(xg):
    ...     x, (g1, g2) = xg
    ...     assert x.shape == g1.shape == g2.shape and x.dtype == g1.dtype == "float32"
    >>> test_arrays()
    """
    dtypes = st.sampled_from([np.float32, np.float64]) if dtype is None else st.just(np.dtype(dtype).type)

    @st.composite
    def draw(draw_):
        dt, shape = draw_(dtypes), draw_(shapes)

        def arr():
            return draw_(hnp.arrays(np.float64, shape, elements=elements)).astype(dt)
        x = arr()
        return (x, arr()) if steps is None else (x, [arr() for _ in range(steps)])

    return draw()


# ---- invariant checks ------------------------------------------------------------------

def _default_problem(x, grads, dtype=np.float64):
    if x is None:
        x = np.array([1.0, -2.0, 0.5, 3.0], dtype)
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if grads is None:
        grads = [np.linspace(-1.0, 2.0, x.size).reshape(x.shape).astype(x.dtype), -0.5 * np.ones_like(x)]
    elif isinstance(grads, np.ndarray) or isinstance(grads, Tensor):
        grads = [grads]
    return x, [np.asarray(g, dtype=x.dtype) for g in grads]


def _flat(s) -> list:
    """A state as a flat list of numpy arrays and numbers (nesting marked)."""
    if isinstance(s, (tuple, list)):
        return ["("] + [v for e in s for v in _flat(e)] + [")"]
    if isinstance(s, Tensor):
        return [np.array(s.numpy(), copy=True)]
    if isinstance(s, np.ndarray):
        return [s.copy()]
    return [s]


def _same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if not (isinstance(u, np.ndarray) and isinstance(v, np.ndarray) and u.dtype == v.dtype
                    and np.array_equal(u, v, equal_nan=True)):
                return False
        elif not (u == v or (isinstance(u, float) and isinstance(v, float) and u != u and v != v)):
            return False
    return True


def _model(x):
    from . import tensor
    return {"w": tensor(np.array(x, copy=True))}


def check_pure(rule: Rule, x=None, grads=None) -> None:
    """The pure interface leaves its inputs alone and is deterministic:
    ``fx.optimise.init``/``apply`` modify neither ``x``, the gradient nor the state
    passed in, and the same inputs give the same outputs; ``fx.update`` leaves the
    state tree and the model untouched and agrees with ``fx.update_``.

    >>> import flux_rs as fx, flux_rs.testing as fxt
    >>> fxt.check_pure(fx.Adam())
    """
    from . import setup, update, update_
    x, grads = _default_problem(x, grads)
    x0 = x.copy()
    s = _opt.init(rule, x)
    for i, g in enumerate(grads):
        g0, s0 = g.copy(), _flat(s)
        s1, d1 = _opt.apply(rule, s, x, g)
        assert np.array_equal(x, x0, equal_nan=True), f"{rule!r}: apply changed x at step {i}"
        assert np.array_equal(g, g0, equal_nan=True), f"{rule!r}: apply changed the gradient at step {i}"
        assert _same(_flat(s), s0), f"{rule!r}: apply changed the state passed in at step {i}"
        s2, d2 = _opt.apply(rule, s, x, g)
        assert _same(_flat(s1), _flat(s2)), f"{rule!r}: two applies to the same inputs gave different states"
        assert _same(_flat(d1), _flat(d2)), f"{rule!r}: two applies to the same inputs gave different steps"
        s = s1
    m = _model(x)
    tree = setup(rule, m)
    update_(tree, m, {"w": grads[0]})  # a state that is not the initial one
    w0, st0 = m["w"].numpy().copy(), _flat(tree["w"].state)
    for g in grads[1:] or grads:
        tree2, m2 = update(tree, m, {"w": g})
        assert np.array_equal(m["w"].numpy(), w0, equal_nan=True), f"{rule!r}: fx.update changed the model"
        assert _same(_flat(tree["w"].state), st0), f"{rule!r}: fx.update changed the state tree"
        update_(tree, m, {"w": g})
        assert np.array_equal(m2["w"].numpy(), m["w"].numpy(), equal_nan=True), \
            f"{rule!r}: fx.update and fx.update_ disagree"
        assert _same(_flat(tree2["w"].state), _flat(tree["w"].state)), \
            f"{rule!r}: fx.update and fx.update_ leave different states"
        w0, st0 = m["w"].numpy().copy(), _flat(tree["w"].state)


def check_state_roundtrip(rule: Rule, x=None, grads=None) -> None:
    """A checkpoint keeps everything: after a step, ``fx.save`` and ``fx.load`` of the
    model and its optimiser state give back an equal rule, the same state (values and
    dtypes) and frozen flag, and training on from the loaded copy matches training on
    from the original bit for bit.

    >>> import flux_rs as fx, flux_rs.testing as fxt
    >>> fxt.check_state_roundtrip(fx.OptimiserChain(fx.ClipGrad(1.0), fx.Adam()))
    """
    from . import load, save, setup, update_
    x, grads = _default_problem(x, grads)
    m = _model(x)
    tree = setup(rule, m)
    update_(tree, m, {"w": grads[0]})
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "check.safetensors")
        save(path, {"model": m, "opt": tree})
        back = load(path)
    m2, tree2 = {"w": back["model"]["w"]}, back["opt"]
    assert tree2["w"].rule == rule, f"the loaded rule {tree2['w'].rule!r} differs from {rule!r}"
    assert tree2["w"].frozen == tree["w"].frozen, f"{rule!r}: the frozen flag changed on loading"
    assert _same(_flat(tree2["w"].state), _flat(tree["w"].state)), \
        f"{rule!r}: the loaded state {tree2['w'].state!r} differs from {tree['w'].state!r}"
    assert np.array_equal(m2["w"].numpy(), m["w"].numpy(), equal_nan=True), f"{rule!r}: the loaded model differs"
    for i, g in enumerate(grads[1:] or grads):
        update_(tree, m, {"w": g})
        update_(tree2, m2, {"w": g})
        assert np.array_equal(m2["w"].numpy(), m["w"].numpy(), equal_nan=True), \
            f"{rule!r}: training on from the loaded checkpoint differs at step {i + 1}"


def check_frozen_leaf_static(rule: Rule, x=None, grads=None) -> None:
    """``fx.freeze_`` holds a parameter and its state exactly still through any number
    of ``update_`` calls, and after ``fx.thaw_`` the next step is the one the unfrozen
    rule would have taken from the same state.

    >>> import flux_rs as fx, flux_rs.testing as fxt
    >>> fxt.check_frozen_leaf_static(fx.Momentum())
    """
    from . import freeze_, setup, thaw_, update, update_
    x, grads = _default_problem(x, grads)
    m = _model(x)
    tree = setup(rule, m)
    update_(tree, m, {"w": grads[0]})
    w0, st0 = m["w"].numpy().copy(), _flat(tree["w"].state)
    freeze_(tree)
    for i, g in enumerate(grads):
        update_(tree, m, {"w": g})
        assert np.array_equal(m["w"].numpy(), w0, equal_nan=True), f"{rule!r}: a frozen parameter moved at step {i}"
        assert _same(_flat(tree["w"].state), st0), f"{rule!r}: a frozen leaf's state changed at step {i}"
    thaw_(tree)
    assert not tree["w"].frozen
    g = grads[-1]
    want_tree, want_m = update(tree, m, {"w": g})
    update_(tree, m, {"w": g})
    assert np.array_equal(m["w"].numpy(), want_m["w"].numpy(), equal_nan=True), \
        f"{rule!r}: the first step after thaw_ is not the rule's step"


def _clipnorm_undefined(rule: Rule, g) -> bool:
    """Does a ClipNorm in ``rule`` (alone or in a chain) scale ``g`` by 0/0?"""
    rules = getattr(rule, "opts", None) or [rule]
    for r in rules:
        if isinstance(r, _opt.OptimiserChain) and _clipnorm_undefined(r, g):
            return True
        if isinstance(r, _opt.ClipNorm) and r.omega == 0:
            p, a = float(r.p), np.abs(g)
            n = a.max() if p == np.inf else a.min() if p == -np.inf else np.count_nonzero(a) if p == 0 else (a ** p).sum()
            if n == 0:
                return True
    return False


def check_descent_direction(rule: Rule, x=None, curvature=None, centre=None) -> None:
    """On the convex quadratic ``f(x) = ½·Σ a·(x − c)²`` (``a = curvature > 0``,
    ``c = centre``), the rule's first step from a fresh state goes downhill: with
    ``x_new = x − dx``, ``⟨dx, ∇f(x)⟩ ≥ 0``. (For a rule that makes no step at first,
    such as ``AccumGrad(n)``, the first step it makes; the gradient stays the same
    while x does not move.) At the minimum, where ``∇f = 0``, there is nothing to
    check. Rules that change the objective (``WeightDecay``,
    ``SignDecay``, ``AdamW`` with ``lambda_ > 0``) are not descent methods for ``f``.

    >>> import flux_rs as fx, flux_rs.testing as fxt
    >>> fxt.check_descent_direction(fx.Adam(0.1))
    """
    x, _ = _default_problem(x, [])
    a = np.linspace(0.5, 2.0, x.size).reshape(x.shape) if curvature is None else np.asarray(curvature, np.float64)
    c = np.zeros(x.shape) if centre is None else np.asarray(centre, np.float64)
    if np.any(a <= 0):
        raise ValueError("curvature must be positive for the quadratic to be convex")
    g = (a * (x.astype(np.float64) - c)).astype(x.dtype)
    s = _opt.init(rule, x)
    for _ in range(64):
        s, dx = _opt.apply(rule, s, x, g)
        if dx is not None:
            break
    else:
        raise AssertionError(f"{rule!r} made no step in 64 calls")
    dx64, g64 = np.asarray(dx, np.float64), g.astype(np.float64)
    if not np.any(g64):
        return  # at the minimum there is no downhill (and ClipNorm(0) makes 0/0 there, as in Julia)
    if _clipnorm_undefined(rule, g64):
        return  # ClipNorm(0, p) where ‖g‖_p = 0 (p = -Inf and a zero entry): 0/0, NaN as in Julia
    assert np.all(np.isfinite(dx64)), f"{rule!r}: the step is not finite: {dx}"
    slope = float(np.vdot(dx64, g64))
    tol = 1e-6 * float(np.linalg.norm(dx64) * np.linalg.norm(g64))
    assert slope >= -tol, f"{rule!r}: the step goes uphill: <dx, grad f> = {slope:g} (dx = {dx}, grad = {g})"
