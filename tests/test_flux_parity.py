"""Flux behaviours a Flux user reaches for first: onehotbatch on n-d labels, train_'s
per-step callback, Flux's `train` spelling, and the initial state of LSTM/GRU."""
import numpy as np
import pytest

import flux_rs as fx


# ---- onehotbatch / onecold on n-d labels ---------------------------------------------------

def test_onehotbatch_nd_labels_put_the_classes_last():
    labels = np.array([[0, 2, 1], [1, 1, 0]])
    y = fx.onehotbatch(labels, range(3))
    assert y.shape == (2, 3, 3) and y.dtype == np.float32
    # the batch-first mirror of Flux's (classes, dims...): y[i, j] is onehot(labels[i, j])
    np.testing.assert_array_equal(np.asarray(y), np.eye(3, dtype=np.float32)[labels])
    three_d = np.arange(24).reshape(2, 3, 4) % 5
    np.testing.assert_array_equal(np.asarray(fx.onehotbatch(three_d, range(5))), np.eye(5)[three_d])


def test_onehotbatch_keeps_1d_and_scalar_layouts_and_names_bad_labels():
    assert fx.onehotbatch([2, 0], range(3)).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert fx.onehotbatch("b", ["a", "b"]).tolist() == [0, 1]      # one label: a vector, as Flux's onehot
    assert fx.onehotbatch(np.zeros((0, 4), int), range(2)).shape == (0, 4, 2)
    with pytest.raises(ValueError, match="label 9"):
        fx.onehotbatch([[0, 9]], range(3))


def test_onecold_inverts_onehotbatch_in_the_labels_shape():
    labels = [["a", "c"], ["b", "a"], ["c", "c"]]
    y = fx.onehotbatch(labels, "abc")
    assert fx.onecold(y, "abc") == labels
    np.testing.assert_array_equal(np.asarray(fx.onecold(y)), [[0, 2], [1, 0], [2, 2]])


def test_nd_onehot_trains_a_per_step_classifier():
    # (batch, time) labels against (batch, time, classes) logits: crossentropy's class dim is last
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    labels = (x[..., 0] > 0).astype(int)
    m = fx.Dense(3, 2)
    st = fx.setup(fx.Adam(0.1), m)
    loss = lambda m, x, y: fx.losses.logitcrossentropy(m(x), y)
    first = loss(m, x, fx.onehotbatch(labels, range(2))).item()
    for _ in range(5):
        fx.train_(loss, m, [(x, fx.onehotbatch(labels, range(2)))] * 10, st, progress=False)
    assert loss(m, x, fx.onehotbatch(labels, range(2))).item() < 0.5 * first


# ---- train_(..., cb=...) ----------------------------------------------------------------------

def _problem():
    x = np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    y = x @ np.array([[2.0], [-1.0]], dtype=np.float32)
    m = fx.Dense(2, 1)
    loader = fx.DataLoader((x, y), batchsize=10)
    return m, loader, lambda m, x, y: fx.losses.mse(m(x), y)


def test_cb_gets_every_step_index_and_its_loss_after_the_update():
    m, loader, loss = _problem()
    st = fx.setup(fx.Descent(0.05), m)
    seen = []
    weights = []
    losses = fx.train_(loss, m, loader, st, progress=False,
                       cb=lambda step, l: (seen.append((step, l)), weights.append(np.asarray(m.weight).copy())))
    assert [s for s, _ in seen] == [0, 1, 2, 3]
    assert [l for _, l in seen] == losses and all(isinstance(l, float) for _, l in seen)
    # called after the update: the weight seen at step 0 is no longer the initial one, and each differs
    assert all(not np.array_equal(a, b) for a, b in zip(weights, weights[1:]))


def test_cb_drives_a_learning_rate_schedule_without_a_loop():
    m, loader, loss = _problem()
    st = fx.setup(fx.Adam(0.1), m)
    sched = fx.schedules.step(0.1, 2, gamma=0.5)
    etas = []

    def adjust(step, _loss):
        fx.adjust_(st, sched(step + 1))
        etas.append(st.weight.rule.eta)

    fx.train_(loss, m, loader, st, progress=False, cb=adjust)
    np.testing.assert_allclose(etas, [0.1, 0.05, 0.05, 0.025])


def test_cb_list_and_stop():
    m, loader, loss = _problem()
    st = fx.setup(fx.Descent(0.01), m)
    calls = []
    stop_at_1 = lambda step, l: fx.stop() if step == 1 else None
    losses = fx.train_(loss, m, loader, st, progress=False, cb=[lambda s, l: calls.append(s), stop_at_1])
    assert calls == [0, 1] and len(losses) == 2  # the stopping step's update is kept, as in the implicit style


def test_cb_with_the_wrong_arity_or_type_fails_before_any_update():
    m, loader, loss = _problem()
    st = fx.setup(fx.Descent(0.1), m)
    w0 = np.asarray(m.weight).copy()
    with pytest.raises(TypeError, match=r"cb\(step, loss\)"):
        fx.train_(loss, m, loader, st, progress=False, cb=lambda: None)
    with pytest.raises(TypeError, match="cb must be"):
        fx.train_(loss, m, loader, st, progress=False, cb=3)
    np.testing.assert_array_equal(np.asarray(m.weight), w0)
    fx.train_(loss, m, loader, st, progress=False, cb=lambda *args: None)  # varargs are fine


def test_cb_also_runs_with_check_grads():
    m, loader, loss = _problem()
    st = fx.setup(fx.Descent(0.01), m)
    steps = []
    fx.train_(loss, m, loader, st, progress=False, check_grads=True, cb=lambda s, l: steps.append(s))
    assert steps == [0, 1, 2, 3]


# ---- fx.train, Flux's spelling ----------------------------------------------------------------

def test_fx_train_points_to_train_():
    m, loader, loss = _problem()
    with pytest.raises(TypeError, match=r"fx\.train_\(loss, model, data, opt_state\)"):
        fx.train(loss, m, loader, fx.setup(fx.Adam(), m))
    import flux_rs.train as module
    assert module is fx.train and module.train_ is fx.train_  # still the module it always was


# ---- recurrent initial states --------------------------------------------------------------------

@pytest.mark.parametrize("layer", ["LSTM", "GRU", "RNN"])
def test_initial_state_continues_a_sequence(layer):
    fx.seed(0)
    rnn = getattr(fx, layer)(3, 4, return_state=True)
    x = fx.randn32(2, 6, 3)
    y_all, s_all = rnn(x)
    y1, s1 = rnn(x[:, :2])
    y2, s2 = rnn(x[:, 2:], s1)  # the state after step 2 is the initial state of the rest
    np.testing.assert_allclose(np.concatenate([np.asarray(y1), np.asarray(y2)], 1), np.asarray(y_all), rtol=1e-5,
                               atol=1e-6)
    flat = lambda s: [np.asarray(t) for t in (s if isinstance(s, tuple) else (s,))]
    for a, b in zip(flat(s2), flat(s_all)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lstm_initial_state_example_from_the_docs():
    fx.seed(0)
    lstm = fx.LSTM(3, 4)
    x = fx.randn32(2, 5, 3)
    h0, c0 = fx.ones32(2, 4), fx.zeros32(2, 4)  # (batch, out) each
    assert lstm(x, (h0, c0)).shape == (2, 5, 4)
    assert not np.allclose(np.asarray(lstm(x, (h0, c0))), np.asarray(lstm(x)))  # zeros are the default
    np.testing.assert_array_equal(np.asarray(lstm(x, (fx.zeros32(2, 4), fx.zeros32(2, 4)))), np.asarray(lstm(x)))
