"""The recurrent layers are thin shells: one call into Rust per use (a whole sequence or
one cell step is one fused op), outputs bit-identical to that Rust function's, cells
stepping to the sequence's result, and a user σ for the RNN still working."""
import numpy as np
import pytest

import flux_rs as fx
import flux_rs.recurrent as rec
from flux_rs import _core

LAYERS = [(fx.RNN, "rnn"), (fx.LSTM, "lstm"), (fx.GRU, "gru")]
CELLS = [(fx.RNNCell, "rnn"), (fx.LSTMCell, "lstm"), (fx.GRUCell, "gru")]


class _Counting:
    """Stands in for ``_core`` inside flux_rs.recurrent and records every call."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        f = getattr(_core, name)
        if not callable(f) or isinstance(f, type):
            return f

        def wrapped(*a, **k):
            self.calls.append(name)
            return f(*a, **k)
        return wrapped


@pytest.fixture
def counted(monkeypatch):
    c = _Counting()
    monkeypatch.setattr(rec, "_core", c)
    return c


@pytest.mark.parametrize("cls,kind", LAYERS)
def test_a_sequence_is_one_rust_call(cls, kind, counted):
    layer = cls(3, 4, return_state=True)
    x = fx.randn32(2, 9, 3)
    counted.calls.clear()
    y, state = layer(x)
    assert counted.calls == ["recurrent"]
    counted.calls.clear()
    (g,) = fx.gradient(lambda m: m(x)[0].sum(), layer)  # and under a gradient
    assert counted.calls == ["recurrent"]
    assert g.cell.Wi.shape == layer.cell.Wi.shape and np.abs(np.asarray(g.cell.Wh)).sum() > 0


@pytest.mark.parametrize("cls,kind", CELLS)
def test_a_cell_step_is_one_rust_call(cls, kind, counted):
    cell = cls(3, 4)
    counted.calls.clear()
    y, state = cell(fx.randn32(2, 3))
    y2, _ = cell(fx.randn32(2, 3), state)
    assert counted.calls == ["recurrent", "recurrent"]
    assert y2.shape == (2, 4)


@pytest.mark.parametrize("cls,kind", LAYERS)
def test_outputs_are_bit_identical_to_the_rust_function(cls, kind):
    layer = cls(3, 5, return_state=True)
    rng = np.random.default_rng(0)
    layer.cell.bias = fx.tensor(rng.normal(size=layer.cell.bias.shape).astype(np.float32))
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    y, state = layer(x)
    y_rs, state_rs = _core.recurrent(kind, fx.tensor(x), layer.cell.Wi, layer.cell.Wh, layer.cell.bias)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y_rs))
    for a, b in zip(state if kind == "lstm" else (state,), state_rs if kind == "lstm" else (state_rs,)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("cls,kind", LAYERS)
def test_stepping_the_cell_gives_the_sequence(cls, kind):
    layer = cls(2, 3, return_state=True)
    x = fx.randn32(2, 5, 2)
    y, last = layer(x)
    state, ys = None, []
    for t in range(5):
        h, state = layer.cell(x[:, t], state)
        ys.append(np.asarray(h))
    np.testing.assert_array_equal(np.stack(ys, 1), np.asarray(y))
    # unbatched: a (features,) step and a (time, features) sequence
    h1, _ = layer.cell(x[0, 0])
    assert h1.shape == (3,)
    np.testing.assert_array_equal(np.asarray(layer(x[0])[0]), np.asarray(y)[0])


def test_an_rnn_with_a_user_activation():
    σ = lambda v: fx.relu(v) * 0.5
    layer = fx.RNN(2, 3, σ, return_state=True, init_kernel=fx.glorot_uniform(dtype="float64", rng=1),
                   init_recurrent_kernel=fx.glorot_uniform(dtype="float64", rng=2))
    x = np.random.default_rng(3).normal(size=(2, 4, 2))
    Wi, Wh = np.asarray(layer.cell.Wi), np.asarray(layer.cell.Wh)
    h = np.zeros((2, 3))
    want = []
    for t in range(4):
        h = np.maximum(x[:, t] @ Wi.T + h @ Wh.T, 0) * 0.5
        want.append(h)
    y, last = layer(x)
    np.testing.assert_allclose(np.asarray(y), np.stack(want, 1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(last), h, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(layer(x[0])[0]), np.stack(want, 1)[0], rtol=1e-12)


def test_bad_states_are_clear_errors():
    lstm = fx.LSTM(2, 3)
    x = fx.ones32(1, 4, 2)
    with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
        lstm(x, fx.zeros32(1, 3))
    with pytest.raises(ValueError, match=r"state of shape \[1, 3\]"):
        lstm(x, (fx.zeros32(2, 3), fx.zeros32(2, 3)))
    with pytest.raises(ValueError, match=r"\(batch, time, features\)"):
        lstm(fx.ones32(2, 1, 4, 2))
