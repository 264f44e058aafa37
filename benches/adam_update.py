"""Adam update of one 10,000,000-element float32 vector via fx.update_, against the
one-pass memory-traffic bound and PyTorch's fused Adam, in one run.

    python benches/adam_update.py [--n 10000000] [--reps 15]

Traffic bound: a one-pass Adam reads g, x, m, v and writes x, m, v: 7 float32 = 28 bytes
per element. The machine's bandwidth is measured in the same run with
``np.add(a, b, out=c)`` (reads 2 arrays, writes 1: 12 bytes/element) — a copy-based
proxy, single-threaded, so it is a floor on what one core streams, not a roofline.
Runs alternate between engines in rounds, each engine re-warmed for 0.25 s before its
turn; medians are reported.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import rewarm  # noqa: E402


def bench(f, reps):
    rewarm(f)  # every engine alike: workers that slept while another engine ran wake slowly
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return ts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=15)
    a = ap.parse_args()
    n, reps = a.n, a.reps

    import flux_rs as fx
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)

    model = [fx.tensor(x0.copy())]
    state = fx.setup(fx.Adam(1e-3), model)
    gt = fx.tensor(g)
    engines = {"flux_rs": lambda: fx.update_(state, model, [gt])}

    a1, b1, c1 = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    engines["numpy add (bandwidth)"] = lambda: np.add(a1, b1, out=c1)

    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        p = torch.nn.Parameter(torch.from_numpy(x0.copy()))
        p.grad = torch.from_numpy(g.copy())
        try:
            opt = torch.optim.Adam([p], lr=1e-3, fused=True)
            opt.step()
            tname = "torch Adam(fused=True)"
        except RuntimeError as e:  # fused CPU Adam needs a recent torch
            print("torch fused Adam unavailable on CPU:", e)
            opt = torch.optim.Adam([p], lr=1e-3, foreach=True)
            tname = "torch Adam(foreach=True)"
        engines[tname] = opt.step
        tv = torch.__version__
    except ImportError:
        tv = None

    times = {k: [] for k in engines}
    rounds = 5
    for _ in range(rounds):  # alternate: rounds of every engine
        for k, f in engines.items():
            times[k] += bench(f, max(1, reps // rounds))
    med = {k: statistics.median(v) for k, v in times.items()}
    bw = 12 * n / med["numpy add (bandwidth)"]
    bound = 28 * n / bw
    print(f"n = {n:,} float32, {os.cpu_count()} cpus, torch {tv or 'not importable'}")
    print(f"bandwidth proxy (np.add, 12 B/elt): {bw / 1e9:.2f} GB/s -> 28 B/elt bound {bound * 1e3:.2f} ms")
    for k, v in med.items():
        if k.startswith("numpy"):
            continue
        print(f"{k:28s} median {v * 1e3:8.2f} ms   = {v / bound:.2f}x the bound   "
              f"({28 * n / v / 1e9:.2f} GB/s effective)")
    if tv:
        tk = [k for k in med if k.startswith("torch")][0]
        print(f"flux_rs / {tk}: {med['flux_rs'] / med[tk]:.2f}x")


if __name__ == "__main__":
    main()
