"""CPU time per call of benches/run.py's workloads, for builds of flux_rs side by side and
their peers: a figure that a loaded machine barely moves, where wall times shift by 2–5×
(on this shared 2-core VM the hardware counters of `perf stat` are not available). Also
the minor page faults per call and how much of the process sits on transparent huge pages.

Each (workload, engine) runs in its own process, engines one after another, `--rounds`
times alternating, so that load drifts touch every engine alike. An engine is `flux`
(the flux_rs found on PYTHONPATH), `flux:DIR` (the flux_rs package under DIR: two
builds side by side), or a peer variant of run.py (`torch`, `torch-fused`, `jax`, `numpy`).

    PYTHONPATH=python /work/bench-venv/bin/python benches/cpu_time.py \\
        --workloads W5b,W10 --engines flux:/tmp/before,flux,torch --rounds 3

CPU time counts every thread of the process, so a runtime that spins while it waits
(OpenMP in torch, OpenBLAS) pays for its spinning here and not in wall time: compare
builds of one engine by CPU time, engines by wall time on a quiet machine (run.py).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, os, resource, sys, time
w, eng, calls, threads, here = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
if eng.startswith("flux:"):
    sys.path.insert(0, eng[5:])
sys.argv = [os.path.join(here, "run.py"), "--quick", "--threads", threads]
sys.path.insert(0, here)
import run  # pins the threads, as a run does
mod = run.importlib.import_module("eng_flux" if eng.startswith("flux") else
                                  "eng_" + {"torch-fused": "torch"}.get(eng, eng))
if hasattr(mod, "setup_threads"):
    mod.setup_threads(int(threads))
d = run.make_data(True)
f = mod.WORKLOADS[w](d, "flux_rs" if eng.startswith("flux") else eng)
run.rewarm(f, 0.5)
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

CALLS = {"W1": 200, "W2": 2000, "W3": 100, "W4": 50, "W5": 40, "W5b": 10, "W7": 40, "W8": 40, "W9": 10, "W10": 10}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default="W5b", help="comma-separated run.py workloads (W1–W10, W5b)")
    p.add_argument("--engines", default="flux,torch", help="comma-separated: flux, flux:DIR, torch, torch-fused, jax, numpy")
    p.add_argument("--calls", type=int, default=0, help="timed calls per process (default: per workload, ≈ 1 s quiet)")
    p.add_argument("--rounds", type=int, default=3, help="processes per engine, alternating")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    start = os.getloadavg()
    for w in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        calls = args.calls or CALLS.get(w, 20)
        res = {e: [] for e in engines}
        for _ in range(args.rounds):
            for e in engines:
                out = subprocess.run([sys.executable, "-c", CHILD, w, e, str(calls), str(args.threads), HERE],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"{w} {e} failed:\n{out.stderr[-3000:]}")
                res[e].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"\n{w}: {args.threads} threads, {calls} calls × {args.rounds} processes per engine")
        print(f"{'engine':28} {'wall med':>9} {'wall min':>9} {'CPU/call':>9} {'sys/call':>9} {'faults':>7} {'THP MiB':>8}  (ms)")
        for e, rs in res.items():
            walls = [x for r in rs for x in r["wall"]]
            print(f"{e:28} {statistics.median(walls) * 1e3:9.2f} {min(walls) * 1e3:9.2f} "
                  f"{statistics.median(r['cpu'] for r in rs) * 1e3:9.2f} {statistics.median(r['sys'] for r in rs) * 1e3:9.2f} "
                  f"{statistics.median(r['minflt'] for r in rs):7.0f} {statistics.median(r['huge_mib'] for r in rs):8.0f}")
    end = os.getloadavg()
    print(f"\nload average {start[0]:.1f} at start, {end[0]:.1f} at end")


if __name__ == "__main__":
    main()
