"""Shared pieces of the benchmark harness: thread pinning (done before any numeric
library is imported), the workloads' data, timing and table formatting.

Every engine gets the same numpy arrays (same seed), so the peers and flux_rs do the
same arithmetic on the same numbers.
"""
from __future__ import annotations

import os
import statistics
import time


def pin_threads(n: int) -> None:
    """Give every engine `n` threads. Must run before numpy, torch, jax or flux_rs is
    imported: their thread pools read these variables once, at start-up."""
    n = str(n)
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[var] = n
    # XLA's CPU client has no thread-count flag: it sizes its pool from the cores this
    # process may use (the affinity set below); with 1 thread turn the pool off.
    if int(n) == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # Fewer threads than cores: confine the whole process (all engines alike) to the
    # first n cores, so no runtime can use more than the others.
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if int(n) < len(cpus):
            os.sched_setaffinity(0, cpus[: int(n)])
    except (AttributeError, OSError):
        pass


# ---- the workloads' data -------------------------------------------------------------

def glorot(rng, out: int, inp: int):
    import numpy as np
    lim = (6.0 / (out + inp)) ** 0.5
    return rng.uniform(-lim, lim, size=(out, inp)).astype(np.float32)


def mlp_weights(sizes, seed=0):
    """[(W (out, in), b (out,)), ...] for an MLP with layer widths `sizes`."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return [(glorot(rng, o, i), np.zeros(o, np.float32)) for i, o in zip(sizes[:-1], sizes[1:])]


def lstm_data(seed=8, batch=32, seq=50, inp=32, hidden=128, classes=10):
    """W8's model and batch: LSTM kernels Wi (4·hidden, inp), Wh (4·hidden, hidden) and
    bias (Flux's and PyTorch's gate order), the Dense head, x (batch, seq, inp), one-hot y."""
    import numpy as np
    rng = np.random.default_rng(seed)
    lstm = (glorot(rng, 4 * hidden, inp), glorot(rng, 4 * hidden, hidden), np.zeros(4 * hidden, np.float32))
    head = (glorot(rng, classes, hidden), np.zeros(classes, np.float32))
    x = rng.standard_normal((batch, seq, inp), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]
    return {"w8_lstm": lstm, "w8_head": head, "w8_x": x, "w8_y": y}


def classification_data(n: int, features: int, classes: int, seed=1):
    """x (n, features) float32 and one-hot y (n, classes) float32."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return x, y


def lenet_weights(seed=0):
    """LeNet-5 as in Flux's model zoo: conv 5×5 1→6 relu, maxpool 2, conv 5×5 6→16 relu,
    maxpool 2, flatten (256), dense 120 relu, 84 relu, 10. Conv weights (out, in, k, k)."""
    import numpy as np
    rng = np.random.default_rng(seed)

    def conv(o, i, k):
        lim = (6.0 / ((i + o) * k * k)) ** 0.5
        return rng.uniform(-lim, lim, size=(o, i, k, k)).astype(np.float32), np.zeros(o, np.float32)

    return {
        "c1": conv(6, 1, 5), "c2": conv(16, 6, 5),
        "d1": (glorot(rng, 120, 256), np.zeros(120, np.float32)),
        "d2": (glorot(rng, 84, 120), np.zeros(84, np.float32)),
        "d3": (glorot(rng, 10, 84), np.zeros(10, np.float32)),
    }


def transformer_weights(d=128, ff=512, classes=10, seed=0):
    """W7's pre-LayerNorm encoder block and head: attention projections wq..wo (d, d)
    with biases, LayerNorms ln1/ln2 (γ ones, β zeros), the GELU MLP w1 (ff, d), w2 (d,
    ff), the head wh (classes, d); biases zero."""
    import numpy as np
    rng = np.random.default_rng(seed)
    z = lambda n: np.zeros(n, np.float32)  # noqa: E731
    p = {k: glorot(rng, d, d) for k in ("wq", "wk", "wv", "wo")}
    p.update({k: z(d) for k in ("bq", "bk", "bv", "bo", "ln1_b", "ln2_b", "b2")})
    p.update(ln1_g=np.ones(d, np.float32), ln2_g=np.ones(d, np.float32), w1=glorot(rng, ff, d), b1=z(ff),
             w2=glorot(rng, d, ff), wh=glorot(rng, classes, d), bh=z(classes))
    return p


def cnn_bn_weights(seed=0):
    """W9's CNN: conv 3×3 3→32 pad 1, BatchNorm, relu, conv 3×3 32→64 pad 1, BatchNorm,
    relu, maxpool 2, conv 3×3 64→64 pad 1, global mean pool, dense 64→10. Conv weights
    (out, in, k, k) Glorot-uniform with zero biases; BatchNorm γ = 1, β = 0."""
    import numpy as np
    rng = np.random.default_rng(seed)

    def conv(o, i, k):
        lim = (6.0 / ((i + o) * k * k)) ** 0.5
        return rng.uniform(-lim, lim, size=(o, i, k, k)).astype(np.float32), np.zeros(o, np.float32)

    return {
        "c1": conv(32, 3, 3), "c2": conv(64, 32, 3), "c3": conv(64, 64, 3),
        "d": (glorot(rng, 10, 64), np.zeros(10, np.float32)),
    }


# ---- timing --------------------------------------------------------------------------

# Seconds of untimed calls an engine gets after a pause before it is timed: on this VM a
# runtime whose workers sleep (rayon, Eigen) runs slowly for 50–200 ms after idle
# (see run_workload in run.py and the profiling notes in BENCHMARKS.md).
REWARM = 0.25


def rewarm(fn, seconds: float = REWARM) -> None:
    """Untimed calls of `fn` for `seconds` (at least one)."""
    t_end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < t_end:
        fn()


def time_call(fn, inner: int) -> float:
    """Seconds per call of `fn`, averaged over `inner` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def summary(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def fmt_time(s: float, unit: str) -> str:
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    v = s * scale
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def cell(st, unit: str) -> str:
    if st is None:
        return "—"
    if isinstance(st, str):
        return st
    return f"{fmt_time(st['median'], unit)} ({fmt_time(st['min'], unit)}–{fmt_time(st['max'], unit)})"


def markdown_table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])
