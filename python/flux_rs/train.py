"""``train_``: one epoch of the explicit training loop, and its error."""
from __future__ import annotations

import inspect
import math
import sys
import types
from typing import Any, Callable, Iterable

from ._autodiff import withgradient
from ._core import Tensor
from ._tree import children
from .optimise import Rule, update_

__all__ = ["train_", "NonFiniteLossError", "NonFiniteGradientError"]


class NonFiniteLossError(FloatingPointError):
    """The loss was Inf or NaN; ``loss`` holds the value and ``index`` the 0-based batch.
    The update of that batch was not applied; all earlier ones were."""

    def __init__(self, loss: float, index: int, rank: int | None = None):
        where = "" if rank is None else f" (on rank {rank})"
        super().__init__(f"loss is {loss} on batch {index}{where}, stopping training")
        self.loss, self.index, self.rank = loss, index, rank


class NonFiniteGradientError(FloatingPointError):
    """With ``train_(..., check_grads=True)``: the loss was finite but a gradient was
    not (``sqrt`` at 0, say). ``path`` names the parameter (``layers[0].weight``) and
    ``index`` the 0-based batch; that batch's update was not applied.

    >>> import flux_rs as fx
    >>> issubclass(fx.NonFiniteGradientError, FloatingPointError)
    True
    """

    def __init__(self, path: str, index: int, loss: float):
        super().__init__(f"the gradient of {path} is not finite on batch {index} (the loss, {loss}, is); "
                         "stopping training before this batch's update")
        self.path, self.index, self.loss = path, index, loss


def _path_str(path) -> str:
    s = ""
    for k in path:
        s += f"[{k}]" if isinstance(k, int) else (("." if s else "") + str(k))
    return s or "the root"


def _nonfinite_path(g, path=()):
    """The path of the first Tensor in gradient tree ``g`` with an Inf or NaN, or None."""
    if g is None:
        return None
    if isinstance(g, Tensor):
        # 0·x is NaN exactly where x is not finite; the sum, computed in Rust, says if any is
        return None if math.isfinite((g * 0.0).sum().item()) else path
    for k, v in children(g) or ():
        p = _nonfinite_path(v, path + (k,))
        if p is not None:
            return p
    return None


def _scalar(val) -> float:
    v = val[0] if isinstance(val, tuple) else val
    return float(v.item() if hasattr(v, "item") else v)


def train_(loss: Callable[..., Any], model: Any, data: Iterable[Any], opt_state: Any, *, progress: bool | None = None,
           cb: Any = None, check_grads: bool = False, distributed: bool = False) -> list[float]:
    """One pass over ``data``: for each item ``d``, the gradient of ``loss(model, *d)``
    (``loss(model, d)`` when ``d`` is not a tuple) and one ``update_``. Returns the
    list of per-batch losses. A non-finite loss raises :class:`NonFiniteLossError`
    before its update; with ``check_grads=True`` a finite loss whose gradient holds an
    Inf or NaN raises :class:`NonFiniteGradientError` (naming the parameter) before its
    update too. ``progress=True`` shows a tqdm bar (default: when stderr is a
    terminal). Layers in automatic mode act as in training inside the gradient only;
    ``train_`` does not change their mode.

    ``distributed=True`` trains data-parallel on MPI (``flux_rs.distributed``, extra
    ``flux_rs[mpi]``): the gradients are averaged across ranks between gradient and
    update, a non-finite loss on any rank raises :class:`NonFiniteLossError` on every
    rank at the same batch (``rank`` names where), and the returned losses are the
    means over ranks. Give each rank its part with ``DataLoader(..., shard=(rank, size))``.

    ``cb``, a function or a list of them, is called as ``cb(step, loss)`` after each
    update, with the 0-based index of the batch in this epoch and its loss (a float):
    a learning-rate schedule or a log needs no hand-written loop (over several epochs,
    add ``epoch * len(loader)`` for a global step), and ``fx.stop()`` inside it ends the
    epoch after that step.

    >>> import flux_rs as fx, numpy as np
    >>> m = fx.Dense(1, 1, init=fx.zeros)
    >>> st = fx.setup(fx.Descent(0.1), m)
    >>> fx.train_(lambda m, x: m(x).sum(), m, [(np.ones((1, 1)),)], st, progress=False)
    [0.0]
    >>> sched = fx.schedules.step(0.1, 2, gamma=0.5)   # halve eta every 2 steps
    >>> _ = fx.train_(lambda m, x: m(x).sum(), m, [(np.ones((1, 1)),)] * 4, st, progress=False,
    ...               cb=lambda step, loss: fx.adjust_(st, sched(step + 1)))   # eta for the next step
    >>> st.weight.rule.eta
    0.025
    """
    if type(model).__name__ == "Params" and hasattr(model, "_implicit_train"):
        if distributed:
            raise TypeError("train_(..., distributed=True) takes the explicit style: train_(loss, model, data, opt_state)")
        return model._implicit_train(loss, data, opt_state, cb=cb, progress=progress)
    callbacks = _step_callbacks(cb)
    if opt_state is None or isinstance(opt_state, Rule):
        fix = f"fx.setup({opt_state!r}, model)" if isinstance(opt_state, Rule) else "fx.setup(fx.Adam(), model)"
        raise TypeError(f"train_(loss, model, data, opt_state) needs the optimiser state, got {opt_state!r}: "
                        f"make it once with `opt_state = {fix}` and pass it to every epoch")

    gradient_of = lambda args: withgradient(lambda m: loss(m, *args), model)  # noqa: E731
    reduce = lambda grads: None  # noqa: E731
    if distributed:
        from .distributed import _data_parallel, rank  # an ImportError here says what to install
        gradient_of, reduce = _data_parallel(gradient_of, data)
        if progress is None and rank() != 0:
            progress = False  # one bar per job, not one per rank
    if not check_grads:
        def step(grads):
            reduce(grads)
            update_(opt_state, model, grads[0])
        return run_epoch(data, gradient_of, step, progress=progress, callbacks=callbacks, stop=_stop_training())
    seen = {"batch": 0, "loss": None}  # apply runs once per batch with a finite loss

    def checked_gradient_of(args):
        val, grads = gradient_of(args)
        seen["loss"] = _scalar(val)
        return val, grads

    def checked_apply(grads):
        reduce(grads)  # the same gradient on every rank, so every rank raises alike
        bad = _nonfinite_path(grads[0])
        if bad is not None:
            raise NonFiniteGradientError(_path_str(bad), seen["batch"], seen["loss"])
        update_(opt_state, model, grads[0])
        seen["batch"] += 1
    return run_epoch(data, checked_gradient_of, checked_apply, progress=progress, callbacks=callbacks,
                     stop=_stop_training())


def _step_callbacks(cb) -> list[Callable]:
    """``cb`` as a list of ``f(step, loss)``, checked before the first step: a function
    that cannot take two arguments fails here, not after an update."""
    fs = [] if cb is None else [cb] if callable(cb) else list(cb) if isinstance(cb, (list, tuple)) else None
    if fs is None or not all(callable(f) for f in fs):
        raise TypeError(f"cb must be a function f(step, loss) or a list of them, got {cb!r}")
    for f in fs:
        try:
            inspect.signature(f).bind(0, 0.0)
        except TypeError:
            raise TypeError(f"the callback cb is called as cb(step, loss) after every step, but {f!r} cannot take "
                            "those two arguments (write `lambda step, loss: ...`)") from None
        except ValueError:  # a builtin without a signature: trust it
            pass
    return fs


def _stop_training() -> type:
    from .implicit import StopTraining  # implicit.py builds on this module
    return StopTraining


def run_epoch(data, gradient_of: Callable, apply: Callable, *, progress=None, callbacks=(), stop=()) -> list[float]:
    """The loop behind both styles of ``train_``: for each item, ``gradient_of(args)``
    gives ``(value, grads)``; a finite loss is followed by ``apply(grads)`` and then the
    callbacks, each called as ``f(index, loss)``; an exception of a type in ``stop``
    ends the epoch quietly. Returns the per-item losses; shows a tqdm bar when
    ``progress`` (default: stderr is a terminal)."""
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
                    f(i, l)
            except stop:
                break
    finally:
        if bar is not None:
            bar.close()
    return losses


class _CallableModule(types.ModuleType):
    """``fx.train`` is this module, so that ``fx.train(...)``, Flux's spelling without
    the ``!``, gets a pointer to ``fx.train_`` instead of "'module' object is not callable"."""

    def __call__(self, *args, **kwargs):
        raise TypeError("fx.train is a module; one epoch of training is fx.train_(loss, model, data, opt_state) "
                        "(Flux's train!; a trailing _ marks a function that updates its arguments in place)")


sys.modules[__name__].__class__ = _CallableModule
