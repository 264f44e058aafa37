"""PyTorch eager on the CPU. Two columns: `torch` (torch.optim defaults: on the CPU
the per-tensor for-loop Adam) and `torch-fused` (Adam(fused=True)); workloads without
Adam have no fused column. Classification targets are class indices, the idiomatic
(and fastest) form of F.cross_entropy: the same loss as the one-hot targets."""
from __future__ import annotations

NAME = "torch"
VARIANTS = ("torch", "torch-fused")
_ADAM_WORKLOADS = {"W1", "W3", "W4", "W6", "W7", "W8", "W9", "W10"}


class NotAvailable(Exception):
    pass


def available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False, "PyTorch not installed"
    return True, ""


def setup_threads(n: int):
    import torch
    torch.set_num_threads(n)


def _adam(params, variant):
    import torch
    return torch.optim.Adam(params, lr=1e-3, fused=True) if variant == "torch-fused" else torch.optim.Adam(params, lr=1e-3)


def _mlp(weights, act):
    import torch
    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def _train_step(model, opt, lossf, x, t):
    def step():
        opt.zero_grad(set_to_none=True)
        lossf(model(x), t).backward()
        opt.step()
    return step


def _check(w, variant):
    if variant == "torch-fused" and w not in _ADAM_WORKLOADS:
        raise NotAvailable("n/a")


def w1(d, variant):
    import torch
    import torch.nn.functional as F
    _check("W1", variant)
    model = _mlp(d["w1_weights"], torch.nn.ReLU)
    x, t = torch.from_numpy(d["w1_x"]), torch.from_numpy(d["w1_y"].argmax(1))
    return _train_step(model, _adam(model.parameters(), variant), F.cross_entropy, x, t)


def w2(d, variant):
    import torch
    import torch.nn.functional as F
    _check("W2", variant)
    model = _mlp(d["w2_weights"], torch.nn.Tanh)
    x, y = torch.from_numpy(d["w2_x"]), torch.from_numpy(d["w2_y"])
    return _train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), F.mse_loss, x, y)


def w3(d, variant):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    _check("W3", variant)
    p = d["w3_weights"]
    c1, c2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
    l1, l2, l3 = nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, 10)
    with torch.no_grad():
        for mod, key in ((c1, "c1"), (c2, "c2"), (l1, "d1"), (l2, "d2"), (l3, "d3")):
            mod.weight.copy_(torch.from_numpy(p[key][0]))
            mod.bias.copy_(torch.from_numpy(p[key][1]))
    model = nn.Sequential(c1, nn.ReLU(), nn.MaxPool2d(2), c2, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          l1, nn.ReLU(), l2, nn.ReLU(), l3)
    x, t = torch.from_numpy(d["w3_x"]), torch.from_numpy(d["w3_y"].argmax(1))
    return _train_step(model, _adam(model.parameters(), variant), F.cross_entropy, x, t)


def w4(d, variant):
    import torch
    _check("W4", variant)
    w = torch.nn.Parameter(torch.from_numpy(d["w4_x"].copy()))
    w.grad = torch.from_numpy(d["w4_g"])
    opt = _adam([w], variant)
    return opt.step


def w5(d, variant, n=1024):
    import torch
    _check("W5", variant)
    a, b = torch.from_numpy(d["w5_a"][:n, :n].copy()), torch.from_numpy(d["w5_b"][:n, :n].copy())
    return lambda: torch.mm(a, b)


def w5b(d, variant):
    return w5(d, variant, n=2048)


def w7(d, variant):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    _check("W7", variant)
    p = {k: torch.from_numpy(v) for k, v in d["w7_weights"].items()}

    def lin(i, o, w, b):
        m = nn.Linear(i, o)
        with torch.no_grad():
            m.weight.copy_(p[w])
            m.bias.copy_(p[b])
        return m

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(128), nn.LayerNorm(128)
            self.attn = nn.MultiheadAttention(128, 4, bias=True, batch_first=True)
            with torch.no_grad():
                self.attn.in_proj_weight.copy_(torch.cat([p["wq"], p["wk"], p["wv"]]))
                self.attn.in_proj_bias.copy_(torch.cat([p["bq"], p["bk"], p["bv"]]))
                self.attn.out_proj.weight.copy_(p["wo"])
                self.attn.out_proj.bias.copy_(p["bo"])
            self.ff = nn.Sequential(lin(128, 512, "w1", "b1"), nn.GELU(approximate="tanh"), lin(512, 128, "w2", "b2"))
            self.head = lin(128, 10, "wh", "bh")

        def forward(self, x):
            h = self.ln1(x)
            # need_weights=False: the fused SDPA path, as nn.TransformerEncoderLayer calls it
            h = x + self.attn(h, h, h, need_weights=False)[0]
            h = h + self.ff(self.ln2(h))
            return self.head(h.mean(1))

    model = Block()
    x, t = torch.from_numpy(d["w7_x"]), torch.from_numpy(d["w7_y"].argmax(1))
    return _train_step(model, _adam(model.parameters(), variant), F.cross_entropy, x, t)


def w10(d, variant):
    import torch
    import torch.nn.functional as F
    _check("W10", variant)
    model = _mlp(d["w10_weights"], torch.nn.ReLU)
    x, t = torch.from_numpy(d["w10_x"]), torch.from_numpy(d["w10_y"].argmax(1))
    return _train_step(model, _adam(model.parameters(), variant), F.cross_entropy, x, t)


def w6(d, variant):
    import torch
    import torch.nn.functional as F
    _check("W6", variant)
    model = _mlp(d["w1_weights"], torch.nn.ReLU)
    opt = _adam(model.parameters(), variant)
    X, T = torch.from_numpy(d["w6_x"]), torch.from_numpy(d["w6_y"].argmax(1))
    n = X.shape[0]
    gen = torch.Generator().manual_seed(0)

    def epoch():
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, 128):
            idx = perm[i:i + 128]
            x, t = X.index_select(0, idx), T.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), t).backward()
            opt.step()
    return epoch


def w8(d, variant):
    import torch
    import torch.nn.functional as F
    _check("W8", variant)
    (wi, wh, b), (wd, bd) = d["w8_lstm"], d["w8_head"]
    lstm = torch.nn.LSTM(wi.shape[1], wh.shape[1], batch_first=True)
    head = torch.nn.Linear(wd.shape[1], wd.shape[0])
    with torch.no_grad():  # the same gate order (i, f, g, o); one bias, as flux_rs has
        lstm.weight_ih_l0.copy_(torch.from_numpy(wi))
        lstm.weight_hh_l0.copy_(torch.from_numpy(wh))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b))
        lstm.bias_hh_l0.zero_()
        head.weight.copy_(torch.from_numpy(wd))
        head.bias.copy_(torch.from_numpy(bd))

    class LastState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = lstm, head

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[0])

    model = LastState()
    x, t = torch.from_numpy(d["w8_x"]), torch.from_numpy(d["w8_y"].argmax(1))
    return _train_step(model, _adam(model.parameters(), variant), F.cross_entropy, x, t)


def w9(d, variant):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    _check("W9", variant)
    p = d["w9_weights"]
    c1, c2, c3 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)
    lin = nn.Linear(64, 10)
    with torch.no_grad():
        for mod, key in ((c1, "c1"), (c2, "c2"), (c3, "c3"), (lin, "d")):
            mod.weight.copy_(torch.from_numpy(p[key][0]))
            mod.bias.copy_(torch.from_numpy(p[key][1]))
    model = nn.Sequential(c1, nn.BatchNorm2d(32), nn.ReLU(), c2, nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2), c3,
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), lin)
    model.train()
    x, t = torch.from_numpy(d["w9_x"]), torch.from_numpy(d["w9_y"].argmax(1))
    return _train_step(model, _adam(model.parameters(), variant), F.cross_entropy, x, t)


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W5b": w5b, "W6": w6, "W7": w7, "W9": w9, "W10": w10, "W8": w8}
