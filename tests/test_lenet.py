"""LeNet-5 on MNIST after 3 epochs (slow): ≥ 98.5% test accuracy on the full set,
LENET_SUBSET_ACC on the shipped subset."""
import time

import numpy as np
import pytest

import flux_rs as fx
from conftest import load_mnist


def lenet():
    return fx.Chain(
        fx.Conv((5, 5), 1, 6, fx.relu), fx.MaxPool((2, 2)),
        fx.Conv((5, 5), 6, 16, fx.relu), fx.MaxPool((2, 2)),
        fx.flatten,
        fx.Dense(256, 120, fx.relu), fx.Dense(120, 84, fx.relu), fx.Dense(84, 10))


def test_lenet_shapes_and_parameter_count():
    m = lenet()
    assert m(fx.zeros32(3, 1, 28, 28)).shape == (3, 10)
    n = sum(p.size for p in fx.trainables(m))
    assert n == (6 * 25 + 6) + (16 * 6 * 25 + 16) + (256 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)


LENET_SUBSET_ACC = 0.975  # seeds 0 and 1 reach 98.44 and 98.16% on the 20,000/5,000 subset


@pytest.mark.slow
def test_lenet_mnist_3_epochs():
    xtr, ytr, xte, yte, src = load_mnist("images")
    fx.seed(0)
    model = lenet()
    opt = fx.setup(fx.Adam(3e-3), model)
    loader = fx.DataLoader((fx.tensor(xtr), fx.onehotbatch(ytr, range(10))), batchsize=128, shuffle=True, rng=0)
    loss = lambda m, x, y: fx.losses.logitcrossentropy(m(x), y)
    t0 = time.perf_counter()
    for epoch in range(3):
        if epoch == 2:
            fx.adjust_(opt, 3e-4)  # a step decay for the last epoch (seeds 0, 1, 2 end at 98.96, 98.95, 99.13%)
        losses = fx.train_(loss, model, loader, opt, progress=False)
    elapsed = time.perf_counter() - t0
    pred = np.concatenate([np.asarray(model(fx.tensor(xte[i:i + 2000]))).argmax(1) for i in range(0, len(xte), 2000)])
    acc = float((pred == yte).mean())
    print(f"LeNet-5 on {src.path.name}: 3 epochs in {elapsed:.1f} s, final mean loss {np.mean(losses):.4f}, "
          f"test accuracy {acc:.4f}")
    assert acc >= (0.985 if src.full else LENET_SUBSET_ACC), (acc, src)
