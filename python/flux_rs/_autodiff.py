"""``fx.gradient`` and ``fx.withgradient`` with Flux (Zygote) semantics."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["gradient", "withgradient", "WithGradient"]


class WithGradient(NamedTuple):
    """What :func:`withgradient` returns: ``val`` (all that ``f`` returned) and ``grad``."""
    val: Any
    grad: tuple


def _as_arg(a):
    """Floats and float numpy arrays become Tensors so that they can be differentiated."""
    if isinstance(a, float):
        return _core.tensor(a, "float64")
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return _core.tensor(a)
    return a


def _loss_of(val) -> Tensor | None:
    loss = val[0] if isinstance(val, tuple) and len(val) > 0 else val
    if isinstance(loss, Tensor):
        return loss
    if isinstance(loss, (int, float, np.floating, np.integer)):
        return None  # a constant: every gradient is None
    raise TypeError(f"the function being differentiated must return a scalar Tensor (or a tuple whose first "
                    f"element is one), got {type(loss).__name__}")


# The implicit style's ``Params`` (registered by ``implicit.py``, which imports this
# module): ``gradient(f, ps)`` with a zero-argument ``f``.
_PARAMS_TYPES: tuple = ()


def withgradient(f: Callable, *args) -> WithGradient:
    """The value of ``f(*args)`` and the gradient of its scalar result with respect to
    each argument. If ``f`` returns a tuple, the gradient is of its first element and
    ``val`` is the whole tuple.

    >>> import flux_rs as fx, numpy as np
    >>> val, (g,) = fx.withgradient(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]))
    >>> float(val), np.asarray(g).tolist()
    (5.0, [2.0, 4.0])
    """
    if len(args) == 1 and isinstance(args[0], _PARAMS_TYPES):
        return args[0]._implicit_withgradient(f)
    # one call into Rust (src/autodiff.rs): convert float arguments (``_as_arg``), walk
    # the arguments for their tensors, record f, run the backward pass and rebuild the
    # gradient trees from the walk's plans
    return WithGradient(*_core.value_and_grad(f, args))


def record_gradient(params: list, run: Callable[[], Any]) -> tuple[Any, list]:
    """Run ``run()`` with a tape watching ``params``; return its value and the gradient
    of its scalar loss for each parameter (None where it does not depend on one). The
    tape is closed on every path, errors included."""
    _core.tape_start(params)
    try:
        val = run()
        loss = _loss_of(val)
    except BaseException:
        _core.tape_abort()
        raise
    if loss is None:
        _core.tape_abort()
        return val, [None] * len(params)
    return val, _core.tape_finish(loss, params)


def gradient(f: Callable, *args) -> tuple:
    """A tuple with one gradient per argument of ``f`` (None where there is none).
    Models get structural gradients: ``grads[0].layers[0].weight``.

    >>> import flux_rs as fx
    >>> fx.gradient(lambda a, b: a * b, 2.0, 3.0)
    (3.0, 2.0)
    """
    if len(args) == 1 and isinstance(args[0], _PARAMS_TYPES):
        return args[0]._implicit_withgradient(f).grad
    return _core.value_and_grad(f, args)[1]
