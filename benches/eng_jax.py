"""JAX with jit and optax: each step is one jitted function (forward, backward and
the optimiser), parameters and state donated; every call waits for its result."""
from __future__ import annotations

NAME = "jax"
VARIANTS = ("jax",)


class NotAvailable(Exception):
    pass


def available():
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as e:
        return False, f"JAX/optax not installed ({e.name})"
    return True, ""


def _mlp_params(weights):
    import jax.numpy as jnp
    return [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]


def _mlp_apply(params, x, act):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i < len(params) - 1:
            h = act(h)
    return h


def _trainer(params, opt, lossf):
    """A stateful one-step closure around a jitted (params, state, batch) → new step."""
    import jax
    import optax

    def step(params, state, x, y):
        loss, g = jax.value_and_grad(lossf)(params, x, y)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    box = [params, opt.init(params)]

    def run(x, y):
        box[0], box[1], loss = step(box[0], box[1], x, y)
        loss.block_until_ready()
    return run


def w1(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    lossf = lambda p, x, y: optax.softmax_cross_entropy(_mlp_apply(p, x, jax.nn.relu), y).mean()  # noqa: E731
    run = _trainer(_mlp_params(d["w1_weights"]), optax.adam(1e-3), lossf)
    x, y = jnp.asarray(d["w1_x"]), jnp.asarray(d["w1_y"])
    return lambda: run(x, y)


def w2(d, variant):
    import jax.numpy as jnp
    import optax
    lossf = lambda p, x, y: jnp.mean((_mlp_apply(p, x, jnp.tanh) - y) ** 2)  # noqa: E731
    run = _trainer(_mlp_params(d["w2_weights"]), optax.sgd(0.1), lossf)
    x, y = jnp.asarray(d["w2_x"]), jnp.asarray(d["w2_y"])
    return lambda: run(x, y)


def w3(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax
    p = {k: (jnp.asarray(w), jnp.asarray(b)) for k, (w, b) in d["w3_weights"].items()}

    def conv(h, wb):
        w, b = wb
        y = lax.conv_general_dilated(h, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jax.nn.relu(y + b[None, :, None, None])

    def pool(h):
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def lossf(p, x, y):
        h = pool(conv(pool(conv(x, p["c1"])), p["c2"])).reshape(x.shape[0], -1)
        h = jax.nn.relu(h @ p["d1"][0].T + p["d1"][1])
        h = jax.nn.relu(h @ p["d2"][0].T + p["d2"][1])
        return optax.softmax_cross_entropy(h @ p["d3"][0].T + p["d3"][1], y).mean()

    run = _trainer(p, optax.adam(1e-3), lossf)
    x, y = jnp.asarray(d["w3_x"]), jnp.asarray(d["w3_y"])
    return lambda: run(x, y)


def w4(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    opt = optax.adam(1e-3)

    def upd(x, state, g):
        u, state = opt.update(g, state, x)
        return optax.apply_updates(x, u), state

    upd = jax.jit(upd, donate_argnums=(0, 1))
    x = jnp.asarray(d["w4_x"])
    box = [x, opt.init(x)]
    g = jnp.asarray(d["w4_g"])

    def step():
        box[0], box[1] = upd(box[0], box[1], g)
        box[0].block_until_ready()
    return step


def w5(d, variant, n=1024):
    import jax
    import jax.numpy as jnp
    a, b = jnp.asarray(d["w5_a"][:n, :n]), jnp.asarray(d["w5_b"][:n, :n])
    mm = jax.jit(jnp.matmul)
    return lambda: mm(a, b).block_until_ready()


def w5b(d, variant):
    return w5(d, variant, n=2048)


def w7(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    p = {k: jnp.asarray(v) for k, v in d["w7_weights"].items()}

    def ln(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / jnp.sqrt(v + 1e-5) * g + b

    def heads(t, B, L):
        return t.reshape(B, L, 4, 32).transpose(0, 2, 1, 3)

    def lossf(p, x, y):
        B, L, D = x.shape
        h = ln(x, p["ln1_g"], p["ln1_b"])
        q, k, v = (heads(h @ p["w" + c].T + p["b" + c], B, L) for c in "qkv")
        a = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(32.0), axis=-1)
        x = x + (a @ v).transpose(0, 2, 1, 3).reshape(B, L, D) @ p["wo"].T + p["bo"]
        h = ln(x, p["ln2_g"], p["ln2_b"])
        x = x + jax.nn.gelu(h @ p["w1"].T + p["b1"], approximate=True) @ p["w2"].T + p["b2"]
        return optax.softmax_cross_entropy(x.mean(1) @ p["wh"].T + p["bh"], y).mean()

    run = _trainer(p, optax.adam(1e-3), lossf)
    x, y = jnp.asarray(d["w7_x"]), jnp.asarray(d["w7_y"])
    return lambda: run(x, y)


def w10(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    lossf = lambda p, x, y: optax.softmax_cross_entropy(_mlp_apply(p, x, jax.nn.relu), y).mean()  # noqa: E731
    run = _trainer(_mlp_params(d["w10_weights"]), optax.adam(1e-3), lossf)
    x, y = jnp.asarray(d["w10_x"]), jnp.asarray(d["w10_y"])
    return lambda: run(x, y)


def w6(d, variant):
    import jax
    import numpy as np
    import optax
    lossf = lambda p, x, y: optax.softmax_cross_entropy(_mlp_apply(p, x, jax.nn.relu), y).mean()  # noqa: E731
    run = _trainer(_mlp_params(d["w1_weights"]), optax.adam(1e-3), lossf)
    X, Y = d["w6_x"], d["w6_y"]
    n = X.shape[0]
    rng = np.random.default_rng(0)

    def epoch():
        perm = rng.permutation(n)
        for i in range(0, n, 128):  # numpy batching, the usual JAX input pipeline
            idx = perm[i:i + 128]
            run(X[idx], Y[idx])
    return epoch


def w8(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax
    (wi, wh, b), (wd, bd) = d["w8_lstm"], d["w8_head"]
    p = {"lstm": tuple(jnp.asarray(a) for a in (wi, wh, b)), "head": (jnp.asarray(wd), jnp.asarray(bd))}

    def lossf(p, x, y):
        wi, wh, b = p["lstm"]
        gx = jnp.swapaxes(x @ wi.T + b, 0, 1)  # (time, batch, 4·hidden): all steps' input projection
        h0 = jnp.zeros((x.shape[0], wh.shape[1]), x.dtype)

        def cell(state, g):
            h, c = state
            i, f, gg, o = jnp.split(g + h @ wh.T, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None

        (h, _), _ = lax.scan(cell, (h0, h0), gx)
        return optax.softmax_cross_entropy(h @ p["head"][0].T + p["head"][1], y).mean()

    run = _trainer(p, optax.adam(1e-3), lossf)
    x, y = jnp.asarray(d["w8_x"]), jnp.asarray(d["w8_y"])
    return lambda: run(x, y)


def w9(d, variant):
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax
    p = {k: (jnp.asarray(w), jnp.asarray(b)) for k, (w, b) in d["w9_weights"].items()}
    p["bn1"] = (jnp.ones(32), jnp.zeros(32))
    p["bn2"] = (jnp.ones(64), jnp.zeros(64))
    stats = {"bn1": (jnp.zeros(32), jnp.ones(32)), "bn2": (jnp.zeros(64), jnp.ones(64))}

    def conv(h, wb):
        w, b = wb
        y = lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def bn(h, gb, st, m=0.1):
        # training mode: batch statistics, running statistics updated (unbiased variance)
        g, b = gb
        mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3))
        n = h.size // h.shape[1]
        y = (h - mean[None, :, None, None]) * lax.rsqrt(var + 1e-5)[None, :, None, None]
        new = ((1 - m) * st[0] + m * mean, (1 - m) * st[1] + m * var * n / (n - 1))
        return jax.nn.relu(y * g[None, :, None, None] + b[None, :, None, None]), lax.stop_gradient(new)

    def lossf(p, st, x, y):
        h, s1 = bn(conv(x, p["c1"]), p["bn1"], st["bn1"])
        h, s2 = bn(conv(h, p["c2"]), p["bn2"], st["bn2"])
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = conv(h, p["c3"]).mean((2, 3))
        loss = optax.softmax_cross_entropy(h @ p["d"][0].T + p["d"][1], y).mean()
        return loss, {"bn1": s1, "bn2": s2}

    opt = optax.adam(1e-3)

    def step(params, state, st, x, y):
        (loss, st), g = jax.value_and_grad(lossf, has_aux=True)(params, st, x, y)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, st, loss

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    box = [p, opt.init(p), stats]
    x, y = jnp.asarray(d["w9_x"]), jnp.asarray(d["w9_y"])

    def run():
        box[0], box[1], box[2], loss = step(box[0], box[1], box[2], x, y)
        loss.block_until_ready()
    return run



WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W5b": w5b, "W6": w6, "W7": w7, "W9": w9, "W10": w10, "W8": w8}
