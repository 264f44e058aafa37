"""Data-parallel training on MPI: every rank (process) holds the whole model, trains on
its own shard of each batch, and the gradients are averaged across ranks before each
update, so all ranks take the same step.

``import flux_rs.distributed as dist`` needs the extra ``pip install 'flux_rs[mpi]'``
(mpi4py and an MPI library, mpich, both from PyPI). Start the ranks with MPI's launcher:
``mpiexec -n 2 python train.py`` on one machine, ``mpiexec -f hosts -n 8 ...`` or
Slurm's ``srun`` on many. The loop::

    import flux_rs as fx, flux_rs.distributed as dist
    dist.init()                                   # also gives every rank one seed
    model = ...; dist.broadcast_(model)           # rank 0's weights everywhere
    opt_state = fx.setup(fx.Adam(), model)
    loader = fx.DataLoader((x, y), batchsize=64, shuffle=True, shard=(dist.rank(), dist.size()))
    fx.train_(loss, model, loader, opt_state, distributed=True)
    dist.save("model.safetensors", fx.state(model))   # written by rank 0, readable by all after

Gradient trees are reduced in a few large messages: their tensors are packed in Rust
into contiguous buckets of at most ``bucket_bytes`` (one copy in, one copy out), the
buckets go to MPI's Allreduce as numpy buffers (no copy: mpi4py passes the memory
through the buffer protocol), and the result is written back into the same tensors.

Layers with running statistics (BatchNorm) keep each rank's own: ``allreduce_(model)``
averages them (the weights, equal on every rank, stay as they are) and
``broadcast_(model)`` makes them rank 0's, before evaluating or saving.

A rank that dies takes the others down rather than leaving them waiting in a
collective: MPI's launcher ends the job when a process is killed, and ``init()`` makes
an uncaught Python exception on any rank call ``MPI.Abort`` (as ``python -m mpi4py``
does).
"""
from __future__ import annotations

import sys
import zlib

import numpy as np

from . import _core
from ._core import Leaf, Tensor
from ._tree import children

try:
    from mpi4py import MPI
except (ImportError, RuntimeError, OSError) as _e:  # no mpi4py, or mpi4py without an MPI library
    raise ImportError(
        "flux_rs.distributed needs mpi4py and an MPI library: pip install 'flux_rs[mpi]' "
        "(or: pip install mpi4py mpich)") from _e

__all__ = ["init", "is_initialized", "rank", "size", "barrier", "broadcast_", "allreduce_", "save",
           "DEFAULT_BUCKET_BYTES"]

# Bucket cap: large enough that per-message latency is paid a handful of times per
# step, small enough that packing the next bucket overlaps the reduction of the last
# (BENCHMARKS.md, "Data-parallel training", measures the choice).
DEFAULT_BUCKET_BYTES = 4 << 20

_state: dict = {"comm": None}
_buffers: dict = {}  # (slot, dtype) -> numpy buffer, reused across steps


def init(comm=None, *, same_seed: bool = True, abort_on_error: bool = True) -> None:
    """Join the data-parallel job (idempotent; collective: every rank calls it).

    ``comm`` is the mpi4py communicator to train over (default ``MPI.COMM_WORLD``).
    ``same_seed`` draws one seed on rank 0 and gives it to ``fx.seed`` on every rank, so
    default generators made afterwards (DataLoader shuffles, initialisers) agree across
    ranks, as the sharded DataLoader needs. ``abort_on_error`` makes an uncaught
    exception on any rank end the whole job with ``MPI.Abort`` instead of leaving the
    other ranks waiting in a collective.

    >>> import flux_rs.distributed as dist
    >>> dist.init(); dist.is_initialized()
    True
    """
    if _state["comm"] is not None:
        return
    c = MPI.COMM_WORLD if comm is None else comm
    _state["comm"] = c
    if same_seed:
        from .init import rand
        s = int(rand(1).item() * 2**53) if c.Get_rank() == 0 else None
        _core.seed(c.bcast(s, root=0))
    if abort_on_error and c.Get_size() > 1:
        previous = sys.excepthook

        def abort_all(kind, value, tb):
            previous(kind, value, tb)
            sys.stderr.flush()
            c.Abort(1)
        sys.excepthook = abort_all


def is_initialized() -> bool:
    """Has :func:`init` been called in this process?"""
    return _state["comm"] is not None


def _comm():
    return MPI.COMM_WORLD if _state["comm"] is None else _state["comm"]


def _joined():
    """The communicator of a collective call, joining the job first if need be."""
    if _state["comm"] is None:
        init()
    return _state["comm"]


def rank() -> int:
    """This process's number, 0 to ``size() - 1``.

    >>> import flux_rs.distributed as dist
    >>> 0 <= dist.rank() < dist.size()
    True
    """
    return _comm().Get_rank()


def size() -> int:
    """The number of ranks training together."""
    return _comm().Get_size()


def barrier() -> None:
    """Wait until every rank has reached this call."""
    _joined().Barrier()


def _tensors(tree, out: list, seen: set, path=(), *, leaves: list | None = None, sig: list | None = None,
             arrays_ok: bool = False):
    """Every distinct Tensor of ``tree`` in walk order (a Tensor reached twice counts
    once); with ``leaves``, the fx.Leaf nodes too; with ``sig``, a description of the
    tree's form (None positions, dtypes, shapes) to compare across ranks."""
    if tree is None:
        if sig is not None:
            sig.append("N")
        return
    if isinstance(tree, Tensor):
        if id(tree) not in seen:
            seen.add(id(tree))
            out.append(tree)
        if sig is not None:
            sig.append(f"{tree.dtype}{tree.shape}")
        return
    if isinstance(tree, Leaf):
        if leaves is not None:
            leaves.append(tree)
        return
    if isinstance(tree, np.ndarray) and not arrays_ok:
        where = "".join(f"[{k!r}]" for k in path) or "the root"
        raise TypeError(f"allreduce_ reduces fx.Tensor leaves in place; found a numpy array at {where}: "
                        "make it an fx.tensor")
    for k, v in children(tree) or ():
        _tensors(v, out, seen, path + (k,), leaves=leaves, sig=sig, arrays_ok=arrays_ok)


def _fingerprint(sig: list) -> int:
    return zlib.crc32("|".join(sig).encode())


def _check_same_form(c, fp: int, what: str) -> None:
    """Raise on every rank (never on some only) unless all ranks' fingerprints agree."""
    mm = np.array([fp, -fp], dtype=np.int64)
    c.Allreduce(MPI.IN_PLACE, mm, op=MPI.MIN)
    if mm[0] != -mm[1]:
        raise ValueError(f"{what}: the trees differ across ranks (a None gradient on some ranks only, or "
                         "other shapes or dtypes); every rank must hold the same model")


def _reduce_buckets(c, ts: list, bucket_bytes: int, scale: float, *, op=None, root=None) -> None:
    """Pack ``ts`` into buckets, reduce (or broadcast from ``root``) each, unpack."""
    bk = _core.Buckets(ts, int(bucket_bytes))
    me = c.Get_rank()

    def finish(j, buf, req):
        req.Wait()
        if root is None or me != root:
            bk.unpack(j, buf, scale)
    # two buckets in flight: bucket i is packed and its reduction started before bucket
    # i-1 is waited for and unpacked, so MPI can move one bucket while Rust packs the
    # next; two buffers per dtype suffice, whatever the model's size
    prev = None
    for i, (n, dt) in enumerate(zip(bk.sizes, bk.dtypes)):
        buf = _buffer(i % 2, dt, n)
        if root is None or me == root:
            bk.pack(i, buf)
        req = c.Ibcast(buf, root=root) if root is not None else c.Iallreduce(MPI.IN_PLACE, buf, op=op)
        if prev is not None:
            finish(*prev)
        prev = (i, buf, req)
    if prev is not None:
        finish(*prev)


def _buffer(slot: int, dtype: str, n: int) -> np.ndarray:
    """``n`` elements of a buffer kept across calls (grown when too small)."""
    buf = _buffers.get((slot, dtype))
    if buf is None or buf.size < n:
        buf = _buffers[(slot, dtype)] = np.empty(n, dtype=dtype)
    return buf[:n]


def _check_bucket_bytes(b, where: str) -> None:
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0:
        raise ValueError(f"{where}: bucket_bytes must be a non-negative int, got {b!r}")


def allreduce_(grads, op: str = "mean", *, bucket_bytes: int = DEFAULT_BUCKET_BYTES, check: bool = True):
    """Reduce a whole gradient tree across ranks, in place: every Tensor becomes the mean
    (``op="mean"``) or sum (``op="sum"``) of that Tensor over all ranks. None gradients
    stay None. The tree's tensors travel in buckets of at most ``bucket_bytes`` (0: one
    per dtype). ``check`` first compares the tree's form across ranks (one tiny extra
    message) so that a mismatch raises ValueError on every rank instead of corrupting
    or hanging. Returns ``grads``.

    >>> import flux_rs as fx, flux_rs.distributed as dist
    >>> g = (fx.tensor([2.0, 4.0]), None)
    >>> dist.allreduce_(g)[0].tolist() == [2.0, 4.0]   # one rank: the mean is itself
    True
    """
    if op not in ("mean", "sum"):
        raise ValueError(f"allreduce_: op must be 'mean' or 'sum', got {op!r}")
    _check_bucket_bytes(bucket_bytes, "allreduce_")
    c = _joined()
    ts: list = []
    sig: list | None = [] if check else None
    _tensors(grads, ts, set(), sig=sig)
    if check:
        _check_same_form(c, _fingerprint(sig), "allreduce_")
    n = c.Get_size()
    if n > 1 and ts:
        _reduce_buckets(c, ts, bucket_bytes, 1.0 / n if op == "mean" else 1.0, op=MPI.SUM)
    return grads


def broadcast_(tree, root: int = 0, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
    """Make every Tensor of ``tree`` (a model, a gradient, or an optimiser state from
    ``fx.setup``, whose Leaf states and step counts are included) equal to rank
    ``root``'s, in place. Call it once after building the model on every rank, so that
    all ranks start from the same weights. Returns ``tree``.

    >>> import flux_rs as fx, flux_rs.distributed as dist
    >>> m = fx.Dense(2, 1)
    >>> dist.broadcast_(m) is m
    True
    """
    _check_bucket_bytes(bucket_bytes, "broadcast_")
    c = _joined()
    if not (isinstance(root, (int, np.integer)) and 0 <= root < c.Get_size()):
        raise ValueError(f"broadcast_: root must be a rank, 0 to {c.Get_size() - 1}, got {root!r}")
    ts: list = []
    leaves: list = []
    sig: list = []
    _tensors(tree, ts, set(), leaves=leaves, sig=sig, arrays_ok=True)
    # the optimiser state of each Leaf: its tensors join the buckets, its numbers (step
    # counts, running powers of β) travel as one float64 tensor
    states = [leaf.state for leaf in leaves]
    for s in states:
        _tensors(s, ts, set(map(id, ts)), sig=sig)
    nums = [v for s in states for v in _numbers(s)]
    sig.append(f"L{len(leaves)}#{len(nums)}")
    _check_same_form(c, _fingerprint(sig), "broadcast_")
    num_t = _core.tensor(np.array(nums, dtype=np.float64), None) if nums else None
    if c.Get_size() > 1:
        _reduce_buckets(c, ts + ([num_t] if num_t is not None else []), bucket_bytes, 1.0, root=int(root))
        if leaves and c.Get_rank() != root:
            it = iter(num_t.tolist() if num_t is not None else [])
            for leaf, s in zip(leaves, states):
                leaf.state = _with_numbers(s, it)
    return tree


def _numbers(s):
    if isinstance(s, bool) or not isinstance(s, (int, float, tuple, list)):
        return []
    if isinstance(s, (tuple, list)):
        return [v for x in s for v in _numbers(x)]
    return [float(s)]


def _with_numbers(s, it):
    """``s`` with its numbers replaced, in order, by those of ``it`` (ints stay ints)."""
    if isinstance(s, bool) or not isinstance(s, (int, float, tuple, list)):
        return s
    if isinstance(s, (tuple, list)):
        return type(s)(_with_numbers(x, it) for x in s)
    v = next(it)
    return int(v) if isinstance(s, int) else v


def save(path, tree, root: int = 0) -> None:
    """``fx.save(path, tree)`` on rank ``root`` only, then a barrier: when it returns,
    the file is complete and every rank may ``fx.load(path)`` it (on a file system all
    ranks see).

    >>> import flux_rs as fx, flux_rs.distributed as dist, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> dist.save(p, fx.state(fx.Dense(2, 1))); os.path.exists(p)
    True
    """
    c = _joined()
    err = None
    if c.Get_rank() == root:
        from .serialization import save as _save
        try:
            _save(path, tree)
        except Exception as e:  # tell the other ranks, then raise here
            err = e
    failed = c.bcast(None if err is None else repr(err), root=root)
    if err is not None:
        raise err
    if failed is not None:
        raise OSError(f"rank {root} could not save {path}: {failed}")


def _check_loaders(c, data) -> None:
    """Before an epoch, on every rank alike: the same number of batches everywhere; and
    for a sharded DataLoader, this rank's shard, and (when shuffling) generators at the
    same position, without which the shards of an epoch would overlap."""
    from .data import DataLoader
    shard = getattr(data, "shard", None) if isinstance(data, DataLoader) else None
    rng = data.rng._getstate() if shard is not None and data.shuffle else None
    mine = (len(data) if hasattr(data, "__len__") else None, shard, rng)
    every = c.allgather(mine)
    where = "train_(distributed=True)"
    lens = [e[0] for e in every]
    if len(set(lens)) > 1:
        raise ValueError(f"{where}: the ranks have different numbers of batches {lens}; "
                         "give each rank its part with fx.DataLoader(..., shard=(dist.rank(), dist.size()))")
    bad = [(r, e[1]) for r, e in enumerate(every) if e[1] is not None and e[1] != (r, c.Get_size())]
    if bad:
        raise ValueError(f"{where}: the DataLoader of rank {bad[0][0]} has shard={bad[0][1]}; "
                         f"each rank needs shard=(dist.rank(), dist.size()), here ({bad[0][0]}, {c.Get_size()})")
    if len({e[2] for e in every}) > 1:
        raise ValueError(f"{where}: the sharded DataLoaders shuffle with different generators, so the ranks' "
                         "parts would overlap; give every rank the same rng=seed, or build the loaders after "
                         "dist.init() (which seeds every rank alike)")


def _data_parallel(gradient_of, data):
    """The two hooks ``train_(..., distributed=True)`` puts around its step: a gradient
    function whose loss is agreed across ranks (the mean, or the first non-finite one,
    so that every rank raises at the same batch and none waits in a collective), and
    the reduction of the gradients before the update. First, when ``data`` has a
    length, every rank must have as many batches (else each would wait for good at
    the end of the shortest)."""
    from .train import NonFiniteLossError
    c = _joined()
    n = c.Get_size()
    _check_loaders(c, data)
    count = [0]

    def agreed(args):
        val, grads = gradient_of(args)
        v = val[0] if isinstance(val, tuple) else val
        loss = float(v.item() if hasattr(v, "item") else v)
        sig: list = []
        _tensors(grads[0], [], set(), sig=sig)
        mine = np.array([loss, float(_fingerprint(sig))])
        everyone = np.empty((n, 2))
        c.Allgather(mine, everyone)
        i = count[0]
        count[0] += 1
        bad = [r for r in range(n) if not np.isfinite(everyone[r, 0])]
        if bad:
            raise NonFiniteLossError(float(everyone[bad[0], 0]), i, rank=bad[0])
        if np.any(everyone[:, 1] != everyone[0, 1]):
            raise ValueError(f"train_(distributed=True): on batch {i} the gradient trees differ across ranks "
                             "(a None gradient on some ranks only, or other shapes); every rank must hold the same model")
        return float(everyone[:, 0].mean()), grads

    def reduce(grads):
        allreduce_(grads[0], check=False)

    return agreed, reduce
