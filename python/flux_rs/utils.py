"""One-hot encoding and small tree utilities."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _core
from ._core import Leaf, Tensor
from ._tree import tensors, trainable_children, values_of

__all__ = ["onehotbatch", "onecold", "trainables", "gpu", "cpu", "gpu_available"]


def onehotbatch(labels, classes) -> Tensor:
    """A float32 one-hot Tensor of shape ``labels.shape + (len(classes),)``: the class
    dimension is last, so 1-d labels give (len(labels), len(classes)).

    Flux returns ``(classes, dims...)`` for n-d labels; flux_rs puts the batch first and
    the classes last (the row-major mirror of Flux's layout, as in ``torch.nn.functional.one_hot``),
    which is the layout ``crossentropy(..., dims=-1)`` and :func:`onecold` expect.

    >>> import flux_rs as fx
    >>> fx.onehotbatch([1, 0], range(2)).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    >>> fx.onehotbatch([[0, 2, 1], [1, 1, 0]], range(3)).shape   # (batch, time) labels
    (2, 3, 3)
    """
    classes = list(classes)
    pos = {c: i for i, c in enumerate(classes)}
    labels = np.asarray(labels)
    try:
        idx = [pos[l] for l in labels.ravel().tolist()]
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not one of the classes {classes}") from None
    out = _core.onehot(idx, len(classes))
    return out if labels.ndim == 1 else out.reshape(*labels.shape, len(classes))


def onecold(y: Any, classes: Sequence[Any] | None = None) -> Any:
    """The class of the largest entry along the last dimension (inverse of onehotbatch):
    the indices as a Tensor, or with ``classes`` the labels, as (nested) lists in the
    shape of ``y`` without its last dimension.

    >>> import flux_rs as fx
    >>> fx.onecold(fx.tensor([[0.1, 0.9], [0.8, 0.2]]), ["a", "b"])
    ['b', 'a']
    """
    t = y if isinstance(y, Tensor) else _core.tensor(y)
    idx = t.argmax(-1)
    if classes is None:
        return idx
    classes = list(classes)
    if t.ndim == 0 or len(classes) != t.shape[-1]:
        # a label per entry of the last dimension: fewer would map indices to the wrong labels
        raise ValueError(f"onecold got {len(classes)} classes for y of shape {tuple(t.shape)}; "
                         f"the last dimension must have one entry per class")
    if not idx.ndim:
        return classes[int(idx)]
    nest = lambda a: [classes[i] for i in a] if not a or isinstance(a[0], int) else [nest(r) for r in a]  # noqa: E731
    return nest(np.asarray(idx).tolist())  # nested lists in the shape of the labels


def trainables(model) -> list[Tensor]:
    """The trainable Tensors of a model, each once, in walking order.

    >>> import flux_rs as fx
    >>> [p.shape for p in fx.trainables(fx.Dense(2, 3))]
    [(3, 2), (3,)]
    """
    return tensors(model, walk=trainable_children)


_warned_gpu = False


def gpu_available() -> bool:
    """Can tensors move to the GPU? True when the wgpu backend found an adapter (any
    Vulkan, Metal or DX12 device, Mesa's lavapipe included).

    >>> import flux_rs as fx
    >>> isinstance(fx.gpu_available(), bool)
    True
    """
    return _core.gpu_available()


def _to(tree, device: str):
    """``tree`` with every Tensor and optimiser Leaf in it moved to ``device`` in place
    (so a model object, and a state tree holding its parameters, stay what they are),
    and, for the GPU, numpy float arrays in tuples, lists and dicts made float32 GPU
    Tensors (a batch)."""
    if isinstance(tree, (Tensor, Leaf)):
        tree._to_device_(device)
        return tree
    if device == "gpu" and isinstance(tree, np.ndarray) and tree.dtype.kind == "f":
        t = _core.tensor(tree.astype(np.float32, copy=False))
        t._to_device_(device)
        return t
    t = type(tree)
    if t is tuple or t is list:
        return t(_to(v, device) for v in tree)
    if t is dict:
        return {k: _to(v, device) for k, v in tree.items()}
    for v in values_of(tree, (Tensor, Leaf)):
        v._to_device_(device)
    return tree


def gpu(tree):
    """Move every Tensor of a model, optimiser state or batch to the GPU (Flux's
    ``gpu``) and return it: parameters and non-trainable state alike (BatchNorm's
    running statistics, a user layer's buffers), at any depth. Tensors move in place,
    so a model keeps its identity and a state tree from ``fx.setup`` follows with
    ``fx.gpu(state)`` (a MixedPrecision float64 master copy stays on the host: the GPU
    computes in float32); float64 becomes float32; numpy float arrays in a batch
    (tuples, lists, dicts) become GPU Tensors.
    With no GPU adapter, as Flux does, a warning is shown once and the tree is
    returned unchanged.

    >>> import flux_rs as fx, warnings
    >>> m = fx.Dense(2, 1)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     m2 = fx.gpu(m)
    >>> m2 is m and m.weight.device == ("gpu" if fx.gpu_available() else "cpu")
    True
    >>> _ = fx.cpu(m)
    """
    global _warned_gpu
    if not _core.gpu_available():
        if not _warned_gpu:
            _warned_gpu = True
            import warnings
            warnings.warn(f"no GPU can be used ({_core._gpu_unavailable_reason()}); fx.gpu returns its argument "
                          "unchanged, on the CPU", stacklevel=2)
        return tree
    return _to(tree, "gpu")


def cpu(tree):
    """Move every Tensor of a model, optimiser state or batch back to the CPU, in place,
    and return it (Flux's ``cpu``).

    >>> import flux_rs as fx
    >>> m = fx.Dense(2, 1)
    >>> fx.cpu(m) is m and m.weight.device == "cpu"
    True
    """
    return _to(tree, "cpu")
