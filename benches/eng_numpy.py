"""numpy by hand: forward, backward and the optimiser written out with numpy's
matmul (OpenBLAS) and in-place ufuncs, as a careful user would. No convolution (W3)."""
from __future__ import annotations

import numpy as np

NAME = "numpy"
VARIANTS = ("numpy",)


class NotAvailable(Exception):
    pass


def available():
    return True, ""


class _Adam:
    """Adam in place with preallocated temporaries (Optimisers.jl's formula)."""

    def __init__(self, params, eta=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.p, self.eta, self.b1, self.b2, self.eps = params, eta, b1, b2, eps
        self.m = [np.zeros_like(x) for x in params]
        self.v = [np.zeros_like(x) for x in params]
        self.tmp = [np.empty_like(x) for x in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.b1, self.b2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for x, g, m, v, tmp in zip(self.p, grads, self.m, self.v, self.tmp):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.divide(v, c2, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= self.eta / c1
            x -= tmp


def _mlp_grads(params, x, y, act, act_grad, loss):
    """Forward and backward of an MLP; `loss(out, y)` returns (value, dL/dout)."""
    hs, zs = [x], []
    h = x
    for i, (w, b) in enumerate(params):
        z = h @ w.T
        z += b
        zs.append(z)
        h = act(z) if i < len(params) - 1 else z
        hs.append(h)
    val, g = loss(h, y)
    grads = []
    for i in range(len(params) - 1, -1, -1):
        w, _ = params[i]
        if i < len(params) - 1:
            g = act_grad(zs[i], hs[i + 1], g)
        grads.append((g.T @ hs[i], g.sum(0)))
        if i > 0:
            g = g @ w
    return val, [t for wb in reversed(grads) for t in wb]


def _logitce(z, y):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    s = e.sum(1, keepdims=True)
    val = -(y * (z - np.log(s))).sum() / z.shape[0]
    return val, (e / s - y) / z.shape[0]


def _relu(z):
    return np.maximum(z, 0)


def _relu_grad(z, h, g):
    return g * (z > 0)


def _w1_stepper(weights):
    params = [(w.copy(), b.copy()) for w, b in weights]
    opt = _Adam([t for wb in params for t in wb])

    def step(x, y):
        _, gs = _mlp_grads(params, x, y, _relu, _relu_grad, _logitce)
        opt.step(gs)
    return step


def w1(d, variant):
    step = _w1_stepper(d["w1_weights"])
    x, y = d["w1_x"], d["w1_y"]
    return lambda: step(x, y)


def w2(d, variant):
    params = [(w.copy(), b.copy()) for w, b in d["w2_weights"]]
    x, y = d["w2_x"], d["w2_y"]
    flat = [t for wb in params for t in wb]

    def mse(out, y):
        r = out - y
        return (r * r).mean(), r * (2.0 / r.size)

    def step():
        _, gs = _mlp_grads(params, x, y, np.tanh, lambda z, h, g: g * (1 - h * h), mse)
        for p, g in zip(flat, gs):
            p -= np.float32(0.1) * g
    return step


def w3(d, variant):
    raise NotAvailable("n/a")


def w4(d, variant):
    x = d["w4_x"].copy()
    opt = _Adam([x])
    g = [d["w4_g"]]
    return lambda: opt.step(g)


def w5(d, variant, n=1024):
    a, b = d["w5_a"][:n, :n].copy(), d["w5_b"][:n, :n].copy()
    return lambda: a @ b


def w5b(d, variant):
    return w5(d, variant, n=2048)


def w6(d, variant):
    step = _w1_stepper(d["w1_weights"])
    X, Y = d["w6_x"], d["w6_y"]
    n = X.shape[0]
    rng = np.random.default_rng(0)

    def epoch():
        perm = rng.permutation(n)
        for i in range(0, n, 128):
            idx = perm[i:i + 128]
            step(X[idx], Y[idx])
    return epoch


WORKLOADS = {"W1": w1, "W2": w2, "W4": w4, "W5": w5, "W5b": w5b, "W6": w6, "W3": w3}
