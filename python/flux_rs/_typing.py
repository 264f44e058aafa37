"""Type aliases of the public signatures (what ``inspect.signature`` and mypy show)."""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np

from ._core import Tensor

#: what an operation accepts as an array: a Tensor, a numpy array, a number or nested lists
TensorLike = Union[Tensor, "np.ndarray[Any, Any]", float, int, Sequence[Any]]
#: an elementwise activation such as ``fx.relu``
Activation = Callable[[Any], Any]
#: a loss's reduction: "mean", "sum", "none" or a function of the unreduced Tensor
Agg = Union[str, Callable[[Tensor], Any]]


def check_activation(owner: str, f: Any) -> Any:
    """``f`` when it is callable; else a TypeError naming ``owner``, raised when the layer
    is built rather than at its first call (a name such as ``"relu"`` points to the
    function ``fx.relu``).

    >>> from flux_rs._typing import check_activation
    >>> check_activation("Dense", abs) is abs
    True
    """
    if callable(f):
        return f
    hint = f" (write fx.{f}, not the string {f!r})" if isinstance(f, str) and f.isidentifier() else ""
    raise TypeError(f"{owner}: the activation must be a function such as fx.relu{hint}, got {f!r}")


def ascii_alias(fname: str, uname: str, uval: Any, aname: str, aval: Any, *, default: Any = None,
                required: bool = False) -> Any:
    """The value of a keyword that has a Unicode name (Flux's ``initβ``) and an ASCII
    alias (``init_beta``): whichever was given (``default`` is the Unicode keyword's
    default, None for the alias); both at once is a TypeError.

    >>> from flux_rs._typing import ascii_alias
    >>> ascii_alias("BatchNorm", "λ", None, "lambda_", abs)
    <built-in function abs>
    """
    if aval is not None:
        if uval is not default:
            raise TypeError(f"{fname} got both {uname} and its ASCII spelling {aname}; give one")
        return aval
    if required and uval is None:
        raise TypeError(f"{fname} needs {uname} (or {aname})")
    return uval
