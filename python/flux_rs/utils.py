"""One-hot encoding and small tree utilities."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import tensors, trainable_children

__all__ = ["onehotbatch", "onecold", "trainables", "gpu", "cpu"]


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


def gpu(tree):
    """Move a model or state tree to the GPU. This build has no GPU backend (the
    optional wgpu backend is not compiled in), so, as Flux does when no GPU package is
    loaded, the tree is returned unchanged and a warning is shown once.

    >>> import flux_rs as fx, warnings
    >>> m = fx.Dense(2, 1)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     fx.gpu(m) is m
    True
    """
    global _warned_gpu
    if not _warned_gpu:
        _warned_gpu = True
        import warnings
        warnings.warn("flux_rs was built without a GPU backend; fx.gpu returns its argument unchanged (on the CPU)",
                      stacklevel=2)
    return tree


def cpu(tree):
    """Move a tree to the CPU: every Tensor of this build already lives there, so the
    tree is returned unchanged.

    >>> import flux_rs as fx
    >>> m = fx.Dense(2, 1)
    >>> fx.cpu(m) is m
    True
    """
    return tree
