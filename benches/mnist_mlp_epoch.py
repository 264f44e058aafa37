"""One epoch of the MNIST MLP 784-256-10 (relu, logitcrossentropy, Adam, batch 128,
shuffled) in flux_rs and in PyTorch, alternating, on the same data and thread count.
Prints medians and the ratio flux_rs/torch. Each epoch includes the batching.

    python benches/mnist_mlp_epoch.py [--data ../shared/data/mnist.npz] [--threads 2] [--repeats 5]

PyTorch is optional (a missing peer is reported and skipped); install it in a separate
environment, never in the project's.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mlp_weights, pin_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    pin_threads(args.threads)
    import numpy as np

    path = args.data if os.path.exists(args.data) else str(ROOT / "data" / "mnist_subset.npz")
    d = np.load(path)
    x = (d["x_train"].reshape(len(d["x_train"]), -1) / 255.0).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[d["y_train"]]
    (w1, b1), (w2, b2) = mlp_weights([784, 256, 10])
    print(f"data {path}: {len(x)} images; threads {args.threads}; {args.repeats} epochs each after one warm-up")

    import flux_rs as fx
    model = fx.Chain(fx.Dense(784, 256, fx.relu), fx.Dense(256, 10))
    model[0].weight, model[0].bias = fx.tensor(w1), fx.tensor(b1)
    model[1].weight, model[1].bias = fx.tensor(w2), fx.tensor(b2)
    state = fx.setup(fx.Adam(1e-3), model)
    loader = fx.DataLoader((fx.tensor(x), fx.tensor(y)), batchsize=128, shuffle=True, rng=0)
    loss = lambda m, x, y: fx.losses.logitcrossentropy(m(x), y)
    engines = {"flux_rs": lambda: fx.train_(loss, model, loader, state, progress=False)}

    try:
        import torch
        torch.set_num_threads(args.threads)
        tm = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        with torch.no_grad():
            for lin, (w, b) in zip((tm[0], tm[2]), ((w1, b1), (w2, b2))):
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
        opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(0)

        def torch_epoch():
            perm = torch.randperm(len(tx), generator=gen)
            for i in range(0, len(tx), 128):
                idx = perm[i:i + 128]
                xb, yb = tx[idx], ty[idx]
                opt.zero_grad(set_to_none=True)
                l = torch.nn.functional.cross_entropy(tm(xb), yb)
                l.backward()
                opt.step()

        engines[f"torch {torch.__version__}"] = torch_epoch
    except ImportError:
        print("PyTorch is not installed: only flux_rs is measured")

    times = {k: [] for k in engines}
    for f in engines.values():
        f()  # warm-up epoch
    for _ in range(args.repeats):
        for k, f in engines.items():  # alternate engines within each repeat
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    for k, ts in times.items():
        print(f"{k:24s} median {statistics.median(ts):7.3f} s   (min {min(ts):.3f}, max {max(ts):.3f})")
    names = list(times)
    if len(names) == 2:
        r = statistics.median(times[names[0]]) / statistics.median(times[names[1]])
        print(f"ratio flux_rs / torch: {r:.2f}")


if __name__ == "__main__":
    main()
