"""The paths of ``fx.update_`` on the W2 model (MLP 2-32-1, four parameters): a built-in
rule (the fused Rust step), the same rule with every ``leaf.state`` held by the caller
(its arrays then live in those Tensors and are swapped in for each step), and the same
rule written in Python (``class PyMomentum(fx.Rule)``, Tensor operations, called back
from Rust for each parameter). One process, the variants alternating in rounds; medians
of µs per ``update_`` call, and the fastest round (on a busy machine the least
disturbed one).

    python benches/update_paths.py [--rounds 31] [--calls 500] [--builtin-only]

``--builtin-only`` runs the first path alone, so that the same command measures a
build from before Python rules and held states existed (see BENCHMARKS.md).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import pin_threads  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402

import flux_rs as fx  # noqa: E402


def variants(builtin_only: bool):
    x, y = np.ones((1, 2), np.float32), np.zeros((1, 1), np.float32)

    def make(rule, hold=False):
        m = fx.Chain(fx.Dense(2, 32, fx.tanh), fx.Dense(32, 1))
        g = fx.gradient(lambda m: fx.losses.mse(m(x), y), m)[0]
        st = fx.setup(rule, m)
        held = [l.state for l in (st.layers[0].weight, st.layers[0].bias, st.layers[1].weight, st.layers[1].bias)] if hold else None
        return lambda: (fx.update_(st, m, g), held)

    out = {"Momentum": make(fx.Momentum(1e-6)), "Adam": make(fx.Adam(1e-6))}
    if builtin_only:
        return out

    class PyMomentum(fx.Rule):
        def __init__(self, eta=0.01, rho=0.9):
            self.eta, self.rho = eta, rho

        def init(self, x):
            return x * 0.0

        def apply(self, v, x, dx):
            v = self.rho * v + self.eta * dx
            return v, v

    out["Momentum, states held"] = make(fx.Momentum(1e-6), hold=True)
    out["Adam, states held"] = make(fx.Adam(1e-6), hold=True)
    out["PyMomentum (Python rule)"] = make(PyMomentum(1e-6))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--builtin-only", action="store_true")
    a = ap.parse_args()
    vs = variants(a.builtin_only)
    times: dict[str, list[float]] = {k: [] for k in vs}
    for f in vs.values():
        for _ in range(a.calls):
            f()
    for _ in range(a.rounds):
        for k, f in vs.items():
            t0 = time.perf_counter()
            for _ in range(a.calls):
                f()
            times[k].append((time.perf_counter() - t0) / a.calls * 1e6)
    print(f"{'update_ of MLP 2-32-1':28s} {'µs/call median':>15s} {'fastest':>8s} {'slowest':>8s}")
    for k, ts in times.items():
        print(f"{k:28s} {statistics.median(ts):15.2f} {min(ts):8.2f} {max(ts):8.2f}")


if __name__ == "__main__":
    main()
