#!/usr/bin/env python
"""One BatchNorm(C, relu) training step (forward and backward) on (64, C, H, H) float32,
median of 15 after 3 warm-up calls, in whatever flux_rs this process imports: run it
alternately against two builds (PYTHONPATH=<build>/python) to compare them.

    python benches/batchnorm_step.py 64 32     # C = 64, H = 32: prints milliseconds
"""
import sys
import time

import numpy as np

import flux_rs as fx


def main():
    c, h = int(sys.argv[1]), int(sys.argv[2])
    x = fx.tensor(np.random.default_rng(0).standard_normal((64, c, h, h)).astype(np.float32))
    bn = fx.BatchNorm(c, fx.relu)

    def step():
        return fx.gradient(lambda m, x: m(x).sum(), bn, x)
    for _ in range(3):
        step()
    ts = []
    for _ in range(15):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    print(f"{1e3 * np.median(ts):.2f}")


if __name__ == "__main__":
    main()
