"""Runs fuzz cases for tests/test_fuzz.py in a process of its own: reads a JSON list of
Python snippets, runs each after the prelude, and reports on stdout, one line per case,
`start i` before it and `done i <outcome>` after. A case that kills the process leaves
a `start` without its `done`, which the parent counts as a crash."""
import json
import sys
import warnings

PRELUDE = """
import numpy as np, flux_rs as fx
T = lambda *s: fx.tensor(np.arange(float(np.prod(s))).reshape(s) / 7.0)
T32 = lambda *s: fx.tensor(np.arange(float(np.prod(s)), dtype=np.float32).reshape(s) / 7.0)
"""


def outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    name = type(exc).__name__
    if name == "PanicException" or "Rust panic" in str(exc):
        return "panic:" + str(exc)[:300].replace("\n", " ")
    if not isinstance(exc, Exception):
        return "base:" + name
    return "raised:" + name


def main():
    cases = json.load(open(sys.argv[1]))
    start = int(sys.argv[2])
    warnings.simplefilter("ignore")
    ns: dict = {}
    exec(PRELUDE, ns)
    for i in range(start, len(cases)):
        print(f"start {i}", flush=True)
        try:
            exec(cases[i], dict(ns))
            res = outcome(None)
        except BaseException as e:  # noqa: BLE001 - classifying every outcome is the point
            res = outcome(e)
        print(f"done {i} {res}", flush=True)


if __name__ == "__main__":
    main()
