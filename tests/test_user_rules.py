"""Optimisation rules written in Python (issue 16, item 6): ``class MyRule(fx.Rule)``
with ``init`` and ``apply`` goes through every entry point a built-in rule does, and
gives the built-in's numbers when it computes the same thing."""
import os
import tempfile

import numpy as np
import pytest

import flux_rs as fx
import flux_rs.testing as fxt


class PyMomentum(fx.Rule):
    """Momentum written with Tensor operations: v ← ρ·v + η·g, step v."""

    def __init__(self, eta=0.01, rho=0.9):
        self.eta = eta
        self.rho = rho

    def init(self, x):
        return x * 0.0

    def apply(self, v, x, dx):
        v = self.rho * v + self.eta * dx
        return v, v


class SignDescent(fx.Rule):
    """A stateless rule written with numpy."""

    def __init__(self, eta=0.1):
        self.eta = eta

    def apply(self, state, x, dx):
        return state, self.eta * np.sign(np.asarray(dx))


class CountedDescent(fx.Rule):
    """A state of a number and a tuple: (steps taken, (last |g|_max,))."""

    def __init__(self, eta=0.1):
        self.eta = eta

    def init(self, x):
        return (0, (0.0,))

    def apply(self, state, x, dx):
        n, _ = state
        g = np.asarray(dx)
        return (n + 1, (float(np.abs(g).max()),)), self.eta * g


def steps(rule, x, gs):
    m = {"w": fx.tensor(np.array(x, copy=True))}
    st = fx.setup(rule, m)
    for g in gs:
        fx.update_(st, m, {"w": g})
    return m["w"].numpy(), st


RNG = np.random.default_rng(16)
X = RNG.normal(size=(3, 4))
GS = [RNG.normal(size=(3, 4)) for _ in range(5)]


def test_setup_and_update_match_the_builtin_rule():
    got, st = steps(PyMomentum(0.1, 0.8), X, GS)
    want, stb = steps(fx.Momentum(0.1, 0.8), X, GS)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(st["w"].state.numpy(), stb["w"].state.numpy(), rtol=1e-12)
    assert isinstance(st["w"], fx.Leaf) and st["w"].rule == PyMomentum(0.1, 0.8)


def test_float32_parameters_keep_their_dtype():
    got, st = steps(PyMomentum(0.1), X.astype(np.float32), [g.astype(np.float32) for g in GS])
    want, _ = steps(fx.Momentum(0.1), X.astype(np.float32), [g.astype(np.float32) for g in GS])
    assert got.dtype == np.float32 and st["w"].state.dtype == "float32"
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_numpy_rule_without_init_and_number_states():
    got, st = steps(SignDescent(0.5), X, GS[:2])
    np.testing.assert_array_equal(got, X - 0.5 * np.sign(GS[0]) - 0.5 * np.sign(GS[1]))
    assert st["w"].state is None
    got, st = steps(CountedDescent(0.1), X, GS[:3])
    assert st["w"].state == (3, (float(np.abs(GS[2]).max()),))
    np.testing.assert_allclose(got, X - 0.1 * sum(GS[:3]), rtol=1e-12)


def test_pure_update_leaves_inputs_alone():
    m = {"w": fx.tensor(X.copy())}
    st = fx.setup(PyMomentum(0.1), m)
    fx.update_(st, m, {"w": GS[0]})
    v0 = st["w"].state.numpy().copy()
    st2, m2 = fx.update(st, m, {"w": GS[1]})
    np.testing.assert_array_equal(st["w"].state.numpy(), v0)
    np.testing.assert_array_equal(m["w"].numpy(), X - 0.1 * GS[0])
    np.testing.assert_allclose(st2["w"].state.numpy(), 0.9 * v0 + 0.1 * GS[1], rtol=1e-12)
    np.testing.assert_allclose(m2["w"].numpy(), X - 0.1 * GS[0] - st2["w"].state.numpy(), rtol=1e-12)


def test_pure_interface_init_and_apply():
    r = PyMomentum(0.1)
    s = fx.optimise.init(r, X)
    assert isinstance(s, np.ndarray) and s.shape == X.shape and not s.any()
    s, dx = fx.optimise.apply(r, s, X, GS[0])
    np.testing.assert_allclose(dx, 0.1 * GS[0], rtol=1e-12)
    np.testing.assert_allclose(s, 0.1 * GS[0], rtol=1e-12)
    s2, dx2 = fx.optimise.apply(fx.Momentum(0.1), fx.optimise.init(fx.Momentum(0.1), X), X, GS[0])
    np.testing.assert_allclose(dx, dx2, rtol=1e-12)
    # built-in rules answer the same protocol, so one loop serves both kinds
    np.testing.assert_array_equal(fx.Momentum(0.1).apply(fx.Momentum(0.1).init(X), X, GS[0])[1], dx2)


@pytest.mark.parametrize("user_first", [False, True])
def test_optimiser_chain_mixes_python_and_builtin_rules(user_first):
    if user_first:
        mine, builtin = fx.OptimiserChain(PyMomentum(0.1), fx.ClipGrad(0.05)), fx.OptimiserChain(fx.Momentum(0.1), fx.ClipGrad(0.05))
    else:
        mine, builtin = fx.OptimiserChain(fx.ClipGrad(0.5), PyMomentum(0.1)), fx.OptimiserChain(fx.ClipGrad(0.5), fx.Momentum(0.1))
    got, st = steps(mine, X, GS)
    want, stb = steps(builtin, X, GS)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert repr(mine).startswith("OptimiserChain(") and "PyMomentum(eta=0.1, rho=0.9)" in repr(mine)
    s, sb = st["w"].state, stb["w"].state
    assert len(s) == len(sb) == 2


def test_accumgrad_and_mixedprecision_wrap_python_rules():
    got, _ = steps(fx.OptimiserChain(fx.AccumGrad(2), SignDescent(0.5)), X, GS[:4])
    want = X - 0.5 * np.sign((GS[0] + GS[1]) / 2) - 0.5 * np.sign((GS[2] + GS[3]) / 2)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    x32 = np.ones(3, np.float32)
    got, st = steps(fx.MixedPrecision(PyMomentum(1e-9)), x32, [np.ones(3, np.float32)] * 3)
    assert st["w"].state[0].dtype == "float64"  # the master copy
    np.testing.assert_allclose(st["w"].state[0].numpy(), 1 - (1 + 1.9 + 2.71) * 1e-9, rtol=1e-15)  # momentum steps


def test_adjust_changes_fields_of_python_rules():
    m = {"w": fx.tensor(X.copy()), "b": fx.tensor(X[0].copy())}
    rule = PyMomentum(0.1)
    st = fx.setup(fx.OptimiserChain(fx.ClipGrad(10.0), rule), m)
    fx.update_(st, m, {"w": GS[0], "b": GS[0][0]})
    v = st["w"].state[1].numpy().copy()
    fx.adjust_(st, 0.5)
    fx.adjust_(st["b"], rho=0.5)
    assert st["w"].rule.opts[1] == PyMomentum(0.5, 0.9) and st["b"].rule.opts[1] == PyMomentum(0.5, 0.5)
    assert rule.eta == 0.1 and rule.rho == 0.9  # rules are values: the one given to setup is unchanged
    np.testing.assert_array_equal(st["w"].state[1].numpy(), v)  # adjust keeps the state
    w = m["w"].numpy().copy()
    fx.update_(st, m, {"w": GS[1], "b": GS[1][0]})
    np.testing.assert_allclose(m["w"].numpy(), w - (0.9 * v + 0.5 * GS[1]), rtol=1e-12)
    with pytest.raises(TypeError, match="no rule here has the field 'beta'.*eta.*rho"):
        fx.adjust_(st, beta=(0.1, 0.2))
    assert fx.adjust(PyMomentum(0.1), rho=0.2) == PyMomentum(0.1, 0.2)


def test_freeze_and_thaw():
    m = {"a": fx.tensor(X.copy()), "b": fx.tensor(X.copy())}
    st = fx.setup(PyMomentum(0.1), m)
    fx.freeze_(st["a"])
    fx.update_(st, m, {"a": GS[0], "b": GS[0]})
    np.testing.assert_array_equal(m["a"].numpy(), X)
    assert not st["a"].state.numpy().any()
    np.testing.assert_allclose(m["b"].numpy(), X - 0.1 * GS[0], rtol=1e-12)
    fx.thaw_(st)
    fx.update_(st, m, {"a": GS[0], "b": GS[0]})
    np.testing.assert_allclose(m["a"].numpy(), X - 0.1 * GS[0], rtol=1e-12)


def test_checkpoint_stores_state_and_names_the_rule():
    m = {"w": fx.tensor(X.copy())}
    st = fx.setup(fx.OptimiserChain(PyMomentum(0.1, 0.7), CountedDescent(0.01)), m)
    fx.update_(st, m, {"w": GS[0]})
    fx.freeze_(st)
    p = os.path.join(tempfile.mkdtemp(), "user.safetensors")
    fx.save(p, {"model": m, "opt": st})
    back = fx.load(p)
    leaf = back["opt"]["w"]
    assert leaf.rule == st["w"].rule and type(leaf.rule.opts[0]) is PyMomentum and leaf.frozen
    np.testing.assert_array_equal(leaf.state[0].numpy(), st["w"].state[0].numpy())
    assert leaf.state[1] == (1, (float(np.abs(0.1 * GS[0]).max()),))  # it sees the step before it
    fx.thaw_([leaf, st])
    m2 = {"w": back["model"]["w"]}
    fx.update_(st, m, {"w": GS[1]})
    fx.update_(back["opt"], m2, {"w": GS[1]})
    np.testing.assert_array_equal(m2["w"].numpy(), m["w"].numpy())
    fxt.check_state_roundtrip(PyMomentum(0.1))


def test_loading_a_rule_whose_class_is_not_defined_says_what_to_do(monkeypatch):
    p = os.path.join(tempfile.mkdtemp(), "user.safetensors")
    fx.save(p, fx.setup(SignDescent(), {"w": fx.tensor(X)}))
    key = f"{SignDescent.__module__}.SignDescent"
    monkeypatch.delitem(fx.optimise._USER_RULES, key)
    with pytest.raises(fx.CheckpointError, match=f"{key}, written in Python; define it or import its module"):
        fx.load(p)


def test_errors_in_python_rules_reach_the_caller_unchanged():
    class Boom(fx.Rule):
        def apply(self, state, x, dx):
            raise ZeroDivisionError("boom from apply")

    m = {"w": fx.tensor(X.copy())}
    for rule in (Boom(), fx.OptimiserChain(fx.ClipGrad(1.0), Boom())):
        st = fx.setup(rule, m)
        with pytest.raises(ZeroDivisionError, match="boom from apply"):
            fx.update_(st, m, {"w": GS[0]})
        np.testing.assert_array_equal(m["w"].numpy(), X)
    with pytest.raises(ZeroDivisionError):
        fx.optimise.apply(Boom(), None, X, GS[0])

    class BadShape(fx.Rule):
        def apply(self, state, x, dx):
            return state, np.ones(2)

    with pytest.raises(ValueError, match=r"BadShape.apply returned a step of shape \[2\] for a parameter of shape \[3, 4\]"):
        fx.update_(fx.setup(BadShape(), m), m, {"w": GS[0]})

    class NoPair(fx.Rule):
        def apply(self, state, x, dx):
            return dx

    with pytest.raises(TypeError, match=r"NoPair.apply must return \(state, dx\)"):
        fx.optimise.apply(NoPair(), None, X, GS[0])

    class DictState(fx.Rule):
        def init(self, x):
            return {"m": x}

        def apply(self, state, x, dx):
            return state, dx

    with pytest.raises(TypeError, match="DictState.init must give its state as arrays.*got dict"):
        fx.setup(DictState(), m)


def test_python_rules_are_mutable_values_and_builtins_stay_immutable():
    r = PyMomentum(0.1)
    assert repr(r) == "PyMomentum(eta=0.1, rho=0.9)" and r == PyMomentum(0.1) and r != PyMomentum(0.2)
    import copy
    import pickle
    assert pickle.loads(pickle.dumps(r)) == r and copy.deepcopy(r) == r
    with pytest.raises(AttributeError, match="immutable"):
        fx.Adam().eta = 0.1  # type: ignore[misc]


def test_tied_parameters_and_train_loop():
    w = fx.tensor(np.array([1.0, 2.0]))
    m = {"a": w, "b": w}
    st = fx.setup(SignDescent(0.5), m)
    assert st["a"] is st["b"]
    fx.update_(st, m, {"a": np.array([1.0, -3.0]), "b": np.array([1.0, 1.0])})
    assert w.tolist() == [0.5, 2.5]  # one step on the summed gradient
    model = fx.Dense(3, 1)
    data = [(np.ones((2, 3), np.float32), np.zeros((2, 1), np.float32))] * 5
    st = fx.setup(PyMomentum(0.05), model)
    losses = fx.train_(lambda m, x, y: fx.losses.mse(m(x), y), model, data, st)
    assert losses[-1] < losses[0]


def test_the_testing_checks_pass_for_python_rules():
    for rule in (PyMomentum(0.1), SignDescent(0.3), CountedDescent(0.2), fx.OptimiserChain(fx.ClipGrad(1.0), PyMomentum())):
        fxt.check_pure(rule)
        fxt.check_state_roundtrip(rule)
        fxt.check_frozen_leaf_static(rule)
        fxt.check_descent_direction(rule)


def test_the_checks_catch_a_rule_that_breaks_them():
    class Uphill(fx.Rule):
        def apply(self, state, x, dx):
            return state, -np.asarray(dx)

    with pytest.raises(AssertionError, match="uphill"):
        fxt.check_descent_direction(Uphill())

    class Drifting(fx.Rule):
        """Keeps a count outside its state: the same inputs give different steps."""

        def __init__(self):
            self._calls = 0

        def apply(self, state, x, dx):
            self._calls += 1
            return state, self._calls * np.asarray(dx)

    with pytest.raises(AssertionError, match="different steps"):
        fxt.check_pure(Drifting())


def test_a_rule_saved_from_another_module_loads_when_its_name_is_unique(monkeypatch):
    """A checkpoint written by a script (the rule in __main__) loads where the class
    lives in a module, when one class of that name is defined."""
    p = os.path.join(tempfile.mkdtemp(), "user.safetensors")
    fx.save(p, fx.setup(PyMomentum(0.2), {"w": fx.tensor(X)}))
    key = f"{PyMomentum.__module__}.PyMomentum"
    monkeypatch.delitem(fx.optimise._USER_RULES, key)
    monkeypatch.setitem(fx.optimise._USER_RULES, "some_other_module.PyMomentum", PyMomentum)
    assert fx.load(p)["w"].rule == PyMomentum(0.2)

    # a second class of that name, in a third module: which one is meant is ambiguous
    other = type("PyMomentum", (PyMomentum,), {})
    assert fx.optimise._USER_RULES[key] is other  # defining it registered it
    monkeypatch.delitem(fx.optimise._USER_RULES, key)  # (monkeypatch puts the first one back)
    monkeypatch.setitem(fx.optimise._USER_RULES, "third_module.PyMomentum", other)
    with pytest.raises(fx.CheckpointError, match="define it or import its module"):
        fx.load(p)


def test_a_python_rule_may_change_the_form_of_its_state():
    class LazyMomentum(fx.Rule):
        """No state until the first gradient (as some published rules do)."""

        def apply(self, state, x, dx):
            v = np.asarray(dx) if state is None else 0.5 * np.asarray(state) + np.asarray(dx)
            return v, 0.1 * v

    r = LazyMomentum()
    s = fx.optimise.init(r, X)
    assert s is None
    for g in GS[:3]:
        s, dx = fx.optimise.apply(r, s, X, g)
    np.testing.assert_allclose(s, 0.25 * GS[0] + 0.5 * GS[1] + GS[2], rtol=1e-12)
    got, _ = steps(r, X, GS[:2])
    np.testing.assert_allclose(got, X - 0.1 * GS[0] - 0.1 * (0.5 * GS[0] + GS[1]), rtol=1e-12)
    fxt.check_pure(r)
    # built-in rules still check the state's form
    with pytest.raises(ValueError, match="does not fit the rule"):
        fx.optimise.apply(fx.Momentum(), None, X, GS[0])
