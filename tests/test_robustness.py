"""Bad input gives a clear Python exception, never a Rust panic: random operations on
random shapes (empty and 0-d included) either work or raise ValueError, TypeError or
IndexError."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import flux_rs as fx

CLEAN = (ValueError, TypeError, IndexError)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)

OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "matmul": lambda a, b: a @ b,
    "max": lambda a, b: fx.maximum(a, b),
    "cat0": lambda a, b: fx.cat([a, b], 0),
    "cat_last": lambda a, b: fx.cat([a, b], -1),
    "stack": lambda a, b: fx.stack([a, b], 0),
    "sum": lambda a, b: a.sum(dims=b.ndim),
    "mean_keep": lambda a, b: a.mean(dims=(0, -1), keepdims=True),
    "maxr": lambda a, b: a.max(dims=0),
    "reshape": lambda a, b: a.reshape(*b.shape),
    "reshape_infer": lambda a, b: a.reshape(-1, max(b.size, 1)),
    "transpose": lambda a, b: a.transpose(*range(b.ndim)),
    "index": lambda a, b: a[b.ndim],
    "slice": lambda a, b: a[..., 1:],
    "fancy": lambda a, b: a[[0, -1]],
    "softmax": lambda a, b: fx.softmax(a, dims=b.ndim - 1),
    "argmax": lambda a, b: a.argmax(b.ndim - 1),
    "item": lambda a, b: a.item(),
    "dense": lambda a, b: fx.Dense(2, 3)(a),
    "mse": lambda a, b: fx.losses.mse(a, b),
    "xent": lambda a, b: fx.losses.logitcrossentropy(a, b),
    "grad": lambda a, b: fx.gradient(lambda x: (x * b).sum(), a),
    "update": lambda a, b: fx.update_(fx.setup(fx.Adam(), [a]), [a], [b]),
    "apply": lambda a, b: fx.optimise.apply(fx.Momentum(), fx.optimise.init(fx.Momentum(), a.numpy()), a.numpy(), b.numpy()),
    "onehot": lambda a, b: fx.onehotbatch(np.asarray(b).ravel().astype(int), range(2)),
    "loader": lambda a, b: list(fx.DataLoader((a, b), batchsize=2)),
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # dtype conversions and small-data warnings are expected here
@settings(max_examples=300, deadline=None)
@given(shapes, shapes, st.sampled_from(sorted(OPS)), st.sampled_from(["float32", "float64"]))
def test_random_ops_never_panic(sa, sb, op, dt):
    a = fx.tensor(np.random.default_rng(0).normal(size=sa), dt)
    b = fx.tensor(np.random.default_rng(1).normal(size=sb), dt)
    try:
        OPS[op](a, b)
    except CLEAN:
        pass


def test_nan_and_inf_flow_through_without_errors():
    t = fx.tensor(np.array([np.nan, np.inf, -np.inf, 0.0]))
    assert np.isnan(np.asarray(fx.relu(t))[0]) and np.asarray(fx.sigmoid(t))[1] == 1.0
    assert np.isnan(t.sum().item()) and np.isnan(fx.softmax(t).numpy()).any()


def _run_py(code: str):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_from_a_thread_that_exits_then_train_on_the_main_thread():
    # the importing thread joins rayon's pool as worker 0; when it is gone, the pool's
    # other workers still run the main thread's parallel ops
    r = _run_py(
        "import threading, numpy as np\n"
        "t = threading.Thread(target=lambda: __import__('flux_rs')); t.start(); t.join()\n"
        "import flux_rs as fx\n"
        "a = fx.tensor(np.ones((512, 512), np.float32))\n"
        "print(float((a @ a).sum()))\n")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) == 512.0 ** 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_parallel_ops_work_in_a_forked_child():
    # rayon's workers do not survive fork; the child's main thread (worker 0) does the work
    r = _run_py(
        "import os, numpy as np, flux_rs as fx\n"
        "a = fx.tensor(np.ones((512, 512), np.float32)); a @ a\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(float((a @ a).sum()), flush=True); os._exit(0)\n"
        "os.waitpid(pid, 0)\n")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) == 512.0 ** 3
