"""Measurements that need a fresh process, run by run.py as
`python benches/_probe.py MODE ENGINE THREADS`; prints one JSON line.

  import  seconds to import the engine (numpy included where the engine uses it)
  first   W1: seconds of the first training step after building the model (the first
          gradient, with any compilation), and the median of steps 21–40
  rss     peak resident set of a process that runs 20 W1 steps (MB)
"""
from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

IMPORTS = {"flux_rs": ["flux_rs"], "torch": ["torch"], "jax": ["jax", "optax"], "numpy": ["numpy"]}


def peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM belongs to the address space, so it starts
    fresh at exec; getrusage's ru_maxrss would carry over the (large) parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    mode, engine, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, HERE)
    from _common import pin_threads
    pin_threads(threads)
    if mode == "import":
        t0 = time.perf_counter()
        for m in IMPORTS[engine]:
            __import__(m)
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        return
    import importlib
    import statistics
    import numpy as np
    from _common import classification_data, mlp_weights
    mod = importlib.import_module({"flux_rs": "eng_flux", "torch": "eng_torch", "jax": "eng_jax", "numpy": "eng_numpy"}[engine])
    if hasattr(mod, "setup_threads"):
        mod.setup_threads(threads)
    x, y = classification_data(128, 784, 10)
    d = {"w1_weights": mlp_weights([784, 512, 512, 10]), "w1_x": x, "w1_y": y}
    step = mod.WORKLOADS["W1"](d, mod.VARIANTS[0])
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(20):  # the steady state is after a warm-up, as in run.py
        step()
    ts = []
    for _ in range(20):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    if mode == "first":
        print(json.dumps({"first": first, "steady": statistics.median(ts)}))
    elif mode == "rss":
        print(json.dumps({"mb": peak_rss_mb()}))
    _ = np


if __name__ == "__main__":
    main()
