"""Every rule over 1-6 steps against the independent float64 reference of
test_opt_reference.py, through the pure interface (fx.optimise.init/apply, state
compared part by part) and through fx.setup/fx.update_ (the fused in-place step)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flux_rs as fx
from test_opt_reference import ref_apply, ref_init

SET = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# zero, or not so small that the result is subnormal in float32
unit = st.one_of(st.just(0.0), st.floats(1e-6, 1.0))
eta = unit
rho = st.floats(0.0, 0.99)
eps = st.floats(1e-8, 1e-3)
# (β1 = 0 or ≥ 0.01: tiny β1^t underflows differently in float32 and float64)
beta = st.tuples(st.one_of(st.just(0.0), st.floats(0.01, 0.99)), st.floats(0.5, 0.9999))

RULES = {
    "Descent": st.builds(fx.Descent, eta),
    "Momentum": st.builds(fx.Momentum, eta, rho),
    "Nesterov": st.builds(fx.Nesterov, eta, rho),
    "Rprop": st.builds(fx.Rprop, st.floats(1e-4, 0.1), st.tuples(st.floats(0.1, 0.9), st.floats(1.0, 2.0)),
                       st.tuples(st.floats(1e-7, 1e-3), st.floats(1.0, 100.0))),
    "RMSProp": st.builds(fx.RMSProp, eta, rho, eps, centred=st.booleans()),
    "Adam": st.builds(fx.Adam, eta, beta, eps),
    "RAdam": st.builds(fx.RAdam, eta, beta, eps),
    "AdaMax": st.builds(fx.AdaMax, eta, beta, eps),
    "OAdam": st.builds(fx.OAdam, eta, beta, eps),
    "AdaGrad": st.builds(fx.AdaGrad, eta, eps),
    "AdaDelta": st.builds(fx.AdaDelta, rho, eps),
    "AMSGrad": st.builds(fx.AMSGrad, eta, beta, eps),
    "NAdam": st.builds(fx.NAdam, eta, beta, eps),
    "AdamW": st.builds(fx.AdamW, eta, beta, st.floats(0.0, 0.5), eps, couple=st.booleans()),
    "AdaBelief": st.builds(fx.AdaBelief, eta, beta, st.floats(1e-16, 1e-8)),
    "Lion": st.builds(fx.Lion, eta, beta),
    "WeightDecay": st.builds(fx.WeightDecay, unit),
    "SignDecay": st.builds(fx.SignDecay, unit),
    "ClipGrad": st.builds(fx.ClipGrad, st.floats(0.0, 10.0)),
    "ClipNorm": st.builds(fx.ClipNorm, st.floats(0.0, 10.0), st.sampled_from([1, 2, 3, 0.5, 0, np.inf, -np.inf])),
    "OptimiserChain": st.one_of(
        st.builds(lambda a, b: fx.OptimiserChain(fx.WeightDecay(a), fx.Adam(b)), unit, eta),
        st.builds(lambda a, b: fx.OptimiserChain(fx.ClipGrad(a), fx.Momentum(b)), st.floats(0.1, 5.0), eta),
        st.builds(lambda a: fx.OptimiserChain(fx.ClipNorm(a), fx.OptimiserChain(fx.SignDecay(), fx.Nesterov())),
                  st.floats(0.1, 5.0)),
        st.just(fx.OptimiserChain())),
    "AccumGrad": st.one_of(st.builds(fx.AccumGrad, st.integers(1, 3)),
                           st.builds(lambda n, e: fx.OptimiserChain(fx.AccumGrad(n), fx.Descent(e)), st.integers(1, 3), eta)),
    "MixedPrecision": st.builds(lambda e: fx.MixedPrecision(fx.Adam(e)), eta),
}

# values including zeros and large magnitudes (no subnormals: float32 flushes them
# differently from float64, which is a property of the dtype, not of a rule)
small = st.floats(-10.0, 10.0).filter(lambda v: v == 0 or abs(v) > 1e-4)
large = st.builds(lambda s, v: s * v, st.sampled_from([-1.0, 1.0]), st.floats(1e3, 1e5))
elem = st.one_of(st.just(0.0), small, small, large)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


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
