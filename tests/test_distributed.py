"""Data-parallel training on MPI (flux_rs.distributed): tests/_dist_worker.py runs as two
ranks under `mpiexec -n 2` (mpi4py and mpich come from PyPI: scripts/setup.sh installs
them), writes what each rank saw, and the tests here compare it with single-process
training computed in this process. Every mpiexec call has a timeout."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import flux_rs as fx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _dist_worker as W  # noqa: E402  (its data, model and loss: the single-process reference uses the same)

RANKS = 2


def mpiexec() -> str:
    exe = Path(sys.executable).parent / "mpiexec"
    found = str(exe) if exe.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec not found: `bash scripts/setup.sh` installs mpi4py and mpich (pip install mpi4py mpich)")
    return found


def mpi_env(timeout: float) -> dict:
    # one machine, ranks on the loopback interface only; the launcher ends the job (and
    # its ranks) itself a little before the test gives up on it, leaving no stray ranks
    return dict(os.environ, OMP_NUM_THREADS="1", RAYON_NUM_THREADS="1", HYDRA_IFACE="lo",
                MPIEXEC_TIMEOUT=str(int(timeout) - 10))


def launch(out: Path, mode: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([mpiexec(), "-n", str(RANKS), sys.executable, str(HERE / "_dist_worker.py"), str(out), mode],
                          capture_output=True, text=True, timeout=timeout, env=mpi_env(timeout))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    p = launch(out, "main", timeout=300)
    assert p.returncode == 0, f"mpiexec failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(RANKS)]


def set_params(m, arrays):
    for layer, (w, b) in zip(m.layers, zip(arrays[::2], arrays[1::2])):
        layer.weight, layer.bias = fx.tensor(w), fx.tensor(b)


def single_process(init, rule, dtype, steps=None, x=None):
    """Training with batch 2b in one process from the same start on the same data."""
    m = fx.Chain(fx.Dense(5, 8, fx.tanh), fx.Dense(8, 3))
    set_params(m, init)
    st = fx.setup(rule, m)
    dx, y = W.data(dtype)
    x = dx if x is None else x
    shuffle = steps is None
    batches = list(fx.DataLoader((x, y), batchsize=RANKS * W.B, shuffle=shuffle, rng=7))[:steps]
    losses = fx.train_(W.loss, m, batches, st, progress=False)
    return [np.asarray(p) for p in fx.trainables(m)], losses


@pytest.mark.parametrize("tag,dtype,tol", [("f32", np.float32, 1e-6), ("f64", np.float64, 1e-12)])
@pytest.mark.parametrize("name,rule", [("adam", lambda: fx.Adam(0.01)), ("momentum", lambda: fx.Momentum(0.05, 0.9))])
def test_data_parallel_equals_one_process_with_twice_the_batch(ranks, tag, dtype, tol, name, rule):
    init = [ranks[0][f"init_{tag}_{name}_{i}"] for i in range(4)]
    assert all(p.dtype == dtype for p in init)
    want, want_losses = single_process(init, rule(), dtype)
    assert len(want_losses) == W.STEPS
    for r in range(RANKS):
        got = [ranks[r][f"final_{tag}_{name}_{i}"] for i in range(4)]
        for g, w, i in zip(got, want, init):
            assert not np.allclose(g, i, atol=1e-3)  # training moved the parameters
            np.testing.assert_allclose(g, w, rtol=0, atol=tol)
        np.testing.assert_allclose(ranks[r][f"losses_{tag}_{name}"], want_losses, rtol=tol, atol=tol)
    # every rank holds bit-for-bit the same model
    for i in range(4):
        np.testing.assert_array_equal(ranks[0][f"final_{tag}_{name}_{i}"], ranks[1][f"final_{tag}_{name}_{i}"])


def test_a_hand_written_loop_with_allreduce_matches_train_(ranks):
    for r in range(RANKS):
        for i in range(4):
            np.testing.assert_array_equal(ranks[r][f"manual_f64_momentum_{i}"], ranks[r][f"final_f64_momentum_{i}"])


def test_broadcast_makes_different_initialisations_equal(ranks):
    for key in ("f32_adam", "f64_momentum"):
        before0, before1 = ranks[0][f"before_{key}"], ranks[1][f"before_{key}"]
        assert np.abs(before0 - before1).max() > 1e-3  # the ranks started apart
        after = [np.concatenate([ranks[r][f"init_{key}_{i}"].ravel() for i in range(4)]) for r in range(RANKS)]
        np.testing.assert_array_equal(after[0], before0)  # rank 0's weights ...
        np.testing.assert_array_equal(after[1], before0)  # ... everywhere
    # an Adam state after 1 step (rank 0) and 2 steps (rank 1): arrays and βᵗ made rank 0's
    np.testing.assert_array_equal(ranks[0]["adam_state"], ranks[1]["adam_state"])
    assert ranks[0]["adam_state"].size > 4


def test_allreduce_mean_sum_and_none(ranks):
    for r in range(RANKS):
        res = ranks[r]
        np.testing.assert_array_equal(res["mean_a"], np.full((3, 2), 1.5, dtype=np.float32))  # (1 + 2) / 2
        assert res["mean_a"].dtype == np.float32 and res["mean_b"].dtype == np.float64
        np.testing.assert_array_equal(res["mean_b"], np.arange(5.0) * 1.5)
        np.testing.assert_array_equal(res["mean_c"], np.full(7, 1.0, dtype=np.float32))  # (0 + 2) / 2
        assert res["none_kept"].all()
        np.testing.assert_array_equal(res["sum_a"], np.full((3, 2), 3.0, dtype=np.float32))  # 1.5 + 1.5
        assert int(res["mismatch"]) == 1  # a different tree raised ValueError on every rank


def test_nan_on_one_rank_raises_on_every_rank_at_the_same_batch(ranks):
    for r in range(RANKS):
        assert int(ranks[r]["nan_index"]) == 5
        assert int(ranks[r]["nan_rank"]) == 1
    # the five batches before it were applied, on both ranks, as in one process
    init = [ranks[0][f"nan_init_{i}"] for i in range(4)]
    want, _ = single_process(init, fx.Momentum(0.05, 0.9), np.float64, steps=5)
    for r in range(RANKS):
        for i in range(4):
            np.testing.assert_allclose(ranks[r][f"nan_final_{i}"], want[i], rtol=0, atol=1e-12)
            assert not np.array_equal(ranks[r][f"nan_final_{i}"], init[i])


def test_sharded_loader_covers_every_sample_once_per_epoch(ranks):
    n = 40
    for e in range(2):
        parts = [ranks[r][f"shard_epoch_{e}"] for r in range(RANKS)]
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # disjoint and complete
        counts = [int(ranks[r][f"shard_nbatches_{e}"]) for r in range(RANKS)]
        assert counts[0] == counts[1] == int(ranks[0]["shard_len"]) == 7  # 40 / (3 · 2) → 7 batches each
    # a new permutation each epoch (the same one on both ranks, or coverage would fail)
    assert not np.array_equal(ranks[0]["shard_epoch_0"], ranks[0]["shard_epoch_1"])


def test_loaders_that_do_not_fit_together_are_refused_on_every_rank(ranks):
    assert [int(ranks[r]["uneven"]) for r in range(RANKS)] == [1, 1]  # 3 and 4 batches
    assert [int(ranks[r]["wrong_shard"]) for r in range(RANKS)] == [1, 1]  # shard=(0, 2) on rank 1
    assert [int(ranks[r]["rank_rngs"]) for r in range(RANKS)] == [1, 1]  # rng=rank: shards would overlap


def test_without_mpi4py_the_import_error_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # as if mpi4py were not installed
            "import flux_rs as fx\n"
            "for f in (lambda: __import__('flux_rs.distributed'),\n"
            "          lambda: fx.train_(lambda m: m.sum(), fx.ones(2), [()], fx.setup(fx.Descent(), fx.ones(2)), distributed=True)):\n"
            "    try:\n        f()\n    except ImportError as e:\n        print(e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2 and all("pip install 'flux_rs[mpi]'" in l and "mpi4py" in l for l in lines), p.stdout


def test_checkpoint_saved_on_rank_0_loads_everywhere(ranks):
    np.testing.assert_array_equal(ranks[0]["ckpt_weight"], ranks[1]["ckpt_weight"])


@pytest.mark.parametrize("how", ["kill", "raise"])
def test_a_dying_rank_ends_the_job_instead_of_hanging(tmp_path, how):
    # rank 1 is killed (SIGKILL) or raises an uncaught exception at its third batch, while
    # rank 0 waits for it in a collective: the launcher must end the job, with an error
    t0 = time.monotonic()
    p = launch(tmp_path, f"die-{how}", timeout=120)  # a hang fails here with TimeoutExpired
    assert time.monotonic() - t0 < 60, "the job hung until the launcher's own timeout"
    assert p.returncode != 0
    assert (tmp_path / "dying1").exists(), p.stderr[-2000:]  # rank 1 reached its failure
    assert not (tmp_path / "finished0").exists() and not (tmp_path / "finished1").exists()


def test_the_example_trains_mnist_on_two_ranks(tmp_path):
    env = mpi_env(300)
    ckpt = tmp_path / "m.safetensors"
    p = subprocess.run([mpiexec(), "-n", str(RANKS), sys.executable, str(HERE.parent / "examples" / "train_distributed.py"),
                        "--epochs", "2", "--limit", "4000", "--save", str(ckpt)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 rank(s)" in p.stdout and p.stdout.count("final test accuracy") == 1  # rank 0 speaks
    acc = float(p.stdout.split("final test accuracy: ")[1].split()[0])
    assert acc > 0.8, p.stdout
    assert ckpt.exists()


def test_sharding_in_one_process():
    x = np.arange(10)
    parts = [[b.tolist() for b in fx.DataLoader(x, batchsize=2, shard=(r, 2))] for r in range(2)]
    assert parts == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
    assert len(fx.DataLoader(x, batchsize=2, shard=(1, 2))) == 3
    assert len(fx.DataLoader(x, batchsize=2, partial=False, shard=(1, 2))) == 2
    # 5 observations on 2 ranks: equal batch counts, the tail padded from the start
    parts = [[b.tolist() for b in fx.DataLoader(np.arange(5), batchsize=2, shard=(r, 2))] for r in range(2)]
    assert parts == [[[0, 1], [4]], [[2, 3], [0]]]
    with pytest.raises(ValueError, match="rank < size"):
        fx.DataLoader(x, shard=(2, 2))
    with pytest.raises(TypeError, match="pair of ints"):
        fx.DataLoader(x, shard=1)


def test_buckets_round_trip_in_one_process():
    a = fx.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3)).T  # a strided view
    b = fx.tensor(np.arange(3.0))  # float64
    c = fx.tensor(np.ones(4, dtype=np.float32))
    bk = fx._core.Buckets([a, b, c], 24)
    assert bk.dtypes == ["float32", "float32", "float64"] and bk.sizes == [6, 4, 3]
    assert bk.members == [[0], [2], [1]]
    buf = np.empty(6, dtype=np.float32)
    bk.pack(0, buf)
    assert buf.tolist() == [0, 3, 1, 4, 2, 5]
    bk.unpack(0, buf * 4, 0.25)
    assert np.asarray(a).tolist() == [[0, 3], [1, 4], [2, 5]]
    with pytest.raises(ValueError, match="float64 with 3 elements"):
        bk.pack(2, np.empty(3, dtype=np.float32))
    with pytest.raises(IndexError):
        bk.pack(3, buf)


def test_arguments_are_checked_in_one_process():
    import flux_rs.distributed as dist  # a job of one rank (MPI's singleton start)
    g = {"w": fx.tensor(np.ones(3)), "b": None}
    with pytest.raises(ValueError, match="op must be 'mean' or 'sum'"):
        dist.allreduce_(g, op="max")
    with pytest.raises(ValueError, match="bucket_bytes"):
        dist.allreduce_(g, bucket_bytes=-1)
    with pytest.raises(TypeError, match=r"numpy array at \['w'\]"):
        dist.allreduce_({"w": np.ones(3)})
    with pytest.raises(ValueError, match="broadcast_: bucket_bytes"):
        dist.broadcast_(g, bucket_bytes=2.5)
    with pytest.raises(ValueError, match="root must be a rank"):
        dist.broadcast_(g, root=1)
    assert dist.allreduce_(g, op="sum") is g and g["b"] is None and np.asarray(g["w"]).tolist() == [1.0] * 3
    assert dist.size() == 1 and dist.rank() == 0
