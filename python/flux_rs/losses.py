"""Losses of ``Flux.Losses``, prediction first, class dimension last (``dims=-1``).
``agg`` is ``"mean"`` (default), ``"sum"``, ``"none"`` (unreduced) or a function of
the unreduced Tensor."""
from __future__ import annotations

from . import _core

__all__ = ["mse", "crossentropy", "logitcrossentropy"]


def _agg(agg):
    return (agg, None) if isinstance(agg, str) else ("none", agg)


def _run(name, yhat, y, agg, **kw):
    a, f = _agg(agg)
    out = _core.loss(name, yhat, y, a, **kw)
    return f(out) if f is not None else out


def mse(ŷ, y, *, agg="mean"):
    """Mean squared error ``agg(|ŷ − y|²)``.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.mse(np.array([.9, .1, .1, .9]), np.array([1., 1., 0., 0.])).item(), 6)
    0.41
    """
    return _run("mse", ŷ, y, agg)


def crossentropy(ŷ, y, *, dims: int = -1, agg="mean", eps=None):
    """``agg(−Σ_dims y·log(ŷ + ϵ))`` for probabilities ``ŷ``.

    >>> import flux_rs as fx, numpy as np
    >>> y = np.array([[0., 1.], [0., 1.], [1., 0.], [1., 0.]])
    >>> yh = np.array([[.1, .9], [.9, .1], [.9, .1], [.1, .9]])
    >>> round(fx.losses.crossentropy(yh, y).item(), 6)
    1.203973
    """
    return _run("crossentropy", ŷ, y, agg, dims=dims, eps=eps)


def logitcrossentropy(ŷ, y, *, dims: int = -1, agg="mean"):
    """``agg(−Σ_dims y·logsoftmax(ŷ))`` for logits ``ŷ`` (stable).

    >>> import flux_rs as fx, numpy as np
    >>> y = np.array([[0., 1.], [1., 0.]])
    >>> round(fx.losses.logitcrossentropy(np.log(np.array([[.1, .9], [.9, .1]])), y).item(), 6)
    0.105361
    """
    return _run("logitcrossentropy", ŷ, y, agg, dims=dims)
