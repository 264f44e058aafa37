"""Data-parallel scaling of flux_rs on MPI (BENCHMARKS.md, "Data-parallel training").

Run it once per rank count, one thread per rank, and compare:

    RAYON_NUM_THREADS=1 mpiexec -n 1 python benches/distributed.py
    RAYON_NUM_THREADS=1 mpiexec -n 2 python benches/distributed.py
    RAYON_NUM_THREADS=1 mpiexec -n 2 python benches/distributed.py --sweep   # bucket sizes, a large model

W1 is one step of the 784-512-512-10 relu MLP with Adam and logitcrossentropy at a
per-rank batch of 128, timed in its parts (gradient, allreduce_, update_); W6 is one
epoch of it over 60000×784 through a sharded DataLoader and train_(distributed=True),
so with n ranks each rank takes 60000 / (128·n) steps. The sweep times allreduce_ of a
gradient tree of 24 × (1024×1024 + 1024) float32 (25.2M parameters, 101 MB) for
several bucket sizes. Rank 0 prints markdown rows; medians with (min–max).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import flux_rs as fx  # noqa: E402
import flux_rs.distributed as dist  # noqa: E402
from _common import classification_data, mlp_weights  # noqa: E402


def cell(xs, scale=1e3, fmt="{:.2f}"):
    return f"{fmt.format(statistics.median(xs) * scale)} ({fmt.format(min(xs) * scale)}–{fmt.format(max(xs) * scale)})"


def mlp():
    layers = []
    ws = mlp_weights([784, 512, 512, 10], seed=0)
    for i, (w, b) in enumerate(ws):
        layers.append(fx.Dense(w.shape[1], w.shape[0], fx.relu if i < len(ws) - 1 else fx.identity,
                               init=lambda *s, w=w: w.copy()))
    return fx.Chain(*layers)


def w1(rounds):
    model = mlp()
    st = fx.setup(fx.Adam(), model)
    x, y = classification_data(128, 784, 10, seed=1 + dist.rank())
    x, y = fx.tensor(x), fx.tensor(y)
    loss = lambda m: fx.losses.logitcrossentropy(m(x), y)  # noqa: E731
    parts = {"gradient": [], "allreduce_": [], "update_": [], "step": [], "wait": [], "transfer": []}
    for i in range(2 * rounds + 6):
        # even rounds: a step as train_ takes it; odd rounds: a barrier before allreduce_
        # splits its time into waiting for the slower rank and the reduction itself
        split = i % 2 == 1
        dist.barrier()
        t0 = time.perf_counter()
        g = fx.gradient(loss, model)
        t1 = time.perf_counter()
        if split:
            dist.barrier()
        tb = time.perf_counter()
        dist.allreduce_(g[0])
        t2 = time.perf_counter()
        fx.update_(st, model, g[0])
        t3 = time.perf_counter()
        if i < 6:  # warm-up
            continue
        if split:
            parts["wait"].append(tb - t1)
            parts["transfer"].append(t2 - tb)
        else:
            for k, dt in zip(("gradient", "allreduce_", "update_", "step"), (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                parts[k].append(dt)
    return parts


def w6(rounds):
    model = mlp()
    st = fx.setup(fx.Adam(), model)
    x, y = classification_data(60000, 784, 10, seed=6)
    loader = fx.DataLoader((x, y), batchsize=128, shuffle=True, rng=0, shard=(dist.rank(), dist.size()))
    loss = lambda m, x, y: fx.losses.logitcrossentropy(m(x), y)  # noqa: E731
    times = []
    for _ in range(rounds):
        dist.barrier()
        t0 = time.perf_counter()
        fx.train_(loss, model, loader, st, distributed=True, progress=False)
        times.append(time.perf_counter() - t0)
    return times, len(loader)


def sweep(rounds):
    rng = np.random.default_rng(dist.rank())
    tree = [(fx.tensor(rng.standard_normal((1024, 1024), dtype=np.float32)),
             fx.tensor(rng.standard_normal(1024, dtype=np.float32))) for _ in range(24)]
    caps = (256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 0)
    out = {cap: [] for cap in caps}
    for i in range(rounds + 1):
        for cap in caps:  # interleaved, so that a change in the machine's load hits every size alike
            dist.barrier()
            t0 = time.perf_counter()
            dist.allreduce_(tree, bucket_bytes=cap)
            if i:
                out[cap].append(time.perf_counter() - t0)
    # the Rust side alone: pack every bucket and unpack it back (no MPI)
    flat = [t for pair in tree for t in pair]
    ts = []
    for i in range(rounds + 1):
        t0 = time.perf_counter()
        bk = fx._core.Buckets(flat, dist.DEFAULT_BUCKET_BYTES)
        for j, (m, dt) in enumerate(zip(bk.sizes, bk.dtypes)):
            buf = np.empty(m, dtype=dt)
            bk.pack(j, buf)
            bk.unpack(j, buf, 0.5)
        if i:
            ts.append(time.perf_counter() - t0)
    out["pack+unpack"] = ts
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--w6-rounds", type=int, default=3)
    ap.add_argument("--sweep", action="store_true")
    a = ap.parse_args()
    dist.init()
    n = dist.size()
    say = print if dist.rank() == 0 else (lambda *a, **k: None)
    threads = os.environ.get("RAYON_NUM_THREADS")
    if a.sweep:
        say(f"allreduce_ of 25.2M float32 parameters (101 MB), {n} ranks, {threads} thread each, ms")
        for cap, ts in sweep(max(3, a.rounds // 4)).items():
            name = cap if isinstance(cap, str) else "one per dtype (0)" if cap == 0 else f"{cap >> 10} KiB"
            say(f"| {name} | {cell(ts)} | {101e6 / statistics.median(ts) / 1e9:.2f} GB/s |")
        return
    parts = w1(a.rounds)
    share = statistics.median(np.array(parts["allreduce_"]) / np.array(parts["step"]))
    tshare = statistics.median(parts["transfer"]) / statistics.median(parts["step"])
    say(f"| {n} | W1 step | {cell(parts['step'])} | {cell(parts['gradient'])} | {cell(parts['allreduce_'])} | "
        f"{cell(parts['update_'])} | {share:.1%} | {cell(parts['wait'])} | {cell(parts['transfer'])} | {tshare:.1%} |")
    times, steps = w6(a.w6_rounds)
    say(f"| {n} | W6 epoch | {cell(times, 1, '{:.2f}')} s | {steps} steps of 128 per rank | "
        f"{60000 / statistics.median(times):.0f} samples/s |")


if __name__ == "__main__":
    main()
