"""The traffic floor of W4 (Adam over 10M float32): the C kernel in floor.c, compiled
on first use with the system C compiler (`cc`). Without a compiler, a numpy proxy:
an in-place `a += b` (2 reads, 1 write) timed and scaled by 7/3 to the 7 array
transfers of Adam. The proxy is a bound from bandwidth, not a kernel, and says so."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _build():
    src = os.path.join(HERE, "floor.c")
    code = open(src, "rb").read()
    out = os.path.join(tempfile.gettempdir(), f"flux_bench_floor_{hashlib.sha1(code).hexdigest()[:12]}.so")
    if os.path.exists(out):
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    tmp = out + f".{os.getpid()}"
    r = subprocess.run([cc, "-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", "-pthread", src, "-o", tmp, "-lm"],
                       capture_output=True)
    if r.returncode != 0:
        return None
    os.replace(tmp, out)
    return out


def make(d, threads: int):
    """(step function, scale, description) for the floor at `threads` threads: the floor
    is the step's time multiplied by scale."""
    import numpy as np
    lib_path = _build()
    x, g = d["w4_x"].copy(), d["w4_g"]
    if lib_path is not None:
        lib = ctypes.CDLL(lib_path)
        f = lib.adam_floor
        fp = ctypes.POINTER(ctypes.c_float)
        f.argtypes = [fp, fp, fp, fp, ctypes.c_size_t, ctypes.c_int] + [ctypes.c_float] * 6
        m, v = np.zeros_like(x), np.zeros_like(x)
        ptr = lambda a: a.ctypes.data_as(fp)  # noqa: E731
        args = (ptr(x), ptr(g), ptr(m), ptr(v), x.size, threads, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001)
        return (lambda: f(*args)), 1.0, "C one-pass Adam kernel (4 reads, 3 writes), benches/floor.c"
    a = x

    def proxy():
        np.add(a, g, out=a)
    return proxy, 7.0 / 3.0, "numpy proxy: in-place a += b scaled by 7/3 (no C compiler found)"
