"""Train an MLP on MNIST with flux_rs and print the test accuracy.

By default it uses the 20,000/5,000-image subset of MNIST that ships in data/; pass
`--data path/to/mnist.npz` (keys x_train, y_train, x_test, y_test) for the full set.

    python examples/train_mnist.py --epochs 3
"""
import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

import flux_rs as fx


Array = np.ndarray[Any, Any]


def load(path: str) -> tuple[Array, Array, Array, Array]:
    d = np.load(path)

    def prep(x: Array) -> Array:
        return (x.reshape(len(x), -1) / 255.0).astype(np.float32)
    return prep(d["x_train"]), d["y_train"], prep(d["x_test"]), d["y_test"]


def accuracy(model: fx.Chain, x: Array, y: Array) -> float:
    return float(np.mean(np.asarray(fx.onecold(model(x))) == y))


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "data" / "mnist_subset.npz"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batchsize", type=int, default=128)
    ap.add_argument("--eta", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    fx.seed(args.seed)
    x_train, y_train, x_test, y_test = load(args.data)
    print(f"data: {len(x_train)} training and {len(x_test)} test images from {args.data}")

    model = fx.Chain(fx.Dense(784, 256, fx.relu), fx.Dense(256, 10))
    opt_state = fx.setup(fx.Adam(args.eta), model)
    loader = fx.DataLoader((fx.tensor(x_train), fx.onehotbatch(y_train, range(10))),
                           batchsize=args.batchsize, shuffle=True, rng=args.seed)

    def loss(m: fx.Chain, x: fx.Tensor, y: fx.Tensor) -> fx.Tensor:
        return fx.losses.logitcrossentropy(m(x), y)


    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        losses = fx.train_(loss, model, loader, opt_state)
        dt = time.perf_counter() - t0
        print(f"epoch {epoch}: mean loss {np.mean(losses):.4f}, test accuracy {accuracy(model, x_test, y_test):.4f} "
              f"({dt:.2f} s, {len(loader)} steps)")
    acc = accuracy(model, x_test, y_test)
    print(f"final test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
