"""Train the MNIST MLP of train_mnist.py and save a picture of its loss and accuracy per epoch.

Uses the MNIST subset that ships in data/ (or `--data path/to/mnist.npz`); needs
matplotlib, the optional extra `pip install "flux_rs[plot]"`.

    python examples/plot_training.py --epochs 5 --out training.png
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

import flux_rs as fx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mnist import Array, accuracy, load  # noqa: E402  (the same data and metric as the README's command)

History = dict[str, list[float]]


def train(x_train: Array, y_train: Array, x_test: Array, y_test: Array, *, epochs: int, batchsize: int, eta: float,
          seed: int) -> History:
    """Train the MLP; returns the history {"loss", "train_acc", "test_acc"}, one entry per epoch."""
    fx.seed(seed)
    model = fx.Chain(fx.Dense(784, 256, fx.relu), fx.Dense(256, 10))
    opt_state = fx.setup(fx.Adam(eta), model)
    loader = fx.DataLoader((fx.tensor(x_train), fx.onehotbatch(y_train, range(10))),
                           batchsize=batchsize, shuffle=True, rng=seed)
    loss = lambda m, x, y: fx.losses.logitcrossentropy(m(x), y)  # noqa: E731
    history: History = {"loss": [], "train_acc": [], "test_acc": []}
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        losses = fx.train_(loss, model, loader, opt_state)
        history["loss"].append(float(np.mean(losses)))
        history["train_acc"].append(accuracy(model, x_train, y_train))
        history["test_acc"].append(accuracy(model, x_test, y_test))
        print(f"epoch {epoch}: mean loss {history['loss'][-1]:.4f}, train accuracy {history['train_acc'][-1]:.4f}, "
              f"test accuracy {history['test_acc'][-1]:.4f} ({time.perf_counter() - t0:.2f} s)")
    return history


def plot(history: History, out: str, title: str = "") -> None:
    """Loss (left) and accuracy (right) against the epoch, saved as a PNG at ``out``."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit('plot_training.py needs matplotlib: pip install "flux_rs[plot]" (or matplotlib)') from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    fig.suptitle(title)
    ax_loss.plot(epochs, history["loss"], "o-", color="tab:red")
    ax_loss.set(title="training loss (mean per epoch)", xlabel="epoch", ylabel="logit cross-entropy")
    ax_acc.plot(epochs, history["train_acc"], "o-", label="train")
    ax_acc.plot(epochs, history["test_acc"], "s-", label="test")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="fraction correct")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> History:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "data" / "mnist_subset.npz"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batchsize", type=int, default=128)
    ap.add_argument("--eta", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="train and test on the first LIMIT images only")
    ap.add_argument("--out", default="training.png", help="where the PNG goes")
    args = ap.parse_args(argv)

    x_train, y_train, x_test, y_test = load(args.data)
    if args.limit is not None:
        x_train, y_train, x_test, y_test = x_train[:args.limit], y_train[:args.limit], x_test[:args.limit], y_test[:args.limit]
    print(f"data: {len(x_train)} training and {len(x_test)} test images from {args.data}")
    history = train(x_train, y_train, x_test, y_test, epochs=args.epochs, batchsize=args.batchsize, eta=args.eta,
                    seed=args.seed)
    plot(history, args.out, f"MLP 784-256-10, Adam({args.eta}), batch {args.batchsize}: "
                            f"{len(x_train)} MNIST training images")
    print(f"saved {args.out}")
    return history


if __name__ == "__main__":
    main()
