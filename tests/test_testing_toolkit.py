"""flux_rs.testing (issue 16, item 7): the strategies draw what they promise, the
invariant checks hold for every built-in rule (property tests over all rules) and
fail for rules that break them, and the module says what to install without
hypothesis."""
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flux_rs as fx
import flux_rs.testing as fxt

ROOT = Path(__file__).resolve().parents[1]
SET = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = list(fxt.RULE_NAMES)


def test_rule_names_cover_every_builtin_rule():
    builtin = {n for n in fx.optimise.__all__ if isinstance(getattr(fx, n, None), type)
               and issubclass(getattr(fx, n), fx.Rule) and n != "Rule"}
    assert set(NAMES) == builtin
    with pytest.raises(ValueError, match="no built-in rule named 'Adamm'.*Adam"):
        fxt.rule("Adamm")


@pytest.mark.parametrize("name", NAMES)
@SET
@given(data=st.data())
def test_rule_strategy_draws_that_rule_with_valid_hyperparameters(name, data):
    r = data.draw(fxt.rule(name))
    wrapped = {"AccumGrad": (fx.AccumGrad, fx.OptimiserChain)}.get(name, (getattr(fx, name),))
    assert isinstance(r, wrapped)
    # valid: the rule builds again from its own fields and takes a step without error
    x = np.linspace(-1, 1, 4)
    s, dx = fx.optimise.apply(r, fx.optimise.init(r, x), x, np.ones(4))
    assert dx is None or np.all(np.isfinite(dx))


@SET
@given(xg=fxt.params_and_grads(steps=3), x1=fxt.params_and_grads(dtype="float32"))
def test_params_and_grads_match_in_shape_and_dtype(xg, x1):
    x, gs = xg
    assert len(gs) == 3 and all(g.shape == x.shape and g.dtype == x.dtype for g in gs)
    assert x.dtype in (np.float32, np.float64) and np.all(np.isfinite(x))
    x, g = x1
    assert x.dtype == g.dtype == np.float32 and x.shape == g.shape


@pytest.mark.parametrize("name", NAMES)
@SET
@given(data=st.data())
def test_every_rule_is_pure(name, data):
    x, gs = data.draw(fxt.params_and_grads(steps=3))
    fxt.check_pure(data.draw(fxt.rule(name)), x, gs)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_rule_survives_a_checkpoint(name, data):
    x, gs = data.draw(fxt.params_and_grads(steps=3))
    fxt.check_state_roundtrip(data.draw(fxt.rule(name)), x, gs)


@pytest.mark.parametrize("name", NAMES)
@SET
@given(data=st.data())
def test_every_frozen_leaf_stays_still(name, data):
    x, gs = data.draw(fxt.params_and_grads(steps=3))
    fxt.check_frozen_leaf_static(data.draw(fxt.rule(name)), x, gs)


# rules that add a penalty to the objective are descent methods for another function
DESCENT = [n for n in NAMES if n not in ("WeightDecay", "SignDecay", "OptimiserChain")]


@pytest.mark.parametrize("name", DESCENT)
@SET
@given(data=st.data())
def test_every_descent_rule_steps_downhill_on_a_quadratic(name, data):
    r = data.draw(fxt.rule(name))
    if isinstance(r, fx.AdamW):
        r = fx.adjust(r, lambda_=0.0)
    x, _ = data.draw(fxt.params_and_grads())
    a = data.draw(st.floats(0.1, 10.0))
    fxt.check_descent_direction(r, x, curvature=np.full(x.shape, a))


def test_checks_fail_loudly_on_broken_rules():
    with pytest.raises(AssertionError, match="uphill"):
        fxt.check_descent_direction(fx.WeightDecay(10.0), np.array([1.0, 1.0]), centre=np.array([2.0, 2.0]))
    with pytest.raises(ValueError, match="curvature must be positive"):
        fxt.check_descent_direction(fx.Descent(), np.ones(2), curvature=np.array([1.0, -1.0]))

    class Forgetful(fx.Rule):
        """Loses its hyperparameter in a checkpoint: it keeps eta private."""

        def __init__(self, eta=0.1):
            self._eta = eta

        def apply(self, state, x, dx):
            return state, getattr(self, "_eta", 1.0) * np.asarray(dx)

    with pytest.raises(AssertionError, match="training on from the loaded checkpoint differs"):
        fxt.check_state_roundtrip(Forgetful(0.1))


def test_import_without_hypothesis_says_what_to_install():
    code = "import sys; sys.modules['hypothesis'] = None\nimport flux_rs.testing"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode != 0
    assert "ImportError: flux_rs.testing needs hypothesis: pip install 'flux_rs[testing]'" in p.stderr
    # and flux_rs itself does not need hypothesis
    p = subprocess.run([sys.executable, "-c", "import sys; sys.modules['hypothesis'] = None\nimport flux_rs"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_testing_extra_is_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    assert any(d.startswith("hypothesis") for d in extras["testing"])


def test_descent_check_accepts_clipnorm_zero_over_zero():
    # ClipNorm(0, -Inf) with a zero gradient entry scales by 0/0 = NaN, as Julia does;
    # the check must not call that uphill (hypothesis found it), but still checks ω > 0
    fxt.check_descent_direction(fx.ClipNorm(0.0, -np.inf), np.array([0.0, 1.0, 2.0]))
    fxt.check_descent_direction(fx.OptimiserChain(fx.ClipNorm(0.0, -np.inf), fx.Descent()), np.array([0.0, 1.0]))
    fxt.check_descent_direction(fx.ClipNorm(1.0, -np.inf), np.array([0.0, 1.0, 2.0]))
