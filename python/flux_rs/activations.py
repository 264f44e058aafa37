"""Activation functions (NNlib's), computed in Rust. Each takes a Tensor or array."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core
from ._typing import ascii_alias

if TYPE_CHECKING:
    from ._core import Tensor
    from ._typing import TensorLike

__all__ = ["identity", "relu", "leakyrelu", "sigmoid", "σ", "tanh", "elu", "gelu", "swish",
           "softplus", "softmax", "logsoftmax", "KERNELS"]


def identity(x):
    """Returns ``x`` unchanged."""
    return x


def relu(x):
    """``max(0, x)``.

    >>> import flux_rs as fx
    >>> fx.relu(fx.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    return _core.unary(x, "relu")


def leakyrelu(x, a: float = 0.01):
    """``x`` if ``x > 0`` else ``a·x``.

    >>> import flux_rs as fx
    >>> fx.leakyrelu(fx.tensor([-2.0]), 0.1).tolist()
    [-0.20000000298023224]
    """
    return _core.unary(x, "leakyrelu", a)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, computed stably.

    >>> import flux_rs as fx
    >>> fx.sigmoid(fx.tensor([0.0])).tolist()
    [0.5]
    """
    return _core.unary(x, "sigmoid")


σ = sigmoid


def tanh(x):
    """Hyperbolic tangent.

    >>> import flux_rs as fx
    >>> fx.tanh(fx.tensor([0.0])).tolist()
    [0.0]
    """
    return _core.unary(x, "tanh")


def elu(x: TensorLike, α: float = 1.0, *, alpha: float | None = None) -> Tensor:
    """``x`` if ``x ≥ 0`` else ``α·(exp(x) − 1)``; ``alpha=`` is the ASCII spelling of ``α``.

    >>> import flux_rs as fx
    >>> round(fx.elu(fx.tensor([-2.0], dtype="float64")).item(), 6)
    -0.864665
    """
    return _core.unary(x, "elu", ascii_alias("elu", "α", α, "alpha", alpha, default=1.0))


def gelu(x):
    """GELU, tanh approximation (NNlib's ``gelu``).

    >>> import flux_rs as fx
    >>> round(fx.gelu(fx.tensor([2.0], dtype="float64")).item(), 6)
    1.954598
    """
    return _core.unary(x, "gelu")


def swish(x):
    """``x·σ(x)``.

    >>> import flux_rs as fx
    >>> round(fx.swish(fx.tensor([2.0], dtype="float64")).item(), 6)
    1.761594
    """
    return _core.unary(x, "swish")


def softplus(x):
    """``log(1 + exp(x))``, computed stably.

    >>> import flux_rs as fx
    >>> round(fx.softplus(fx.tensor([0.0], dtype="float64")).item(), 6)
    0.693147
    """
    return _core.unary(x, "softplus")


def softmax(x, dims: int = -1):
    """``exp(x) / sum(exp(x), dims)``, stable; the class dimension is last by default.

    >>> import flux_rs as fx
    >>> fx.softmax(fx.tensor([0.0, 0.0])).tolist()
    [0.5, 0.5]
    """
    return _core.softmax(x, dims, False)


def logsoftmax(x, dims: int = -1):
    """``x − log(sum(exp(x), dims))``, stable.

    >>> import flux_rs as fx
    >>> round(fx.logsoftmax(fx.tensor([0.0, 0.0], dtype="float64")).tolist()[0], 6)
    -0.693147
    """
    return _core.softmax(x, dims, True)


# activations a layer can fuse into its Rust kernel: function -> (kernel name, parameter)
KERNELS = {identity: ("identity", None), relu: ("relu", None), leakyrelu: ("leakyrelu", 0.01),
           sigmoid: ("sigmoid", None), tanh: ("tanh", None), elu: ("elu", 1.0), gelu: ("gelu", None),
           swish: ("swish", None), softplus: ("softplus", None)}
