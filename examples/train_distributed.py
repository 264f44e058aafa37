"""Train the MNIST MLP data-parallel on MPI ranks and print the test accuracy (rank 0).

Each rank takes its shard of every batch; the gradients are averaged across ranks
before every update, so with per-rank batch b on n ranks this trains as one process
with batch n·b would. Needs `pip install 'flux_rs[mpi]'` (mpi4py and mpich).

    mpiexec -n 2 python examples/train_distributed.py --epochs 3   # one machine
    mpiexec -f hosts -n 8 python examples/train_distributed.py     # a host file ("node1:4" lines)
    srun --mpi=pmi2 python examples/train_distributed.py           # in a Slurm job (sbatch, salloc)

The model is saved by rank 0 at the end (`--save`) and loaded back on every rank.
"""
import argparse
import time
from pathlib import Path

import numpy as np

import flux_rs as fx
import flux_rs.distributed as dist
from train_mnist import accuracy, load  # the single-process example beside this one


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "data" / "mnist_subset.npz"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batchsize", type=int, default=64, help="per rank: the global batch is this × ranks")
    ap.add_argument("--eta", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default="mnist_mlp.safetensors")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only (a quick run)")
    args = ap.parse_args()

    fx.seed(args.seed)
    dist.init()  # rank and size from the launcher; every rank gets one seed
    rank, size = dist.rank(), dist.size()
    say = print if rank == 0 else (lambda *a, **k: None)
    x_train, y_train, x_test, y_test = load(args.data)
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    say(f"{size} rank(s); data: {len(x_train)} training and {len(x_test)} test images")

    model = fx.Chain(fx.Dense(784, 256, fx.relu), fx.Dense(256, 10))
    dist.broadcast_(model)  # every rank starts from rank 0's weights
    opt_state = fx.setup(fx.Adam(args.eta), model)
    loader = fx.DataLoader((fx.tensor(x_train), fx.onehotbatch(y_train, range(10))),
                           batchsize=args.batchsize, shuffle=True, rng=args.seed, shard=(rank, size))

    def loss(m: fx.Chain, x: fx.Tensor, y: fx.Tensor) -> fx.Tensor:
        return fx.losses.logitcrossentropy(m(x), y)


    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        losses = fx.train_(loss, model, loader, opt_state, distributed=True)
        dt = time.perf_counter() - t0
        say(f"epoch {epoch}: mean loss {np.mean(losses):.4f}, test accuracy {accuracy(model, x_test, y_test):.4f} "
            f"({dt:.2f} s, {len(loader)} steps of {args.batchsize} × {size})")

    dist.save(args.save, fx.state(model))  # written by rank 0; complete for everyone after this
    fx.loadmodel_(model, fx.load(args.save))
    acc = accuracy(model, x_test, y_test)
    say(f"final test accuracy: {acc:.4f} (model saved to {args.save})")
    return acc


if __name__ == "__main__":
    main()
