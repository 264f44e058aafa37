"""One-hot encoding and small tree utilities."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from ._tree import tensors, trainable_children

__all__ = ["onehotbatch", "onecold", "trainables", "gpu", "cpu"]


def onehotbatch(labels, classes) -> Tensor:
    """A (len(labels), len(classes)) float32 one-hot Tensor, class dimension last.

    >>> import flux_rs as fx
    >>> fx.onehotbatch([1, 0], range(2)).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    classes = list(classes)
    pos = {c: i for i, c in enumerate(classes)}
    labels = np.asarray(labels).ravel().tolist()
    try:
        idx = [pos[l] for l in labels]
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not one of the classes {classes}") from None
    return _core.onehot(idx, len(classes))


def onecold(y: Any, classes: Sequence[Any] | None = None) -> Any:
    """The class of the largest entry along the last dimension (inverse of onehotbatch).

    >>> import flux_rs as fx
    >>> fx.onecold(fx.tensor([[0.1, 0.9], [0.8, 0.2]]), ["a", "b"])
    ['b', 'a']
    """
    t = y if isinstance(y, Tensor) else _core.tensor(y)
    idx = t.argmax(-1)
    if classes is None:
        return idx
    classes = list(classes)
    return [classes[i] for i in np.asarray(idx).ravel().tolist()] if idx.ndim else classes[int(idx)]


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
