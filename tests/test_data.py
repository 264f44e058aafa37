"""DataLoader (MLUtils semantics, observation dimension first) and one-hot helpers."""
import numpy as np
import pytest

import flux_rs as fx


def test_batches_partial_and_sizes():
    X = np.arange(10.0).reshape(5, 2)
    assert [b.tolist() for b in fx.DataLoader(X, batchsize=2)] == [X[0:2].tolist(), X[2:4].tolist(), X[4:5].tolist()]
    assert len(fx.DataLoader(X, batchsize=2, partial=False)) == 2
    assert [b.shape for b in fx.DataLoader(X)] == [(1, 2)] * 5  # batchsize 1 keeps the batch dimension
    assert [b.shape for b in fx.DataLoader(X, batchsize=-1)] == [(2,)] * 5  # single observations
    x = np.arange(12)
    assert [b.tolist() for b in fx.DataLoader(x, batchsize=5, partial=False)] == [list(range(5)), list(range(5, 10))]
    Xi = np.random.default_rng(0).integers(0, 100, (64, 10)).astype(np.int8)
    assert [b.shape for b in fx.DataLoader(Xi, batchsize=30)] == [(30, 10), (30, 10), (4, 10)]
    assert all(b.dtype == np.int8 for b in fx.DataLoader(Xi, batchsize=30))


def test_tuple_dict_and_tensor_data():
    X, Y = np.arange(10.0).reshape(5, 2), np.arange(5)
    bs = list(fx.DataLoader((X, Y), batchsize=2))
    assert bs[-1][0].tolist() == [[8.0, 9.0]] and bs[-1][1].tolist() == [4]
    d = list(fx.DataLoader({"x": X, "y": Y}, batchsize=3))
    assert set(d[0]) == {"x", "y"} and d[1]["y"].tolist() == [3, 4]
    t = list(fx.DataLoader(fx.tensor(X), batchsize=2))
    assert isinstance(t[0], fx.Tensor) and t[2].tolist() == [[8.0, 9.0]]
    with pytest.raises(ValueError, match="same number of observations"):
        fx.DataLoader((X, np.arange(4)))


def test_shuffle_is_seeded_and_new_each_epoch():
    X = np.arange(100)
    a = fx.DataLoader(X, batchsize=10, shuffle=True, rng=1)
    b = fx.DataLoader(X, batchsize=10, shuffle=True, rng=fx.Rng(1))
    e1, e2 = [np.concatenate(list(a)) for _ in range(2)]
    assert sorted(e1.tolist()) == list(range(100)) and e1.tolist() != list(range(100))
    assert e1.tolist() != e2.tolist()  # a new permutation every epoch
    assert np.concatenate(list(b)).tolist() == e1.tolist()  # same seed, same batches


def test_fewer_observations_than_batchsize_warns_and_gives_one_batch():
    with pytest.warns(UserWarning, match="batch size"):
        dl = fx.DataLoader(np.arange(3), batchsize=10, partial=False)
    assert [b.tolist() for b in dl] == [[0, 1, 2]]


def test_collate_and_parallel():
    X = np.arange(6.0).reshape(3, 2)
    assert [len(b) for b in fx.DataLoader(X, batchsize=2, collate=False)] == [2, 1]
    assert [b.shape for b in fx.DataLoader(X, batchsize=2, collate=True)] == [(2, 2), (1, 2)]
    assert [fx.DataLoader(["a", "b", "c"], batchsize=2, collate="".join).__iter__().__next__()] == ["ab"]
    big = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float32)
    serial = [b for b in fx.DataLoader(big, batchsize=64, shuffle=True, rng=3)]
    par = [b for b in fx.DataLoader(big, batchsize=64, shuffle=True, rng=3, parallel=True)]
    assert all(np.array_equal(s, p) for s, p in zip(serial, par)) and len(serial) == len(par)


def test_onehot_and_onecold():
    y = fx.onehotbatch([1, 0, 2], range(3))
    assert y.dtype == np.float32 and y.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert fx.onecold(y, ["a", "b", "c"]) == ["b", "a", "c"]
    np.testing.assert_array_equal(fx.onecold(y), [1, 0, 2])
    with pytest.raises(ValueError, match="label 7"):
        fx.onehotbatch([7], range(3))


def test_default_shuffle_follows_fx_seed():
    runs = []
    for _ in range(2):
        fx.seed(3)
        runs.append([b.tolist() for b in fx.DataLoader(np.arange(20), batchsize=5, shuffle=True)])
    assert runs[0] == runs[1] and runs[0] != [list(range(i, i + 5)) for i in range(0, 20, 5)]


def test_onehot_kernel_rejects_out_of_range_labels():
    from flux_rs import _core
    with pytest.raises(ValueError, match="out of range"):
        _core.onehot([5], 3)
