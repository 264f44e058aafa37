"""One rank of the data-parallel tests (tests/test_distributed.py starts it under
`mpiexec -n 2` with a timeout). `python _dist_worker.py OUT main` runs every
scenario and writes each rank's results to OUT/rank<r>.npz for the test to check;
`... OUT die-kill` and `... OUT die-raise` lose rank 1 mid-training."""
import os
import signal
import sys

import numpy as np

import flux_rs as fx

dist = None  # flux_rs.distributed, imported when run as a rank (the test imports this file for its data)
B, STEPS = 4, 20  # per-rank batch and steps: 2 ranks, so a global batch of 8


def data(dtype):
    """The whole data set; every rank holds it, the sharded loader picks each rank's part."""
    g = np.random.default_rng(0)
    x = g.standard_normal((2 * B * STEPS, 5)).astype(dtype)
    y = g.standard_normal((2 * B * STEPS, 3)).astype(dtype)
    return x, y


def mlp(dtype):
    m = fx.Chain(fx.Dense(5, 8, fx.tanh), fx.Dense(8, 3))
    return as64(m) if dtype == np.float64 else m


def params(m):
    return [np.asarray(p) for p in fx.trainables(m)]


def loss(m, x, y):
    return fx.losses.mse(m(x), y)


def as64(m):
    """The model in float64: its parameters replaced by float64 copies."""
    for layer in m.layers:
        layer.weight = fx.tensor(np.asarray(layer.weight, dtype=np.float64))
        layer.bias = fx.tensor(np.asarray(layer.bias, dtype=np.float64))
    return m


def main(r, n, out):
    res = {}
    # --- the sharded loader: this rank's observations, two epochs, the default rng (dist.init() seeded it alike)
    loader = fx.DataLoader(np.arange(40), batchsize=3, shuffle=True, shard=(r, n))
    res["shard_len"] = np.array(len(loader))
    for e in range(2):
        bs = [np.asarray(b) for b in loader]
        res[f"shard_nbatches_{e}"] = np.array(len(bs))
        res[f"shard_epoch_{e}"] = np.concatenate(bs)

    # --- broadcast_: different initialisations become rank 0's ---------------------------
    for dt, tag in ((np.float32, "f32"), (np.float64, "f64")):
        for rule_name, rule in (("adam", fx.Adam(0.01)), ("momentum", fx.Momentum(0.05, 0.9))):
            fx.seed(100 + r)  # a different model on each rank
            m = mlp(dt)
            res[f"before_{tag}_{rule_name}"] = np.concatenate([p.ravel() for p in params(m)])
            dist.broadcast_(m)
            init = params(m)
            for i, p in enumerate(init):
                res[f"init_{tag}_{rule_name}_{i}"] = p
            st = fx.setup(rule, m)
            x, y = data(dt)
            loader = fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=7, shard=(r, n))
            res[f"losses_{tag}_{rule_name}"] = np.array(fx.train_(loss, m, loader, st, distributed=True, progress=False))
            for i, p in enumerate(params(m)):
                res[f"final_{tag}_{rule_name}_{i}"] = p

    # --- the same by hand: withgradient, allreduce_, update_ -------------------------------
    fx.seed(100 + r)
    m = mlp(np.float64)
    dist.broadcast_(m)
    st = fx.setup(fx.Momentum(0.05, 0.9), m)
    x, y = data(np.float64)
    for xb, yb in fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=7, shard=(r, n)):
        _, grads = fx.withgradient(lambda m: loss(m, xb, yb), m)
        dist.allreduce_(grads[0])
        fx.update_(st, m, grads[0])
    for i, p in enumerate(params(m)):
        res[f"manual_f64_momentum_{i}"] = p

    # --- broadcast_ of an optimiser state (arrays and step counts) -------------------------
    fx.seed(5)
    m = mlp(np.float64)
    st = fx.setup(fx.Adam(0.01), m)
    x, y = data(np.float64)
    steps = 1 + r  # rank 1 takes one step more: states differ in arrays and in βᵗ
    fx.train_(loss, m, [(x[:B], y[:B])] * steps, st, progress=False)
    dist.broadcast_(st)
    res["adam_state"] = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64))
                                        for leaf in [st.layers[0].weight, st.layers[1].bias]
                                        for v in leaf.state])

    # --- allreduce_: sum and mean, None kept, mixed dtypes, many buckets --------------------
    g = (fx.tensor(np.full((3, 2), r + 1.0, dtype=np.float32)), None,
         {"b": fx.tensor(np.arange(5.0) * (r + 1)), "c": None}, [fx.tensor(np.full(7, 2.0 * r, dtype=np.float32))])
    dist.allreduce_(g, bucket_bytes=16)  # 16 bytes: several buckets
    res["mean_a"], res["mean_b"], res["mean_c"] = np.asarray(g[0]), np.asarray(g[2]["b"]), np.asarray(g[3][0])
    res["none_kept"] = np.array([g[1] is None, g[2]["c"] is None])
    dist.allreduce_(g, op="sum", bucket_bytes=0)
    res["sum_a"] = np.asarray(g[0])
    # a tree whose form differs across ranks raises on every rank instead of hanging
    try:
        dist.allreduce_((fx.tensor(np.ones(2)), None if r == 0 else fx.tensor(np.ones(3))))
        res["mismatch"] = np.array(0)
    except ValueError:
        res["mismatch"] = np.array(1)

    # --- ranks with different numbers of batches are refused on every rank ----------------
    try:
        fx.train_(loss, m, [(x[:B], y[:B])] * (3 + r), st, distributed=True, progress=False)
        res["uneven"] = np.array(0)
    except ValueError as e:
        res["uneven"] = np.array(1 if "different numbers of batches [3, 4]" in str(e) else 2)

    # --- sharded loaders that do not fit together are refused on every rank --------------
    for name, loader in (("wrong_shard", fx.DataLoader((x, y), batchsize=B, shard=(0, n))),
                         ("rank_rngs", fx.DataLoader((x, y), batchsize=B, shuffle=True, rng=r, shard=(r, n)))):
        try:
            fx.train_(loss, m, loader, st, distributed=True, progress=False)
            res[name] = np.array(0)
        except ValueError as e:
            res[name] = np.array(1 if ("shard=(0, 2)" in str(e) if name == "wrong_shard" else "overlap" in str(e)) else 2)

    # --- a NaN on rank 1 raises on both ranks at the same batch, earlier updates kept ------
    fx.seed(3)
    m = mlp(np.float64)
    dist.broadcast_(m)
    for i, p in enumerate(params(m)):
        res[f"nan_init_{i}"] = p
    st = fx.setup(fx.Momentum(0.05, 0.9), m)
    x, y = data(np.float64)
    x = x.copy()
    bad_step = 5
    # unshuffled, rank 1's batch 5 is rows [5·2B + B, 5·2B + 2B)
    x[bad_step * 2 * B + B] = np.nan
    loader = fx.DataLoader((x, y), batchsize=B, shard=(r, n))
    try:
        fx.train_(loss, m, loader, st, distributed=True, progress=False)
        res["nan_index"], res["nan_rank"] = np.array(-1), np.array(-1)
    except fx.NonFiniteLossError as e:
        res["nan_index"], res["nan_rank"] = np.array(e.index), np.array(e.rank)
    for i, p in enumerate(params(m)):
        res[f"nan_final_{i}"] = p

    # --- checkpoints: written on rank 0, read on every rank --------------------------------
    path = os.path.join(out, "ckpt.safetensors")
    fx.seed(11 + r)
    m = fx.Dense(3, 2)
    dist.save(path, fx.state(m))
    m2 = fx.Dense(3, 2)
    fx.loadmodel_(m2, fx.load(path))
    res["ckpt_weight"] = np.asarray(m2.weight)

    np.savez(os.path.join(out, f"rank{r}.npz"), **res)
    dist.barrier()


def die(r, n, how, out):
    fx.seed(1)
    m = mlp(np.float32)
    dist.broadcast_(m)
    st = fx.setup(fx.Descent(0.1), m)
    x, y = data(np.float32)

    def dying_loss(m, x, y):
        dying_loss.calls += 1
        if r == 1 and dying_loss.calls == 3:
            open(os.path.join(out, "dying1"), "w").close()  # the test checks it got this far
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose")
        return loss(m, x, y)
    dying_loss.calls = 0
    loader = fx.DataLoader((x, y), batchsize=B, shard=(r, n))
    for _ in range(50):  # far longer than the test waits: only a failure ends it early
        fx.train_(dying_loss, m, loader, st, distributed=True, progress=False)
    open(os.path.join(out, f"finished{r}"), "w").close()


if __name__ == "__main__":
    import flux_rs.distributed as dist
    out, mode = sys.argv[1], sys.argv[2]
    dist.init()
    if mode == "main":
        main(dist.rank(), dist.size(), out)
    else:
        die(dist.rank(), dist.size(), mode.split("-")[1], out)
