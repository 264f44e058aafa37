"""The implicit-parameter style of earlier Flux: params/Params, Grads, gradient(f, ps),
update_(rule, ps, gs), train_ with callbacks, throttle, stop, epochs, Optimiser.

The examples of the older Flux training guide are translated line for line; the
implicit style is checked against the explicit one (setup / update_ / train_), which
must give bit-identical parameters."""
import collections
import gc
import logging
import math
import weakref

import numpy as np
import pytest

import flux_rs as fx
import flux_rs.implicit as im


def arr(t):
    return np.asarray(t.numpy())


def mse(yhat, y):
    return fx.losses.mse(yhat, y)


def make_model(seed=3):
    fx.seed(seed)
    return fx.Chain(fx.Dense(3, 4, fx.tanh), fx.Dense(4, 2))


def make_data(n=6, seed=0, batch=5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 3)).astype(np.float32), rng.standard_normal((batch, 2)).astype(np.float32))
            for _ in range(n)]


def weights(model):
    return [arr(t).copy() for t in fx.trainables(model)]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        assert np.array_equal(x, y), np.max(np.abs(x - y))


# ---- params ------------------------------------------------------------------------------

def test_params_of_arrays_and_nested_containers_as_in_flux_docs():
    a, b = fx.tensor([1.0, 2.0, 3.0]), fx.tensor([4.0])
    # Flux.params([1, 2, 3], [4])
    ps = fx.params(a, b)
    assert [p for p in ps] == [a, b] and len(ps) == 2
    # Flux.params([[1, 2, 3], [4]]): a list of arrays is unpacked
    assert list(fx.params([a, b])) == [a, b]
    # Flux.params(1, [2 2], (alpha=[3,3,3], beta=Ref(4), gamma=sin)): scalars ignored
    c, d = fx.tensor([[2.0, 2.0]]), fx.tensor([3.0, 3.0, 3.0])
    NT = collections.namedtuple("NT", "alpha beta gamma")
    ps = fx.params(1, c, NT(d, 4, math.sin))
    assert list(ps) == [c, d]
    ps = fx.params(1.5, c, {"alpha": d, "beta": [4, 5.0], "gamma": fx.relu})
    assert list(ps) == [c, d]


def test_params_of_a_model_in_order_without_duplicates():
    m = fx.Chain(fx.Dense(3, 2), fx.softmax)
    ps = fx.params(m)
    assert list(ps) == [m[0].weight, m[0].bias]
    # the same Tensors reached again (directly, through another container) count once
    ps2 = fx.params(m, m[0].bias, [m, {"w": m[0].weight}], (m[0].weight,))
    assert list(ps2) == [m[0].weight, m[0].bias]
    # order follows the arguments
    assert list(fx.params(m[0].bias, m)) == [m[0].bias, m[0].weight]
    # tied weights: one parameter
    d1 = fx.Dense(2, 2)
    d2 = fx.Dense(2, 2)
    d2.weight = d1.weight
    assert list(fx.params(fx.Chain(d1, d2))) == [d1.weight, d1.bias, d2.bias]


def test_params_in_and_len_are_by_identity():
    w = fx.tensor([1.0, 2.0])
    twin = fx.tensor([1.0, 2.0])
    ps = fx.params({"w": w})
    assert w in ps and twin not in ps and 3 not in ps
    assert len(ps) == 1 and ps[0] is w
    ps.append(twin).append(w)
    assert list(ps) == [w, twin]
    ps.remove(w)
    assert list(ps) == [twin]
    with pytest.raises(KeyError):
        ps.remove(w)
    # a Params given to params is unpacked
    assert list(fx.params(ps, w)) == [twin, w]
    assert "Params" in repr(ps) and "(2,)" in repr(ps)


def test_params_respects_layer_trainable_and_rejects_numpy():
    @fx.layer(trainable=("w",))
    class Affine:
        def __init__(self):
            self.w, self.b = fx.ones(2), fx.zeros(2)

    a = Affine()
    assert list(fx.params(a)) == [a.w]
    with pytest.raises(TypeError, match="numpy array"):
        fx.params(np.ones(3))
    with pytest.raises(TypeError, match=r"numpy array at argument 1\['k'\]\[0\]"):
        fx.params(a, {"k": [np.ones(3)]})
    with pytest.raises(TypeError, match="Params holds Tensors"):
        fx.Params([1.0])


# ---- Grads -------------------------------------------------------------------------------

def test_grads_of_a_closure_match_the_analytic_gradient():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    W0, b0 = rng.standard_normal((2, 3)), rng.standard_normal(2)
    W, b, unused = fx.tensor(W0), fx.tensor(b0), fx.tensor(np.ones(4))
    ps = fx.params([W, unused, b])
    gs = fx.gradient(lambda: ((fx.tensor(x) @ W.T + b - fx.tensor(y)) ** 2).sum(), ps)
    assert isinstance(gs, fx.Grads)
    r = x @ W0.T + b0 - y
    np.testing.assert_allclose(arr(gs[W]), 2 * r.T @ x, rtol=1e-12)
    np.testing.assert_allclose(arr(gs[b]), 2 * r.sum(0), rtol=1e-12)
    assert gs[unused] is None
    # mapping behaviour, in the order of the Params
    assert len(gs) == 3 and list(gs) == [W, unused, b] and gs.keys() == [W, unused, b]
    assert [v is None for v in gs.values()] == [False, True, False]
    assert [k for k, _ in gs.items()] == [W, unused, b]
    assert W in gs and fx.tensor(W0) not in gs
    assert gs.get(fx.tensor(W0), "none") == "none" and gs.get(unused, "x") is None
    with pytest.raises(KeyError, match="not one of the parameters"):
        gs[fx.tensor(W0)]
    assert gs.params is not ps and list(gs.params) == list(ps)
    # Grads add (gradient accumulation); None + g = g
    gs2 = gs + gs
    np.testing.assert_allclose(arr(gs2[W]), 4 * r.T @ x, rtol=1e-12)
    assert gs2[unused] is None
    other = fx.gradient(lambda: (W * W).sum(), fx.params(W))
    with pytest.raises(ValueError, match="same Params"):
        gs + other


def test_withgradient_with_params_returns_val_and_aux():
    w = fx.tensor([1.0, -2.0])
    ps = fx.params(w)
    val, gs = fx.withgradient(lambda: ((w * w).sum(), "aux"), ps)
    assert val[1] == "aux" and val[0].item() == 5.0
    assert arr(gs[w]).tolist() == [2.0, -4.0]
    # a constant loss has no gradient
    assert fx.gradient(lambda: 3.0, ps)[w] is None
    # an error inside the closure leaves no tape open
    with pytest.raises(ZeroDivisionError):
        fx.gradient(lambda: 1 / 0, ps)
    assert arr(fx.gradient(lambda: (w * 3.0).sum(), ps)[w]).tolist() == [3.0, 3.0]


# ---- implicit vs explicit ----------------------------------------------------------------

RULES = [lambda: fx.Descent(0.1), lambda: fx.Momentum(0.05), lambda: fx.Adam(0.01), lambda: fx.Nesterov(0.01),
         lambda: fx.RMSProp(0.01), lambda: fx.AdamW(0.01, lambda_=0.1), lambda: fx.AdaGrad(0.1),
         lambda: fx.Lion(0.01), lambda: fx.OAdam(0.01), lambda: fx.AdaBelief(0.01), lambda: fx.Rprop(0.01),
         lambda: fx.OptimiserChain(fx.ClipNorm(1.0), fx.Adam(0.01)), lambda: fx.OptimiserChain(fx.AccumGrad(2), fx.Momentum(0.1)),
         lambda: fx.MixedPrecision(fx.Adam(0.01))]


@pytest.mark.parametrize("make_rule", RULES, ids=lambda f: type(f()).__name__)
def test_implicit_train_equals_explicit_train_over_two_epochs(make_rule):
    data = make_data()
    m1, m2 = make_model(), make_model()
    assert_same(weights(m1), weights(m2))
    st = fx.setup(make_rule(), m1)
    exp = [fx.train_(lambda m, x, y: mse(m(x), y), m1, data, st, progress=False) for _ in range(2)]
    opt = make_rule()
    # a fresh fx.params(...) each epoch, as old code often does: the state stays with `opt`
    imp = [fx.train_(lambda x, y: mse(m2(x), y), fx.params(m2), data, opt, progress=False) for _ in fx.epochs(2)]
    assert exp == imp
    assert_same(weights(m1), weights(m2))
    assert not np.array_equal(weights(m1)[0], weights(make_model())[0])  # training moved the weights


@pytest.mark.parametrize("make_rule", RULES[:3], ids=lambda f: type(f()).__name__)
def test_custom_loop_with_withgradient_equals_explicit(make_rule):
    # the older guide's loop:  ps = params(model); for d in data: val, gs = withgradient(() -> loss(d...), ps);
    # update!(opt, ps, gs)
    data = make_data(1, seed=5) * 8  # one batch again and again, so the loss must fall
    model, ref = make_model(7), make_model(7)
    loss = lambda x, y: mse(model(x), y)
    ps, opt = fx.params(model), make_rule()
    vals = []
    for x, y in data:
        val, gs = fx.withgradient(lambda: loss(x, y), ps)
        vals.append(val.item())
        fx.update_(opt, ps, gs)
    st = fx.setup(make_rule(), ref)
    ref_vals = []
    for x, y in data:
        val, grads = fx.withgradient(lambda m: mse(m(x), y), ref)
        ref_vals.append(val.item())
        fx.update_(st, ref, grads[0])
    assert vals == ref_vals
    assert_same(weights(model), weights(ref))
    assert vals[-1] < vals[0]


def test_rule_state_belongs_to_the_rule_object_not_to_equal_rules():
    data = make_data(2, seed=9)
    m, ref = make_model(), make_model()
    opt1, opt2 = fx.Adam(0.05), fx.Adam(0.05)
    assert opt1 == opt2  # equal values, separate state
    ps = fx.params(m)
    for opt, (x, y) in zip((opt1, opt2), data):
        fx.update_(opt, ps, fx.gradient(lambda: mse(m(x), y), ps))
    for (x, y) in data:  # reference: a fresh state for each step
        st = fx.setup(fx.Adam(0.05), ref)
        fx.update_(st, ref, fx.gradient(lambda r: mse(r(x), y), ref)[0])
    assert_same(weights(m), weights(ref))
    # ...whereas one rule for both steps keeps its moments and gives other numbers
    m3 = make_model()
    ps3, opt = fx.params(m3), fx.Adam(0.05)
    for (x, y) in data:
        fx.update_(opt, ps3, fx.gradient(lambda: mse(m3(x), y), ps3))
    assert not np.array_equal(weights(m3)[0], weights(m)[0])


def test_rule_state_is_dropped_with_the_rule():
    m = make_model()
    ps = fx.params(m)
    opt = fx.Momentum(0.1)
    x, y = make_data(1)[0]
    fx.update_(opt, ps, fx.gradient(lambda: mse(m(x), y), ps))
    key = id(opt)
    assert key in im._STATES and len(im._STATES[key].leaves) == 4
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None and key not in im._STATES


def test_update_with_none_gradients_leaves_those_parameters_alone():
    w, v = fx.tensor([1.0, 2.0]), fx.tensor([5.0])
    ps = fx.params(w, v)
    gs = fx.gradient(lambda: (w * w).sum(), ps)
    fx.update_(fx.Descent(0.5), ps, gs)
    assert arr(w).tolist() == [0.0, 0.0] and arr(v).tolist() == [5.0]
    # a parameter of ps missing from gs is an error, as Zygote's Grads
    with pytest.raises(KeyError):
        fx.update_(fx.Descent(0.5), fx.params(w, fx.tensor([1.0])), gs)


def test_rule_with_a_model_still_gives_the_explicit_error():
    m = make_model()
    x, y = make_data(1)[0]
    grads = fx.gradient(lambda m: mse(m(x), y), m)
    with pytest.raises(TypeError, match="setup"):
        fx.update_(fx.Adam(), m, grads[0])
    # and Params with an explicit state tree is refused with a pointer to the other style
    with pytest.raises(TypeError, match="needs a rule"):
        fx.train_(lambda x, y: mse(m(x), y), fx.params(m), [(x, y)], fx.setup(fx.Adam(), m), progress=False)


def test_optimiser_is_the_old_name_of_optimiser_chain():
    assert fx.Optimiser is fx.OptimiserChain
    data = make_data(4, seed=2)
    m1, m2 = make_model(), make_model()
    st = fx.setup(fx.OptimiserChain(fx.WeightDecay(0.3), fx.Momentum(0.05)), m1)
    fx.train_(lambda m, x, y: mse(m(x), y), m1, data, st, progress=False)
    fx.train_(lambda x, y: mse(m2(x), y), fx.params(m2), data, fx.Optimiser(fx.WeightDecay(0.3), fx.Momentum(0.05)),
              progress=False)
    assert_same(weights(m1), weights(m2))


# ---- train_ with callbacks ---------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_train_with_throttled_callback_that_stops_at_a_metric(monkeypatch):
    # the guide's example: evalcb = () -> @show(loss(test...)); train!(loss, ps, data, opt,
    # cb = throttle(evalcb, 3)), with fx.stop() once the test loss is low enough.
    # Each training step takes "1 second" on a fake clock, so the callback runs after
    # steps 1, 4, 7, ... (every 3 seconds).
    clock = FakeClock()
    monkeypatch.setattr(im, "_now", clock)
    data = make_data(40, seed=11)
    test_x, test_y = make_data(1, seed=12, batch=20)[0]
    rule = lambda: fx.Descent(0.05)

    # reference: the explicit loop, recording the test loss after every step
    ref = make_model()
    st = fx.setup(rule(), ref)
    metric = []
    for x, y in data:
        val, grads = fx.withgradient(lambda m: mse(m(x), y), ref)
        fx.update_(st, ref, grads[0])
        metric.append(mse(ref(test_x), test_y).item())
    thr = metric[10]  # after step 11, between two callback times
    checked = [k for k in range(1, 41) if (k - 1) % 3 == 0]
    expected = next(k for k in checked if metric[k - 1] < thr)
    assert 1 < expected < 40

    model = make_model()
    seen = []

    def evalcb():
        l = mse(model(test_x), test_y).item()
        seen.append(l)
        if l < thr:
            fx.stop()

    def loss(x, y):
        clock.t += 1.0
        return mse(model(x), y)

    steps = []
    losses = fx.train_(loss, fx.params(model), data, rule(), cb=[fx.throttle(evalcb, 3), lambda: steps.append(1)],
                       progress=False)
    assert len(losses) == expected and len(steps) == expected - 1  # the list stops at the callback that stopped
    assert len(seen) == len([k for k in checked if k <= expected])
    assert seen == [metric[k - 1] for k in checked if k <= expected]
    # the update of the stopping step was kept, and no more
    ref2 = make_model()
    st2 = fx.setup(rule(), ref2)
    fx.train_(lambda m, x, y: mse(m(x), y), ref2, data[:expected], st2, progress=False)
    assert_same(weights(model), weights(ref2))


def test_stop_inside_the_loss_drops_that_update():
    w = fx.tensor([1.0, 2.0])
    calls = []

    def loss(d):
        calls.append(d)
        if d == 3:
            fx.stop()
        return (w * w).sum()

    losses = fx.train_(loss, fx.params(w), range(10), fx.Descent(0.25), progress=False)
    assert calls == [0, 1, 2, 3] and len(losses) == 3
    np.testing.assert_allclose(arr(w), np.array([1.0, 2.0]) * 0.5 ** 3)  # w ← w − 0.25·2w, three times


def test_stop_outside_train_raises():
    with pytest.raises(im.StopTraining):
        fx.stop()


def test_train_calls_each_callback_after_each_item_and_checks_cb():
    w = fx.tensor([1.0])
    log = []
    data = [(np.float64(1.0),), (np.float64(2.0),), (np.float64(3.0),)]
    losses = fx.train_(lambda a: (w * a).sum(), fx.params(w), data, fx.Descent(0.1),
                       cb=[lambda: log.append(("a", arr(w).item())), lambda: log.append("b")], progress=False)
    # loss(*d) for tuple items; the callback sees the updated parameter
    assert losses == pytest.approx([1.0, 0.9 * 2, 0.7 * 3])
    assert log == [("a", pytest.approx(0.9)), "b", ("a", pytest.approx(0.7)), "b", ("a", pytest.approx(0.4)), "b"]
    with pytest.raises(TypeError, match="cb must be"):
        fx.train_(lambda a: (w * a).sum(), fx.params(w), data, fx.Descent(0.1), cb=[1], progress=False)


def test_non_finite_loss_in_implicit_train_stops_before_that_update():
    data = make_data(5, seed=4)
    bad = list(data)
    bad[2] = (np.full_like(data[2][0], np.nan), data[2][1])
    model = make_model()
    with pytest.raises(fx.NonFiniteLossError) as e:
        fx.train_(lambda x, y: mse(model(x), y), fx.params(model), bad, fx.Adam(0.01), progress=False)
    assert e.value.index == 2 and math.isnan(e.value.loss)
    assert isinstance(e.value, FloatingPointError)
    ref = make_model()
    fx.train_(lambda m, x, y: mse(m(x), y), ref, data[:2], fx.setup(fx.Adam(0.01), ref), progress=False)
    assert_same(weights(model), weights(ref))
    assert all(np.isfinite(w).all() for w in weights(model))


# ---- throttle ----------------------------------------------------------------------------

def run_at(monkeypatch, thr, times):
    clock = FakeClock()
    monkeypatch.setattr(im, "_now", clock)
    results = []
    for t, arg in times:
        clock.t = t
        results.append(thr(arg))
    return results


def test_throttle_leading(monkeypatch):
    ran = []
    thr = fx.throttle(lambda a: ran.append(a) or a.upper(), 1.0)
    res = run_at(monkeypatch, thr, [(0.0, "a"), (0.5, "b"), (1.1, "c"), (1.2, "d"), (2.5, "e")])
    assert ran == ["a", "c", "e"]
    assert res == ["A", "A", "C", "C", "E"]  # the latest result is returned, as Flux's


def test_throttle_trailing(monkeypatch):
    # Flux: a at 0 runs; b, c wait and c runs when the window ends (t=1), opening a new
    # window to t=2; d, e wait and e runs at t=2; nothing is waiting at t=3; f runs at 4
    ran = []
    thr = fx.throttle(ran.append, 1.0, trailing=True)
    run_at(monkeypatch, thr, [(0.0, "a"), (0.5, "b"), (0.7, "c"), (1.5, "d"), (1.6, "e"), (4.0, "f")])
    assert ran == ["a", "c", "e", "f"]


def test_throttle_not_leading(monkeypatch):
    # Flux: the first call is delayed to the end of its window; calls while it waits
    # are dropped unless trailing
    ran = []
    thr = fx.throttle(ran.append, 1.0, leading=False)
    run_at(monkeypatch, thr, [(0.0, "a"), (0.5, "b"), (1.5, "c"), (2.5, "d")])
    assert ran == ["a"]
    thr.flush()
    assert ran == ["a", "d"]
    thr.flush()
    assert ran == ["a", "d"]


def test_throttle_checks_its_arguments():
    with pytest.raises(TypeError):
        fx.throttle(3, 1.0)
    with pytest.raises(ValueError):
        fx.throttle(print, -1)


# ---- epochs ------------------------------------------------------------------------------

def test_epochs_iterates_and_logs(monkeypatch, caplog, capsys):
    caplog.set_level(logging.INFO, logger="flux_rs")
    assert list(fx.epochs(3)) == [1, 2, 3] and len(fx.epochs(3)) == 3
    assert [r.getMessage() for r in caplog.records if r.name == "flux_rs"] == ["Epoch 1", "Epoch 2", "Epoch 3"]
    # with no logging configured the message goes to stderr, as Julia's @info
    monkeypatch.setattr(im._log, "hasHandlers", lambda: False)
    assert list(fx.epochs(2)) == [1, 2]
    assert capsys.readouterr().err.splitlines() == ["Epoch 1", "Epoch 2"]
    assert list(fx.epochs(0)) == []
    with pytest.raises(TypeError):
        fx.epochs(2.0)
    with pytest.raises(ValueError):
        fx.epochs(-1)


def test_public_names():
    for name in ("params", "Params", "Grads", "throttle", "stop", "epochs", "Optimiser"):
        assert name in fx.__all__ and hasattr(fx, name)
