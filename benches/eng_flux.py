"""flux_rs's side of the workloads: each builder takes the shared data and returns a
zero-argument function doing one unit of work (a training step, an update, a product,
an epoch), written as a user of the public API would write it."""
from __future__ import annotations

NAME = "flux_rs"
VARIANTS = ("flux_rs",)


class NotAvailable(Exception):
    """This engine cannot run this workload (yet); the message says why."""


def available():
    try:
        import flux_rs  # noqa: F401
    except ImportError as e:
        return False, f"flux_rs not importable ({e})"
    return True, ""


def _const(a):
    return lambda *shape: a.copy()


def _mlp(weights, act):
    import flux_rs as fx
    layers = []
    for i, (w, b) in enumerate(weights):
        σ = act if i < len(weights) - 1 else fx.identity
        layers.append(fx.Dense(w.shape[1], w.shape[0], σ, init=_const(w)))
    return fx.Chain(*layers)


def _trainer(model, rule, loss):
    """One training step as a user writes it: gradient of the model, then update_."""
    import flux_rs as fx
    st = fx.setup(rule, model)

    def step():
        g = fx.gradient(loss, model)
        fx.update_(st, model, g[0])
    return step


def w1(d, variant):
    import flux_rs as fx
    model = _mlp(d["w1_weights"], fx.relu)
    x, y = fx.tensor(d["w1_x"]), fx.tensor(d["w1_y"])
    return _trainer(model, fx.Adam(), lambda m: fx.losses.logitcrossentropy(m(x), y))


def w2(d, variant):
    import flux_rs as fx
    model = _mlp(d["w2_weights"], fx.tanh)
    x, y = fx.tensor(d["w2_x"]), fx.tensor(d["w2_y"])
    return _trainer(model, fx.Descent(0.1), lambda m: fx.losses.mse(m(x), y))


def w3(d, variant):
    import flux_rs as fx
    if not (hasattr(fx, "Conv") and hasattr(fx, "MaxPool")):
        raise NotAvailable("not available yet (fx.Conv / fx.MaxPool missing)")
    p = d["w3_weights"]
    model = fx.Chain(
        fx.Conv((5, 5), 1, 6, fx.relu, init=_const(p["c1"][0])), fx.MaxPool((2, 2)),
        fx.Conv((5, 5), 6, 16, fx.relu, init=_const(p["c2"][0])), fx.MaxPool((2, 2)),
        fx.flatten,
        fx.Dense(256, 120, fx.relu, init=_const(p["d1"][0])),
        fx.Dense(120, 84, fx.relu, init=_const(p["d2"][0])),
        fx.Dense(84, 10, init=_const(p["d3"][0])),
    )
    x, y = fx.tensor(d["w3_x"]), fx.tensor(d["w3_y"])
    return _trainer(model, fx.Adam(), lambda m: fx.losses.logitcrossentropy(m(x), y))


def w4(d, variant):
    import flux_rs as fx
    model = {"w": fx.tensor(d["w4_x"])}
    g = {"w": fx.tensor(d["w4_g"])}
    st = fx.setup(fx.Adam(), model)
    return lambda: fx.update_(st, model, g)


def w5(d, variant, n=1024):
    import flux_rs as fx
    a, b = fx.tensor(d["w5_a"][:n, :n].copy()), fx.tensor(d["w5_b"][:n, :n].copy())
    return lambda: a @ b


def w5b(d, variant):
    return w5(d, variant, n=2048)


def w7(d, variant):
    import flux_rs as fx
    p = d["w7_weights"]
    dense = lambda w, σ=fx.identity: fx.Dense(w.shape[1], w.shape[0], σ, init=_const(w))  # noqa: E731
    proj = iter([p["wq"], p["wk"], p["wv"], p["wo"]])

    class Block:
        def __init__(self):
            self.ln1 = fx.LayerNorm(128)
            self.attn = fx.MultiHeadAttention(128, nheads=4, bias=True, init=lambda *s: next(proj).copy())
            self.ln2 = fx.LayerNorm(128)
            self.ff = fx.Chain(dense(p["w1"], fx.gelu), dense(p["w2"]))
            self.head = dense(p["wh"])

        def __call__(self, x):
            h = x + self.attn(self.ln1(x))[0]
            h = h + self.ff(self.ln2(h))
            return self.head(h.mean(dims=1))

    x, y = fx.tensor(d["w7_x"]), fx.tensor(d["w7_y"])
    return _trainer(Block(), fx.Adam(), lambda m: fx.losses.logitcrossentropy(m(x), y))


def w10(d, variant):
    import flux_rs as fx
    model = _mlp(d["w10_weights"], fx.relu)
    x, y = fx.tensor(d["w10_x"]), fx.tensor(d["w10_y"])
    return _trainer(model, fx.Adam(), lambda m: fx.losses.logitcrossentropy(m(x), y))


def w6(d, variant, parallel=False):
    import flux_rs as fx
    model = _mlp(d["w1_weights"], fx.relu)
    st = fx.setup(fx.Adam(), model)
    loader = fx.DataLoader((d["w6_x"], d["w6_y"]), batchsize=128, shuffle=True, rng=fx.Rng(0), parallel=parallel)

    def epoch():
        for x, y in loader:
            # the data stays out of the differentiated arguments, as in Flux's train!
            g = fx.gradient(lambda m: fx.losses.logitcrossentropy(m(x), y), model)
            fx.update_(st, model, g[0])
    return epoch


def w6p(d, variant):
    return w6(d, variant, parallel=True)


def w6t(d, variant):
    """W6 through `fx.train_` (issue 12: within 5 % of W6's hand-written loop)."""
    import flux_rs as fx
    model = _mlp(d["w1_weights"], fx.relu)
    st = fx.setup(fx.Adam(), model)
    loader = fx.DataLoader((d["w6_x"], d["w6_y"]), batchsize=128, shuffle=True, rng=fx.Rng(0))

    def loss(m, x, y):
        return fx.losses.logitcrossentropy(m(x), y)

    return lambda: fx.train_(loss, model, loader, st, progress=False)


class _LastState:
    """W8's model: an LSTM whose last hidden state feeds a Dense head."""

    def __init__(self, lstm, head):
        self.lstm, self.head = lstm, head

    def __call__(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h)


def w8(d, variant):
    import flux_rs as fx
    (wi, wh, b), (wd, bd) = d["w8_lstm"], d["w8_head"]
    lstm = fx.LSTM(wi.shape[1], wh.shape[1], return_state=True, init_kernel=_const(wi), init_recurrent_kernel=_const(wh))
    model = _LastState(lstm, fx.Dense(wd.shape[1], wd.shape[0], init=_const(wd)))
    x, y = fx.tensor(d["w8_x"]), fx.tensor(d["w8_y"])
    return _trainer(model, fx.Adam(), lambda m: fx.losses.logitcrossentropy(m(x), y))


def w9(d, variant):
    import flux_rs as fx
    p = d["w9_weights"]
    model = fx.Chain(
        fx.Conv((3, 3), 3, 32, pad=1, init=_const(p["c1"][0])), fx.BatchNorm(32, fx.relu),
        fx.Conv((3, 3), 32, 64, pad=1, init=_const(p["c2"][0])), fx.BatchNorm(64, fx.relu),
        fx.MaxPool((2, 2)),
        fx.Conv((3, 3), 64, 64, pad=1, init=_const(p["c3"][0])),
        fx.GlobalMeanPool(), fx.flatten,
        fx.Dense(64, 10, init=_const(p["d"][0])),
    )
    x, y = fx.tensor(d["w9_x"]), fx.tensor(d["w9_y"])
    return _trainer(model, fx.Adam(), lambda m: fx.losses.logitcrossentropy(m(x), y))


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W5b": w5b, "W6": w6, "W6p": w6p, "W6t": w6t, "W7": w7, "W9": w9, "W10": w10, "W8": w8}
