"""fx.schedules (formulas written out independently here) and fx.clip_norm_."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flux_rs as fx
from flux_rs import schedules as S

SET = settings(max_examples=30, deadline=None)


def test_step_and_exponential():
    s = S.step(0.1, 3, gamma=0.5)
    assert [s(t) for t in range(7)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025], rel=1e-15)
    e = S.exponential(2.0, 0.9)
    assert e(10) == pytest.approx(2.0 * 0.9 ** 10, rel=1e-15)


@SET
@given(eta_max=st.floats(0.01, 1), eta_min=st.floats(0, 0.01), period=st.integers(1, 20), t=st.integers(0, 200),
       t_mult=st.integers(1, 3))
def test_cosine_with_warm_restarts(eta_max, eta_min, period, t, t_mult):
    s = S.cosine(eta_max, period, eta_min, t_mult=t_mult)
    # where in which cycle is t?  cycles have lengths period * t_mult^k
    start, length = 0, period
    while t >= start + length:
        start, length = start + length, length * t_mult
    want = eta_min + 0.5 * (eta_max - eta_min) * (1 + math.cos(math.pi * (t - start) / length))
    assert s(t) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert eta_min - 1e-15 <= s(t) <= eta_max + 1e-15
    assert s(start) == pytest.approx(eta_max)  # a warm restart begins at the top
    assert S.cosine(eta_max, period, eta_min, restart=False)(period + t) == eta_min


def test_warmup_then_cosine_composition():
    s = S.warmup(S.cosine(0.1, 100), steps=10)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.05)
    assert s(10) == pytest.approx(0.1)
    assert s(60) == pytest.approx(0.05)
    seq = S.sequence((S.constant(1.0), 3), (S.linear(1.0, 0.0, 2), 2), S.constant(0.25))
    assert [seq(t) for t in range(7)] == pytest.approx([1, 1, 1, 1, 0.5, 0.25, 0.25])
    it = iter(S.exponential(1.0, 0.5))
    assert [next(it) for _ in range(3)] == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError):
        S.step(0.1, 0)
    with pytest.raises(ValueError):
        s(-1)


def test_onecycle_matches_pytorch_formula():
    total, mx, pct, div, fdiv = 100, 0.5, 0.3, 25.0, 1e4
    s = S.onecycle(mx, total, pct_start=pct, div_factor=div, final_div_factor=fdiv)
    lo, end = mx / div, mx / div / fdiv
    up, down = pct * total - 1, total - 1
    cos = lambda a, b, p: b + (a - b) / 2 * (math.cos(math.pi * p) + 1)  # noqa: E731
    for t in range(total):
        want = cos(lo, mx, t / up) if t <= up else cos(mx, end, (t - up) / (down - up))
        assert s(t) == pytest.approx(want, rel=1e-12)
    assert s(0) == pytest.approx(lo) and s(total - 1) == pytest.approx(end)
    assert max(s(t) for t in range(total)) == pytest.approx(mx, rel=1e-3)


def test_schedule_applied_with_adjust():
    m = [fx.tensor(np.zeros(2))]
    st_ = fx.setup(fx.OptimiserChain(fx.ClipGrad(1.0), fx.Descent(0.0)), m)
    sched = S.step(1.0, 1, gamma=0.5)
    for t in range(3):
        fx.adjust_(st_, sched(t))
        fx.update_(st_, m, [np.ones(2)])
    np.testing.assert_allclose(m[0].numpy(), -(1 + 0.5 + 0.25), rtol=1e-15)


# ---- clip_norm_ ----------------------------------------------------------------------------

arr = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                 elements=st.floats(-1e3, 1e3))


@SET
@given(a=arr, b=arr, omega=st.floats(0.01, 100), p=st.sampled_from([1, 2, 3, np.inf]),
       kind=st.sampled_from(["tensor", "numpy"]))
def test_clip_norm_global(a, b, omega, p, kind):
    wrap = fx.tensor if kind == "tensor" else np.array
    tree = {"layers": [wrap(a.copy()), None], "b": wrap(b.copy())}
    n = fx.clip_norm_(tree, omega, p)
    whole = np.concatenate([a.ravel(), b.ravel()])
    assert n == pytest.approx(np.linalg.norm(whole, p), rel=1e-12, abs=1e-300)
    got = np.concatenate([np.asarray(tree["layers"][0]).ravel(), np.asarray(tree["b"]).ravel()])
    if n > omega:
        np.testing.assert_allclose(got, whole * (omega / n), rtol=1e-12)
        assert np.linalg.norm(got, p) == pytest.approx(omega, rel=1e-9)
    else:
        np.testing.assert_array_equal(got, whole)


def test_clip_norm_float32_overflow_nonfinite_and_errors():
    g = [fx.tensor(np.full(4, 3e38, np.float32)), fx.tensor(np.full(4, -3e38, np.float32))]
    n = fx.clip_norm_(g, 1.0)  # the sum of squares overflows float32 but not the accumulator
    assert n == pytest.approx(3e38 * math.sqrt(8), rel=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([t.numpy() for t in g]).astype(np.float64)), 1.0, rtol=1e-6)
    big = [np.full(3, 1e300)]
    assert fx.clip_norm_(big, 1.0) == pytest.approx(1e300 * math.sqrt(3), rel=1e-12)
    with pytest.raises(ValueError, match="norm"):
        fx.clip_norm_([np.array([1.0, np.nan])], 1.0)
    h = [np.array([1.0, np.inf])]
    assert fx.clip_norm_(h, 1.0, throw=False) == math.inf
    assert h[0][0] == 0 and math.isnan(h[0][1])  # Inf·0 = NaN, as ClipNorm(throw=false)
    with pytest.raises(TypeError):
        fx.clip_norm_([np.array([1, 2])], 1.0)
    with pytest.raises(TypeError):
        fx.clip_norm_(["x"], 1.0)


def test_clip_norm_on_a_real_gradient():
    model = fx.Chain(fx.Dense(3, 4, fx.relu), fx.Dense(4, 1))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    g = fx.gradient(lambda m: (m(x) ** 2).sum() * 100, model)[0]
    before = [t.numpy().copy() for t in fx.trainables(g)] if hasattr(fx, "trainables") else None
    n = fx.clip_norm_(g, 0.5)
    flat = np.concatenate([b.ravel() for b in before]).astype(np.float64)
    assert n == pytest.approx(np.linalg.norm(flat), rel=1e-5)
    after = np.concatenate([t.numpy().ravel() for t in fx.trainables(g)]).astype(np.float64)
    assert np.linalg.norm(after) == pytest.approx(min(0.5, n), rel=1e-5)
