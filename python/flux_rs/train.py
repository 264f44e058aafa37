"""``train_``: one epoch of the explicit training loop, and its error."""
from __future__ import annotations

import math
import sys
from typing import Callable

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
    return run_epoch(data, lambda args: withgradient(lambda m: loss(m, *args), model),
                     lambda grads: update_(opt_state, model, grads[0]), progress=progress)


def run_epoch(data, gradient_of: Callable, apply: Callable, *, progress=None, callbacks=(), stop=()) -> list[float]:
    """The loop behind both styles of ``train_``: for each item, ``gradient_of(args)``
    gives ``(value, grads)``; a finite loss is followed by ``apply(grads)`` and then the
    callbacks; an exception of a type in ``stop`` ends the epoch quietly. Returns the
    per-item losses; shows a tqdm bar when ``progress`` (default: stderr is a terminal)."""
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
            try:
                val, grads = gradient_of(args)
                l = _scalar(val)
                if not math.isfinite(l):
                    raise NonFiniteLossError(l, i)
                apply(grads)
                losses.append(l)
                if bar is not None and i % 10 == 0:
                    bar.set_postfix(loss=f"{l:.4g}", refresh=False)
                for f in callbacks:
                    f()
            except stop:
                break
    finally:
        if bar is not None:
            bar.close()
    return losses
