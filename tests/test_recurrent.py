"""RNN/LSTM/GRU: forward against a numpy reference with Flux's gate order, gradients
against finite differences, torch where installed, and an LSTM that learns to count."""
import numpy as np
import pytest

import flux_rs as fx
from conftest import numgrad

sig = lambda v: 1 / (1 + np.exp(-v))


def ref_lstm(x, Wi, Wh, b):
    B, T, _ = x.shape
    o = Wh.shape[1]
    h, c = np.zeros((B, o)), np.zeros((B, o))
    ys = []
    for t in range(T):
        g = x[:, t] @ Wi.T + b + h @ Wh.T
        i, f, cc, oo = (g[:, k * o:(k + 1) * o] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(cc)
        h = sig(oo) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1), h, c


def ref_gru(x, Wi, Wh, b):
    B, T, _ = x.shape
    o = Wh.shape[1]
    h = np.zeros((B, o))
    ys = []
    for t in range(T):
        gx, gh = x[:, t] @ Wi.T + b, h @ Wh.T
        r = sig(gx[:, :o] + gh[:, :o])
        z = sig(gx[:, o:2 * o] + gh[:, o:2 * o])
        hh = np.tanh(gx[:, 2 * o:] + r * gh[:, 2 * o:])
        h = (1 - z) * hh + z * h
        ys.append(h)
    return np.stack(ys, 1), h


def ref_rnn(x, Wi, Wh, b):
    h = np.zeros((x.shape[0], Wh.shape[1]))
    ys = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wi.T + b + h @ Wh.T)
        ys.append(h)
    return np.stack(ys, 1), h


def f64_layer(cls, i, o, seed):
    layer = cls(i, o, init_kernel=fx.glorot_uniform(dtype="float64", rng=seed),
                init_recurrent_kernel=fx.glorot_uniform(dtype="float64", rng=seed + 1))
    layer.cell.bias = fx.tensor(np.random.default_rng(seed).normal(size=layer.cell.bias.shape))
    return layer


@pytest.mark.parametrize("cls,ref,gates", [(fx.RNN, ref_rnn, 1), (fx.LSTM, ref_lstm, 4), (fx.GRU, ref_gru, 3)])
def test_forward_matches_numpy_reference(cls, ref, gates):
    layer = f64_layer(cls, 3, 4, 0)
    c = layer.cell
    assert c.Wi.shape == (gates * 4, 3) and c.Wh.shape == (gates * 4, 4) and c.bias.shape == (gates * 4,)
    x = np.random.default_rng(1).normal(size=(2, 5, 3))
    want = ref(x, np.asarray(c.Wi), np.asarray(c.Wh), np.asarray(c.bias))
    np.testing.assert_allclose(np.asarray(layer(x)), want[0], rtol=1e-12, atol=1e-12)
    layer.return_state = True
    y, state = layer(x)
    last = state[0] if cls is fx.LSTM else state
    np.testing.assert_allclose(np.asarray(last), want[1], rtol=1e-12, atol=1e-12)
    # one unbatched sequence (time, features)
    np.testing.assert_allclose(np.asarray(layer(x[0])[0]), want[0][0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [fx.RNN, fx.LSTM, fx.GRU])
def test_gradients_match_finite_differences(cls):
    layer = f64_layer(cls, 2, 3, 4)
    x = np.random.default_rng(2).normal(size=(2, 3, 2))
    loss = lambda m: (m(x) ** 2).sum()
    (g,) = fx.gradient(loss, layer)
    for name in ("Wi", "Wh", "bias"):
        p = getattr(layer.cell, name)
        base = np.asarray(p).copy()

        def f(v, name=name):
            setattr(layer.cell, name, fx.tensor(v))
            return loss(layer).item()

        num = numgrad(f, base)
        setattr(layer.cell, name, p)
        np.testing.assert_allclose(np.asarray(getattr(g.cell, name)), num, rtol=1e-5, atol=1e-7, err_msg=name)
    (gx,) = fx.gradient(lambda x: (layer(x) ** 2).sum(), x)
    np.testing.assert_allclose(np.asarray(gx), numgrad(lambda v: (layer(v) ** 2).sum().item(), x), rtol=1e-5, atol=1e-7)


def test_initial_state_and_errors():
    lstm = fx.LSTM(2, 3, return_state=True)
    x = np.ones((1, 4, 2), dtype=np.float32)
    y1, s1 = lstm(x)
    y2, _ = lstm(x[:, 2:], lstm(x[:, :2])[1])  # continuing from a state equals one pass
    np.testing.assert_allclose(np.asarray(y1)[:, 2:], np.asarray(y2), rtol=1e-6)
    with pytest.raises(ValueError, match="last dimension 2"):
        lstm(np.ones((1, 4, 5), dtype=np.float32))
    assert repr(fx.GRU(2, 3)) == "GRU(2 => 3)"


def test_against_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    for ours, theirs in [(fx.LSTM, torch.nn.LSTM), (fx.GRU, torch.nn.GRU)]:
        m = f64_layer(ours, 3, 4, 7)
        t = theirs(3, 4, batch_first=True).double()
        with torch.no_grad():
            t.weight_ih_l0.copy_(torch.tensor(np.asarray(m.cell.Wi)))
            t.weight_hh_l0.copy_(torch.tensor(np.asarray(m.cell.Wh)))
            t.bias_ih_l0.copy_(torch.tensor(np.asarray(m.cell.bias)))
            t.bias_hh_l0.zero_()
        np.testing.assert_allclose(np.asarray(m(x)), t(torch.tensor(x))[0].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_learns_to_count_ones():
    # sequences of 8 bits; the class is how many are 1 (0..8). Stated accuracy: ≥ 90%.
    rng = np.random.default_rng(0)
    fx.seed(0)
    X = rng.integers(0, 2, size=(2048, 8, 1)).astype(np.float32)
    y = X.sum((1, 2)).astype(int)
    Y = fx.onehotbatch(y, range(9))

    class Counter:
        def __init__(self):
            self.lstm = fx.LSTM(1, 24, return_state=True)
            self.head = fx.Dense(24, 9)

        def __call__(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h)

    m = Counter()
    st = fx.setup(fx.Adam(0.02), m)
    loader = fx.DataLoader((fx.tensor(X), Y), batchsize=64, shuffle=True, rng=0)
    for _ in range(12):
        fx.train_(lambda m, x, y: fx.losses.logitcrossentropy(m(x), y), m, loader, st, progress=False)
    Xt = rng.integers(0, 2, size=(500, 8, 1)).astype(np.float32)
    acc = np.mean(np.asarray(fx.onecold(m(Xt))) == Xt.sum((1, 2)))
    assert acc >= 0.9, acc
