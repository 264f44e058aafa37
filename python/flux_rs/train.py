"""``train_``: one epoch of the explicit training loop, and its error."""
from __future__ import annotations

import math
import sys

from ._autodiff import withgradient
from .optimise import Rule, setup, update_

__all__ = ["train_", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """The loss was Inf or NaN; ``loss`` holds the value and ``index`` the 0-based batch.
    The update of that batch was not applied; all earlier ones were."""

    def __init__(self, loss: float, index: int):
        super().__init__(f"loss is {loss} on batch {index}, stopping training")
        self.loss, self.index = loss, index


def _scalar(val) -> float:
    v = val[0] if isinstance(val, tuple) else val
    return float(v.item() if hasattr(v, "item") else v)


def train_(loss, model, data, opt_state, *, progress=None, cb=None):
    """One pass over ``data``: for each item ``d``, the gradient of ``loss(model, *d)``
    (``loss(model, d)`` when ``d`` is not a tuple) and one ``update_``. Returns the
    list of per-batch losses. A non-finite loss raises :class:`NonFiniteLossError`
    before its update. ``progress=True`` shows a tqdm bar (default: when stderr is a
    terminal). Layers in automatic mode act as in training inside the gradient only;
    ``train_`` does not change their mode.

    >>> import flux_rs as fx, numpy as np
    >>> m = fx.Dense(1, 1, init=fx.zeros)
    >>> st = fx.setup(fx.Descent(0.1), m)
    >>> fx.train_(lambda m, x: m(x).sum(), m, [(np.ones((1, 1)),)], st, progress=False)
    [0.0]
    """
    if type(model).__name__ == "Params" and hasattr(model, "_implicit_train"):
        return model._implicit_train(loss, data, opt_state, cb=cb, progress=progress)
    if cb is not None:
        raise TypeError("train_ does not take callbacks in the explicit style; write a loop with "
                        "fx.withgradient and fx.update_ for more control")
    if isinstance(opt_state, Rule):
        opt_state = setup(opt_state, model)
    if progress is None:
        progress = sys.stderr.isatty()
    it = data
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = it = tqdm(data, total=len(data) if hasattr(data, "__len__") else None, desc="train_", leave=False)
    losses: list[float] = []
    try:
        for i, d in enumerate(it):
            args = d if isinstance(d, tuple) else (d,)
            val, grads = withgradient(lambda m: loss(m, *args), model)
            l = _scalar(val)
            if not math.isfinite(l):
                raise NonFiniteLossError(l, i)
            update_(opt_state, model, grads[0])
            losses.append(l)
            if bar is not None and i % 10 == 0:
                bar.set_postfix(loss=f"{l:.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return losses
