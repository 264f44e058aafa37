"""Losses of ``Flux.Losses``, prediction first, class dimension last (``dims=-1``).

``agg`` is ``"mean"`` (default), ``"sum"``, ``"none"`` (unreduced) or a function of
the unreduced Tensor. Sizes must match exactly (a ValueError names both shapes; a
scalar target is allowed); the target is converted to the prediction's dtype, so a
float32 prediction gives a float32 loss. Every loss is computed in Rust
(``rust/src/nn/losses.rs``) and differentiates with ``fx.gradient``.
"""
from __future__ import annotations

import numbers

from . import _core
from ._core import Tensor
from ._typing import Agg, TensorLike, ascii_alias as _ascii

__all__ = ["mae", "mse", "msle", "huber_loss", "label_smoothing", "crossentropy", "logitcrossentropy",
           "binarycrossentropy", "logitbinarycrossentropy", "kldivergence", "poisson_loss", "hinge_loss",
           "squared_hinge_loss", "dice_coeff_loss", "tversky_loss", "binary_focal_loss", "focal_loss",
           "siamese_contrastive_loss", "ctc_loss"]


def _agg(agg):
    if isinstance(agg, str):
        return agg, None
    if callable(agg):
        return "none", agg
    raise TypeError(f"agg must be 'mean', 'sum', 'none' or a function, got {agg!r}")


def _num(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    return float(v)


def _run(name, yhat, y, agg="mean", **kw):
    if type(agg) is str:  # the common case, without the checks of _agg
        return _core.loss(name, yhat, y, agg, **kw)
    a, f = _agg(agg)
    out = _core.loss(name, yhat, y, a, **kw)
    return f(out) if f is not None else out


def mae(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean") -> Tensor:
    """Mean absolute error ``agg(|ŷ − y|)``.

    >>> import flux_rs as fx, numpy as np
    >>> fx.losses.mae(np.array([.9, .1, .1, .9]), np.array([1., 1., 0., 0.])).item()
    0.5
    """
    return _run("mae", ŷ, y, agg)


def mse(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean") -> Tensor:
    """Mean squared error ``agg(|ŷ − y|²)``.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.mse(np.array([.9, .1, .1, .9]), np.array([1., 1., 0., 0.])).item(), 6)
    0.41
    """
    if type(agg) is str:  # the hot path of small regressions: no extra frame
        return _core.loss("mse", ŷ, y, agg)
    return _run("mse", ŷ, y, agg)


def msle(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean", eps: float | None = None) -> Tensor:
    """Mean squared log error ``agg(log((ŷ + ϵ)/(y + ϵ))²)``; ``eps`` defaults to the
    machine epsilon of ŷ's dtype.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.msle(np.array([345., 332., 789.]), np.array([123., 456., 789.])).item(), 6)
    0.38814
    """
    return _run("msle", ŷ, y, agg, eps=eps)


def huber_loss(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss: with ``e = |ŷ − y|``, ``½e²`` where ``e < δ`` and ``δ(e − ½δ)`` elsewhere.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.huber_loss(np.array([.9, .1, .1, .9]), np.array([1., 1., 0., 0.])).item(), 6)
    0.205
    """
    return _run("huber_loss", ŷ, y, agg, param=_num("delta", delta))


def label_smoothing(y: TensorLike, α: float | None = None, *, dims: int = -1, alpha: float | None = None) -> Tensor:
    """Smoothed labels ``y·(1 − α) + α/size(y, dims)`` for one-hot ``y`` with classes on
    ``dims`` (last by default); ``dims=0`` means binary labels, ``y·(1 − α) + α/2``, as
    in Flux. Requires ``0 < α < 1``; ``alpha=`` is the ASCII spelling of ``α``.

    >>> import flux_rs as fx
    >>> fx.losses.label_smoothing(fx.onehotbatch([1], [0, 1]), 0.2).numpy().astype(float).round(6).tolist()
    [[0.1, 0.9]]
    """
    if isinstance(dims, bool) or not isinstance(dims, int):
        raise TypeError(f"dims must be an integer, got {dims!r}")
    return _core.label_smoothing(y, _num("α", _ascii("label_smoothing", "α", α, "alpha", alpha, required=True)),
                                 None if dims == 0 else dims)


def crossentropy(ŷ: TensorLike, y: TensorLike, *, dims: int = -1, agg: Agg = "mean", eps: float | None = None) -> Tensor:
    """``agg(−Σ_dims xlogy(y, ŷ + ϵ))`` for probabilities ``ŷ``.

    >>> import flux_rs as fx, numpy as np
    >>> y = np.array([[0., 1.], [0., 1.], [1., 0.], [1., 0.]])
    >>> yh = np.array([[.1, .9], [.9, .1], [.9, .1], [.1, .9]])
    >>> round(fx.losses.crossentropy(yh, y).item(), 6)
    1.203973
    """
    return _run("crossentropy", ŷ, y, agg, dims=dims, eps=eps)


def logitcrossentropy(ŷ: TensorLike, y: TensorLike, *, dims: int = -1, agg: Agg = "mean") -> Tensor:
    """``agg(−Σ_dims y·logsoftmax(ŷ))`` for logits ``ŷ`` (stable).

    >>> import flux_rs as fx, numpy as np
    >>> y = np.array([[0., 1.], [1., 0.]])
    >>> round(fx.losses.logitcrossentropy(np.log(np.array([[.1, .9], [.9, .1]])), y).item(), 6)
    0.105361
    """
    if type(agg) is str:
        return _core.loss("logitcrossentropy", ŷ, y, agg, dims)
    return _run("logitcrossentropy", ŷ, y, agg, dims=dims)


def binarycrossentropy(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean", eps: float | None = None) -> Tensor:
    """``agg(−xlogy(y, ŷ + ϵ) − xlogy(1 − y, 1 − ŷ + ϵ))`` for probabilities ``ŷ``.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.binarycrossentropy(np.array([0.5]), np.array([1.0])).item(), 6)
    0.693147
    """
    return _run("binarycrossentropy", ŷ, y, agg, eps=eps)


def logitbinarycrossentropy(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean") -> Tensor:
    """``agg((1 − y)·ŷ − logσ(ŷ))`` for logits ``ŷ``: binarycrossentropy of σ(ŷ), stably.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.logitbinarycrossentropy(np.array([0.0]), np.array([1.0])).item(), 6)
    0.693147
    """
    return _run("logitbinarycrossentropy", ŷ, y, agg)


def kldivergence(ŷ: TensorLike, y: TensorLike, *, dims: int = -1, agg: Agg = "mean", eps: float | None = None) -> Tensor:
    """Kullback–Leibler divergence KL(y ‖ ŷ): per sample ``Σ_dims xlogx(y) − Σ_dims
    xlogy(y, ŷ + ϵ)``, then ``agg`` (a function ``agg`` sees the per-sample sums).

    >>> import flux_rs as fx, numpy as np
    >>> p = np.array([[0.2, 0.8]])
    >>> abs(fx.losses.kldivergence(p, p).item()) < 1e-12
    True
    """
    return _run("kldivergence", ŷ, y, agg, dims=dims, eps=eps)


def poisson_loss(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean") -> Tensor:
    """``agg(ŷ − xlogy(y, ŷ))``.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.poisson_loss(np.array([0.4, 0.5, 0.6]), np.array([0.1, 0.2, 0.3])).item(), 6)
    0.627835
    """
    return _run("poisson_loss", ŷ, y, agg)


def hinge_loss(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean") -> Tensor:
    """``agg(max(0, 1 − ŷ·y))`` for labels in {−1, 1}.

    >>> import flux_rs as fx, numpy as np
    >>> fx.losses.hinge_loss(np.array([0.5, 1., 1.5, 2.]), np.array([1., 2., 3., 4.])).item()
    0.125
    """
    return _run("hinge_loss", ŷ, y, agg)


def squared_hinge_loss(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean") -> Tensor:
    """``agg(max(0, 1 − ŷ·y)²)``.

    >>> import flux_rs as fx, numpy as np
    >>> fx.losses.squared_hinge_loss(np.array([0.5, 1., 1.5, 2.]), np.array([1., 2., 3., 4.])).item()
    0.0625
    """
    return _run("squared_hinge_loss", ŷ, y, agg)


def dice_coeff_loss(ŷ: TensorLike, y: TensorLike, *, smooth: float = 1.0) -> Tensor:
    """``1 − (2Σ(y·ŷ) + s)/(Σy² + Σŷ² + s)`` over all elements (no ``agg``).

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.dice_coeff_loss(np.array([0., 1.4, .5, 1.2]), np.array([1., .5, .3, 2.4])).item(), 6)
    0.28
    """
    return _run("dice_coeff_loss", ŷ, y, param=_num("smooth", smooth))


def tversky_loss(ŷ: TensorLike, y: TensorLike, *, beta: float = 0.7, β: float | None = None) -> Tensor:
    """``1 − (TP + 1)/(TP + β·FP + (1 − β)·FN + 1)`` with ``TP = Σyŷ``, ``FP = Σ(1−y)ŷ``,
    ``FN = Σy(1−ŷ)`` (no ``agg``; β weighs false positives as in Flux's code; the keyword
    ``β`` is accepted and ignored, as in Flux).

    >>> import flux_rs as fx, numpy as np
    >>> y = np.array([1., .5, .3, 2.4])
    >>> round(fx.losses.tversky_loss(y, y).item(), 6)
    -0.557692
    """
    return _run("tversky_loss", ŷ, y, param=_num("beta", beta))


def binary_focal_loss(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean", gamma: float = 2.0,
                      eps: float | None = None) -> Tensor:
    """``agg((1 − p_t)^γ·(−log p_t))`` with ``p_t = y·(ŷ + ϵ) + (1 − y)·(1 − ŷ − ϵ)``;
    ``gamma=0`` is binarycrossentropy.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.binary_focal_loss(np.array([[.6, .4], [.3, .7]]), np.array([[1., 0.], [0., 1.]])).item(), 6)
    0.056916
    """
    return _run("binary_focal_loss", ŷ, y, agg, eps=eps, param=_num("gamma", gamma))


def focal_loss(ŷ: TensorLike, y: TensorLike, *, dims: int = -1, agg: Agg = "mean", gamma: float = 2.0,
               eps: float | None = None, ϵ: float | None = None, γ: float | None = None) -> Tensor:
    """Per sample ``Σ_dims −y·(1 − ŷϵ)^γ·log(ŷϵ)`` with ``ŷϵ = ŷ + ϵ``, then ``agg``
    (``gamma=0`` is crossentropy; the keywords ``ϵ`` and ``γ`` are ignored, as in Flux).

    >>> import flux_rs as fx, numpy as np
    >>> yh = np.array([[.4, .5, .1], [.2, .5, .3]]); y = np.array([[1., 0., 0.], [0., 0., 1.]])
    >>> round(fx.losses.focal_loss(yh, y).item(), 6)
    0.459906
    """
    return _run("focal_loss", ŷ, y, agg, dims=dims, eps=eps, param=_num("gamma", gamma))


def siamese_contrastive_loss(ŷ: TensorLike, y: TensorLike, *, agg: Agg = "mean", margin: float = 1.0) -> Tensor:
    """``agg((1 − y)·ŷ² + y·max(0, margin − ŷ)²)`` for distances ``ŷ`` and labels ``y``
    (0 similar, 1 dissimilar). A negative margin is a ValueError.

    >>> import flux_rs as fx, numpy as np
    >>> yh = np.array([.6, .4, .1, .2, .7]); y = np.array([1., 0., 0., 1., 1.])
    >>> round(fx.losses.siamese_contrastive_loss(yh, y).item(), 6)
    0.212
    """
    return _run("siamese_contrastive_loss", ŷ, y, agg, param=_num("margin", margin))


def ctc_loss(ŷ: TensorLike, y: TensorLike) -> Tensor:
    """Connectionist temporal classification: the negative log-likelihood of the label
    sequence ``y`` (0-based class indices) under logits ``ŷ`` of shape
    ``(time, classes)``; the **last** class is the blank, and a log-softmax over
    classes is taken inside. One sequence, no ``agg``. Computed with Graves' α
    recursion in log space; the gradient comes from the α–β recursions.

    >>> import flux_rs as fx, numpy as np
    >>> round(fx.losses.ctc_loss(np.zeros((2, 2)), [0]).item(), 6)   # −log(3/4)
    0.287682
    """
    labels = []
    for v in (y.tolist() if hasattr(y, "tolist") else y):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) and not (isinstance(v, float) and v.is_integer()):
            raise TypeError(f"ctc_loss labels must be integer class indices, got {v!r}")
        if v < 0:
            raise ValueError(f"ctc_loss labels must be non-negative class indices, got {v}")
        labels.append(int(v))
    return _core.ctc_loss(ŷ, labels)
