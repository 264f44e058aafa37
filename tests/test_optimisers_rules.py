"""Every rule over 1-6 steps against the independent float64 reference of
test_opt_reference.py, through the pure interface (fx.optimise.init/apply, state
compared part by part) and through fx.setup/fx.update_ (the fused in-place step)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flux_rs as fx
import flux_rs.testing as fxt
from test_opt_reference import ref_apply, ref_init

SET = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# every rule with valid hyperparameters, and the arrays, from the toolkit users get
RULES = {name: fxt.rule(name) for name in fxt.RULE_NAMES}
elem, shapes = fxt.ELEMENTS, fxt.SHAPES


@st.composite
def problem(draw, name):
    shape = draw(shapes)
    k = draw(st.integers(1, 6))
    x = draw(hnp.arrays(np.float64, shape, elements=elem))
    gs = [draw(hnp.arrays(np.float64, shape, elements=elem)) for _ in range(k)]
    return draw(RULES[name]), x, gs


def close(actual, expected, rtol, what, scale_floor=0.0):
    """Normwise: max error <= rtol * max |expected| (elementwise cancellation is normal).
    ``scale_floor`` is the size of the values the result was computed from: x − dx can
    cancel down to far below either, and its rounding error is relative to them."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, what
    scale = max(np.max(np.abs(e)) if e.size else 0.0, scale_floor)
    err = np.max(np.abs(a - e)) if e.size else 0.0
    assert err <= rtol * scale + 1e-300 or np.array_equal(a, e, equal_nan=True), f"{what}: error {err:g} vs scale {scale:g}\n{a}\n{e}"


def close_state(a, e, rtol, what):
    if e is None:
        assert a is None or (isinstance(a, bool) and not a), what
    elif isinstance(e, tuple):
        assert isinstance(a, tuple) and len(a) == len(e), f"{what}: {a!r} vs {e!r}"
        for i, (ai, ei) in enumerate(zip(a, e)):
            close_state(ai, ei, rtol, f"{what}[{i}]")
    elif isinstance(e, int):
        assert a == e, what
    else:
        close(a, e, rtol, what)


NAMES = sorted(RULES)


def run_pure(rule, x, gs, dtype, rtol):
    f32 = dtype == np.float32
    x = x.astype(dtype)
    s, sr = fx.optimise.init(rule, x), ref_init(rule, x, f32)
    close_state(s, sr, rtol, "init")
    for i, g in enumerate(gs):
        g = g.astype(dtype)
        s, dx = fx.optimise.apply(rule, s, x, g)
        sr, dxr = ref_apply(rule, sr, x, g, f32)
        assert (dx is None) == (dxr is None), f"step {i}"
        if dx is not None:
            assert dx.dtype == dtype
            if not (f32 and isinstance(rule, fx.MixedPrecision)):  # there dx is x minus a rounded master copy
                close(dx, dxr, rtol, f"dx at step {i}")
            x = (x - dxr).astype(dtype)  # continue both from the same point
        close_state(s, sr, rtol, f"state at step {i}")


def run_tree(rule, x, gs, dtype, rtol):
    f32 = dtype == np.float32
    model = {"w": fx.tensor(x.astype(dtype))}
    tree = fx.setup(rule, model)
    xr = x.astype(dtype).astype(np.float64)
    sr = ref_init(rule, xr, f32)
    for i, g in enumerate(gs):
        g = g.astype(dtype)
        fx.update_(tree, model, {"w": g})
        sr, dxr = ref_apply(rule, sr, xr.astype(dtype), g, f32)
        floor = 0.0
        if dxr is not None:
            floor = max(np.max(np.abs(xr)), np.max(np.abs(dxr))) if xr.size else 0.0
            xr = (xr - dxr).astype(dtype).astype(np.float64)
        got = model["w"].numpy()
        assert got.dtype == dtype
        close(got, xr, rtol, f"x at step {i}", floor)
        xr = got.astype(np.float64)  # continue both from the same point, as run_pure does


@pytest.mark.parametrize("name", NAMES)
@SET
@given(data=st.data())
def test_rule_matches_reference_float64(name, data):
    rule, x, gs = data.draw(problem(name))
    run_pure(rule, x, gs, np.float64, 1e-12)
    run_tree(rule, x, gs, np.float64, 1e-12)


@pytest.mark.parametrize("name", NAMES)
@SET
@given(data=st.data())
def test_rule_matches_reference_float32(name, data):
    rule, x, gs = data.draw(problem(name))
    run_pure(rule, x, gs, np.float32, 1e-5)
    run_tree(rule, x, gs, np.float32, 1e-5)
