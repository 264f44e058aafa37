"""flux_rs on the GPU (wgpu) against PyTorch CUDA, for a session that has an NVIDIA GPU.

    PYTHONPATH=python /work/bench-venv/bin/python benches/gpu_bench.py              # full run
    PYTHONPATH=python python benches/gpu_bench.py --smoke                             # tiny sizes, any adapter

Per workload (W1, W3, W7, W10 of BENCHMARKS.md, each at batch 128 and 1024): one Adam
training step with the model, the optimiser state and the batch on the GPU and only the
loss read back (the read-back is what makes a step wait for the GPU), flux_rs and
PyTorch CUDA alternating in one run (float32, TF32 off), medians and the ratio
torch/flux_rs (≥ 0.5 is issue 13's target). Then the Adam update of a 100M-element
vector against the memory-bandwidth bound: Adam reads x, g, m, v and writes x, m, v
(28 bytes an element); the bound is those bytes at the bandwidth of a device-to-device
copy measured on the same GPU (torch's when CUDA is there, else a flux_rs copy kernel).

Columns that cannot run say why (no CUDA: the torch column is skipped with the reason
printed; a layer without a GPU kernel yet: the flux_rs error). On Mesa's lavapipe (a CPU
Vulkan device) the figures are NOT performance figures: --smoke exists to check that
the script runs end to end (CI runs it so).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes and 1 round: checks the script, measures nothing")
    p.add_argument("--rounds", type=int, default=20, help="timed steps per engine (alternating)")
    p.add_argument("--batches", default="128,1024", help="comma-separated batch sizes")
    p.add_argument("--only", default="", help="comma-separated workloads (W1,W3,W7,W10,update)")
    p.add_argument("--update-n", type=int, default=100_000_000, help="elements of the optimiser-update vector")
    p.add_argument("--markdown", default="", help="also write the table to this file")
    return p.parse_args(argv)


# ---- the workloads: (name, description, data maker, flux model maker, torch model maker)

def _mlp_sizes(name, smoke):
    if smoke:
        return [16, 8, 8, 10]
    return {"W1": [784, 512, 512, 10], "W10": [1024, 2048, 2048, 10]}[name]


def _data(name, batch, smoke, rng):
    if name in ("W1", "W10"):
        x = rng.standard_normal((batch, _mlp_sizes(name, smoke)[0]), dtype=np.float32)
    elif name == "W3":
        x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
    else:  # W7: (batch, seq, d) with d = 128 (16 in a smoke run)
        seq, d = (8, 16) if smoke else (64, 128)
        x = rng.standard_normal((batch, seq, d), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    y = np.zeros((batch, 10), dtype=np.float32)
    y[np.arange(batch), labels] = 1.0
    return x, y, labels


def _flux_model(name, smoke):
    import flux_rs as fx
    if name in ("W1", "W10"):
        s = _mlp_sizes(name, smoke)
        return fx.Chain(*[fx.Dense(s[i], s[i + 1], fx.relu if i < len(s) - 2 else fx.identity) for i in range(len(s) - 1)])
    if name == "W3":
        return fx.Chain(fx.Conv((5, 5), 1, 6, fx.relu), fx.MaxPool((2, 2)), fx.Conv((5, 5), 6, 16, fx.relu),
                        fx.MaxPool((2, 2)), fx.flatten, fx.Dense(256, 120, fx.relu), fx.Dense(120, 84, fx.relu),
                        fx.Dense(84, 10))
    d, ff = (16, 32) if smoke else (128, 512)

    class Block:  # W7: pre-LayerNorm encoder block, mean-pooled, a Dense head
        def __init__(self):
            self.ln1, self.ln2 = fx.LayerNorm(d), fx.LayerNorm(d)
            self.attn = fx.MultiHeadAttention(d, nheads=4, bias=True)
            self.ff = fx.Chain(fx.Dense(d, ff, fx.gelu), fx.Dense(ff, d))
            self.head = fx.Dense(d, 10)

        def __call__(self, x):
            h = x + self.attn(self.ln1(x))[0]
            h = h + self.ff(self.ln2(h))
            return self.head(h.mean(dims=1))
    return Block()


def _torch_model(name, smoke):
    import torch.nn as nn
    if name in ("W1", "W10"):
        s = _mlp_sizes(name, smoke)
        layers = []
        for i in range(len(s) - 1):
            layers.append(nn.Linear(s[i], s[i + 1]))
            if i < len(s) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    if name == "W3":
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))
    d, ff = (16, 32) if smoke else (128, 512)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, 4, bias=True, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
            self.head = nn.Linear(d, 10)

        def forward(self, x):
            a = self.ln1(x)
            h = x + self.attn(a, a, a, need_weights=False)[0]
            h = h + self.ff(self.ln2(h))
            return self.head(h.mean(dim=1))
    return Block()


# ---- one training step per engine (a zero-argument function returning the loss)

def flux_step(name, x, y, smoke):
    import flux_rs as fx
    model = fx.gpu(_flux_model(name, smoke))
    st = fx.setup(fx.Adam(), model)
    xg, yg = fx.gpu((x, y))
    loss = lambda m: fx.losses.logitcrossentropy(m(xg), yg)  # noqa: E731

    def step():
        val, grads = fx.withgradient(loss, model)
        fx.update_(st, model, grads[0])
        return float(val)  # the one read-back: waits for the step's kernels
    return step


def torch_step(name, x, labels, smoke):
    import torch
    dev = torch.device("cuda")
    model = _torch_model(name, smoke).to(dev)
    opt = torch.optim.Adam(model.parameters())
    xt = torch.from_numpy(x).to(dev)
    yt = torch.from_numpy(labels).to(dev)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()  # synchronises, like flux_rs's read-back
    return step


def torch_cuda():
    """(True, device name) when PyTorch can use CUDA, else (False, why not)."""
    try:
        import torch
    except ImportError as e:
        return False, f"PyTorch not importable ({e})"
    if not torch.cuda.is_available():
        return False, f"PyTorch {torch.__version__} sees no CUDA device"
    # float32 as flux_rs computes it: no TF32 in matmuls or convolutions
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return True, torch.cuda.get_device_name(0)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(steps, rounds, warmup=2):
    """Median seconds per step of each engine, alternating engines every round."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            times[k].append(_timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


# ---- the optimiser update against the bandwidth bound

def update_rows(n, rounds, cuda):
    import flux_rs as fx
    rows = []
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32) * 1e-3
    model = fx.gpu({"w": fx.tensor(x)})
    grad = {"w": fx.gpu(fx.tensor(g))}
    st = fx.setup(fx.Adam(), model)

    def flux_update():
        fx.update_(st, model, grad)
        float(model["w"][0])  # waits for the update (reads back one element)

    def flux_copy():
        float((-model["w"])[0])  # reads n, writes n: 8 bytes an element
    steps = {"flux_rs Adam update": flux_update, "flux_rs copy": flux_copy}
    if cuda:
        import torch
        xt = torch.from_numpy(x).cuda()
        yt = torch.empty_like(xt)

        def torch_copy():
            yt.copy_(xt)
            torch.cuda.synchronize()
        steps["torch copy"] = torch_copy
    t = compare(steps, rounds)
    copy_key = "torch copy" if cuda else "flux_rs copy"
    bandwidth = 8 * n / t[copy_key]
    bound = 28 * n / bandwidth
    rows.append((f"Adam update of {n:,} f32", f"{t['flux_rs Adam update'] * 1e3:.3f} ms",
                 f"bound {bound * 1e3:.3f} ms at {bandwidth / 1e9:.1f} GB/s ({copy_key})",
                 f"{t['flux_rs Adam update'] / bound:.2f}× the bound (target ≤ 1.3×)"))
    return rows


def main(argv=None):
    a = _parse(argv)
    import flux_rs as fx
    if not fx.gpu_available():
        print("SKIPPED: flux_rs has no GPU adapter; nothing to measure")
        return 0
    # (the adapter's name: `cargo run --release -p flux-core --features wgpu --example gpu_step`)
    print("flux_rs GPU: available (on Mesa's lavapipe, a CPU Vulkan device, times are not GPU figures)")
    cuda, why = torch_cuda()
    print(f"PyTorch CUDA: {why}" if cuda else f"PyTorch CUDA column skipped: {why}")
    rounds = 1 if a.smoke else a.rounds
    batches = [4] if a.smoke else [int(b) for b in a.batches.split(",")]
    only = {w.strip() for w in a.only.split(",") if w.strip()}
    rng = np.random.default_rng(0)
    rows = []
    for name in ("W1", "W3", "W7", "W10"):
        if only and name not in only:
            continue
        for batch in batches:
            x, y, labels = _data(name, batch, a.smoke, rng)
            steps, notes = {}, []
            try:
                steps["flux_rs"] = flux_step(name, x, y, a.smoke)
                steps["flux_rs"]()  # an op without a GPU kernel fails here, not mid-timing
            except Exception as e:  # noqa: BLE001 (reported in the table)
                steps.pop("flux_rs", None)
                notes.append(f"flux_rs: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            if cuda:
                steps["torch"] = torch_step(name, x, labels, a.smoke)
            t = compare(steps, rounds) if steps else {}
            fl, tc = t.get("flux_rs"), t.get("torch")
            ratio = f"{tc / fl:.2f}×" if fl and tc else "—"
            rows.append((f"{name} batch {batch}", f"{fl * 1e3:.2f} ms" if fl else "—",
                         f"{tc * 1e3:.2f} ms" if tc else ("skipped: " + why if not cuda else "—"),
                         ratio + ("; " + "; ".join(notes) if notes else "")))
    if not only or "update" in only:
        rows += update_rows(100_000 if a.smoke else a.update_n, rounds, cuda)
    head = ("workload", "flux_rs (wgpu)", "PyTorch CUDA", "speed torch/flux_rs (target ≥ 0.5×)")
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    print("\n".join(table))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
