"""`a @ b` on n×n float32 matrices, the result allocated per call (W5b's shape), timed in
wall time and in CPU time per call, with the minor page faults per call and how much of the
process sits on transparent huge pages: figures that a loaded machine barely moves, where
wall times shift by 2–5×.

Each engine runs in its own process, one after another, `--rounds` times alternating, so
that load drifts touch every engine alike. An engine is `flux` (the flux_rs found on
PYTHONPATH), `flux:DIR` (the flux_rs package under DIR: two builds side by side),
`torch` or `numpy`.

    PYTHONPATH=python /work/bench-venv/bin/python benches/matmul_cpu.py \\
        --engines flux:/tmp/before,flux,torch --n 2048 --calls 10 --rounds 3

CPU time counts every thread of the process, so an OpenMP pool that spins while it waits
(torch) pays for its spinning here and not in wall time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, resource, sys, time
eng, n, calls, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import numpy as np
rng = np.random.default_rng(0)
A = rng.standard_normal((n, n), dtype=np.float32)
B = rng.standard_normal((n, n), dtype=np.float32)
if eng == "torch":
    import torch
    torch.set_num_threads(threads)
    a, b = torch.from_numpy(A), torch.from_numpy(B)
    f = lambda: torch.mm(a, b)
elif eng == "numpy":
    f = lambda: A @ B
else:
    if eng.startswith("flux:"):
        sys.path.insert(0, eng[5:])
    import flux_rs as fx
    a, b = fx.tensor(A), fx.tensor(B)
    f = lambda: a @ b
for _ in range(3):
    f()
walls = []
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(calls):
    t = time.perf_counter()
    f()
    walls.append(time.perf_counter() - t)
r1 = resource.getrusage(resource.RUSAGE_SELF)
huge = 0
try:
    with open("/proc/self/smaps_rollup") as fh:
        huge = next(int(l.split()[1]) for l in fh if l.startswith("AnonHugePages:")) * 1024
except (OSError, StopIteration):
    pass
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(json.dumps({"wall": walls, "cpu": cpu / calls, "sys": (r1.ru_stime - r0.ru_stime) / calls,
                  "minflt": (r1.ru_minflt - r0.ru_minflt) / calls, "huge_mib": huge / 2**20}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default="flux,torch", help="comma-separated: flux, flux:DIR, torch, numpy")
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--calls", type=int, default=10, help="timed calls per process")
    p.add_argument("--rounds", type=int, default=3, help="processes per engine, alternating")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    env = dict(os.environ, **{v: str(args.threads) for v in
                              ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")})
    res = {e: [] for e in engines}
    for _ in range(args.rounds):
        for e in engines:
            out = subprocess.run([sys.executable, "-c", CHILD, e, str(args.n), str(args.calls), str(args.threads)],
                                 env=env, capture_output=True, text=True, check=True)
            res[e].append(json.loads(out.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    print(f"n={args.n}, {args.threads} threads, {args.calls} calls × {args.rounds} processes per engine; "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'engine':28} {'wall med':>9} {'wall min':>9} {'CPU/call':>9} {'sys/call':>9} {'faults':>7} {'THP MiB':>8}")
    for e, rs in res.items():
        walls = [w for r in rs for w in r["wall"]]
        cpu = statistics.median(r["cpu"] for r in rs)
        print(f"{e:28} {statistics.median(walls) * 1e3:8.1f}  {min(walls) * 1e3:8.1f}  {cpu * 1e3:8.1f}  "
              f"{statistics.median(r['sys'] for r in rs) * 1e3:8.2f}  {statistics.median(r['minflt'] for r in rs):6.0f}  "
              f"{statistics.median(r['huge_mib'] for r in rs):7.0f}")


if __name__ == "__main__":
    main()
