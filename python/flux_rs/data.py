"""``DataLoader``: mini-batches of arrays, tuples or dicts of arrays, observation
dimension first. Batches are gathered in Rust with the GIL released; with
``parallel=True`` the next batch is gathered on a background thread while the
current step runs."""
from __future__ import annotations

import queue
import threading
import warnings
from typing import Any, Iterator

import numpy as np

from . import _core
from ._core import Tensor
from .init import derived_rng

__all__ = ["DataLoader", "numobs", "getobs"]


def numobs(data) -> int:
    """Number of observations: the first dimension of arrays; tuples and dicts must agree."""
    if isinstance(data, (Tensor, np.ndarray)):
        return data.shape[0] if data.ndim > 0 else 1
    if isinstance(data, (tuple, dict)):
        vals = list(data.values()) if isinstance(data, dict) else list(data)
        if not vals:
            return 0
        ns = [numobs(v) for v in vals]
        if any(n != ns[0] for n in ns):
            shapes = [getattr(v, "shape", len(v)) for v in vals]
            raise ValueError(f"all data containers must have the same number of observations (first dimension); got {shapes}")
        return ns[0]
    return len(data)


def _gather_array(a: np.ndarray, idx: list[int]) -> np.ndarray:
    src = np.ascontiguousarray(a)
    n = src.shape[0]
    out = np.empty((len(idx),) + src.shape[1:], dtype=src.dtype)
    row = int(np.prod(src.shape[1:], dtype=np.int64)) * src.itemsize
    if row == 0 or n == 0:
        return out
    _core.gather_bytes(src.reshape(n, -1).view(np.uint8).reshape(n, row), idx, out.reshape(len(idx), -1).view(np.uint8).reshape(len(idx), row))
    return out


def getobs(data, idx):
    """Observations ``idx`` (a list: batch kept; an int: batch dimension dropped)."""
    if isinstance(idx, (int, np.integer)):
        if isinstance(data, tuple):
            return tuple(getobs(d, idx) for d in data)
        if isinstance(data, dict):
            return {k: getobs(v, idx) for k, v in data.items()}
        return data[int(idx)]
    if isinstance(data, Tensor):
        return _core.gather_tensor(data, idx)
    if isinstance(data, np.ndarray):
        return _gather_array(data, idx)
    if isinstance(data, tuple):
        return tuple(getobs(d, idx) for d in data)
    if isinstance(data, dict):
        return {k: getobs(v, idx) for k, v in data.items()}
    return [data[i] for i in idx]


def _batch(obs: list):
    """MLUtils.batch: stack a list of observations along a new first dimension."""
    first = obs[0]
    if isinstance(first, tuple):
        return tuple(_batch([o[i] for o in obs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _batch([o[k] for o in obs]) for k in first}
    if isinstance(first, Tensor):
        return _core.stack(obs, 0)
    return np.stack([np.asarray(o) for o in obs])


class DataLoader:
    """Iterate over ``data`` in mini-batches.

    ``data`` is an array (numpy or Tensor), a tuple or a dict of arrays with the
    observations along the first dimension. Each batch has the same kind as ``data``.
    ``shuffle`` draws a new permutation every epoch from ``rng`` (an ``fx.Rng`` or an
    int seed); ``partial=False`` drops a last incomplete batch; ``batchsize <= 0``
    yields single observations; ``collate`` as MLUtils (None, False, True or a function
    of the list of observations); ``parallel=True`` gathers the next batch ahead on a
    background thread.

    ``shard=(rank, size)`` gives this process its part of every epoch in a
    data-parallel run (``flux_rs.distributed``): each epoch's permutation (the same on
    every rank when ``rng`` is, as after ``dist.init()`` or ``fx.seed(n)`` on every
    rank) is cut into global batches of ``batchsize * size`` observations and rank
    ``r`` gets the ``r``-th slice of ``batchsize`` of each, so the ranks' parts are
    disjoint and together are what one process sees with batch ``batchsize * size``.
    Every rank gets the same number of batches; a last incomplete global batch is
    shared out in equal slices, padded from the start of the epoch when ``size`` does
    not divide it (every observation is seen exactly once when ``size`` divides the
    number of observations).

    ``device="gpu"`` delivers every batch on the GPU (as ``fx.gpu(batch)``: float
    arrays become float32 GPU Tensors), so a whole epoch runs without moving data by
    hand; with no GPU adapter this warns once and batches stay on the CPU, as ``fx.gpu``
    does.

    >>> import flux_rs as fx, numpy as np
    >>> X = np.arange(10.0).reshape(5, 2)
    >>> [x.shape for x in fx.DataLoader(X, batchsize=2)]
    [(2, 2), (2, 2), (1, 2)]
    >>> [x[:, 0].tolist() for x in fx.DataLoader(X, batchsize=1, shard=(1, 2))]
    [[2.0], [6.0], [0.0]]
    """

    def __init__(self, data, batchsize: int = 1, shuffle: bool = False, partial: bool = True, rng=None,
                 collate=None, parallel: bool = False, shard=None, device: str = "cpu"):
        if device not in ("cpu", "gpu"):
            raise ValueError(f'device must be "cpu" or "gpu", got {device!r}')
        self.device = device
        self.data = data
        self.n = numobs(data)
        if isinstance(batchsize, bool) or not isinstance(batchsize, (int, np.integer)):
            raise TypeError(f"batchsize must be an integer, got {type(batchsize).__name__} {batchsize!r}")
        bs = int(batchsize)
        if bs > 0 and self.n < bs and self.n > 0:
            warnings.warn(f"number of observations ({self.n}) is less than the batch size ({bs}); "
                          f"decreasing the batch size to {self.n}", stacklevel=2)
            bs = self.n
        self.batchsize, self.shuffle, self.partial = bs, bool(shuffle), bool(partial)
        self.collate, self.parallel = collate, bool(parallel)
        if rng is None:
            rng = derived_rng()
        elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            if rng < 0:
                raise ValueError(f"rng must be an fx.Rng or a non-negative int seed, got {rng}")
            rng = _core.Rng(int(rng))
        elif not isinstance(rng, _core.Rng):
            raise TypeError(f"rng must be an fx.Rng or an int seed, got {type(rng).__name__}")
        self.rng = rng
        self.shard = _shard_arg(shard)

    def __len__(self) -> int:
        if self.shard is not None:
            full, rest = divmod(self.n, max(self.batchsize, 1) * self.shard[1])
            return full + (1 if rest and (self.partial or self.batchsize <= 0) else 0)
        if self.batchsize <= 0:
            return self.n
        if self.n == 0:
            return 0
        full, rest = divmod(self.n, self.batchsize)
        return full + (1 if rest and self.partial else 0)

    def _batches(self) -> list:
        order = self.rng.permutation(self.n) if self.shuffle else list(range(self.n))
        if self.shard is not None:
            # single observations (batchsize <= 0) are batches of one, unwrapped
            bs = max(self.batchsize, 1)
            b = _core.shard_batches(order, bs, self.partial or self.batchsize <= 0, *self.shard)
            return b if self.batchsize > 0 else [i[0] for i in b]
        if self.batchsize <= 0:
            return order
        bs = self.batchsize
        return [order[i:i + bs] for i in range(0, len(order), bs) if self.partial or i + bs <= len(order)]

    def _make(self, idx):
        b = self._gather(idx)
        if self.device == "gpu":
            from .utils import gpu
            return gpu(b)
        return b

    def _gather(self, idx):
        if self.batchsize <= 0 or self.collate is None:
            return getobs(self.data, idx)
        obs = [getobs(self.data, i) for i in idx]
        if self.collate is False:
            return obs
        if self.collate is True:
            return _batch(obs)
        return self.collate(obs)

    def __iter__(self) -> Iterator[Any]:
        batches = self._batches()
        if not self.parallel:
            for b in batches:
                yield self._make(b)
            return
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(item) -> bool:
            # never block for good: a consumer that stopped (closed, broken out of,
            # interrupted, garbage-collected) sets `stop` and this thread ends
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False

        def produce():
            try:
                for b in batches:
                    if stop.is_set() or not put((True, self._make(b))):
                        return
                put((False, None))
            except BaseException as e:  # hand the error to the consumer
                put((None, e))

        t = threading.Thread(target=produce, daemon=True, name="flux_rs DataLoader")
        t.start()
        try:
            while True:
                ok, item = q.get()
                if ok is None:
                    raise item
                if not ok:
                    return
                yield item
        finally:
            stop.set()
            # the producer ends within one batch; wait briefly, not for a slow collate
            t.join(timeout=1.0)

    def __repr__(self):
        shard = "" if self.shard is None else f", shard={self.shard}"
        dev = "" if self.device == "cpu" else f", device={self.device!r}"
        return (f"DataLoader(<{numobs(self.data)} observations>, batchsize={self.batchsize}, shuffle={self.shuffle}, "
                f"partial={self.partial}{shard}{dev})")


def _shard_arg(shard):
    """None, or ``(rank, size)`` as two ints with ``0 <= rank < size``."""
    if shard is None:
        return None
    if not isinstance(shard, (tuple, list)) or len(shard) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in shard):
        raise TypeError(f"shard must be a pair of ints (rank, size), got {shard!r}")
    r, n = int(shard[0]), int(shard[1])
    if not 0 <= r < n:
        raise ValueError(f"shard=(rank, size) needs 0 <= rank < size, got ({r}, {n})")
    return (r, n)
