"""Weight initialisers and array constructors. Initialisers are ``init(*shape)``
callables returning float32 Tensors; ``rng=`` (an ``fx.Rng`` or an int seed) makes
them reproducible, as does ``fx.seed(n)`` for the global generator. Called with only
keywords they return a configured initialiser: ``fx.glorot_uniform(gain=2)``."""
from __future__ import annotations

import functools

from . import _core

__all__ = ["seed", "Rng", "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal",
           "zeros", "ones", "rand", "randn", "zeros32", "ones32", "rand32", "randn32"]

Rng = _core.Rng


def seed(n: int) -> None:
    """Reseed the global random generator.

    >>> import flux_rs as fx
    >>> fx.seed(1); a = fx.rand(2).tolist(); fx.seed(1); a == fx.rand(2).tolist()
    True
    """
    _core.seed(int(n))


def _rng(rng):
    if rng is None or isinstance(rng, _core.Rng):
        return rng
    if isinstance(rng, int):
        return _core.Rng(rng)
    raise TypeError(f"rng must be an fx.Rng or an int seed, got {type(rng).__name__}")


def _shape(dims) -> list[int]:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise ValueError(f"a shape must be non-negative integers, got {dims}")
    return list(dims)


def _initialiser(name: str, default_gain: float):
    def init(*dims, gain: float = default_gain, rng=None, dtype: str = "float32"):
        if not dims:
            return functools.partial(init, gain=gain, rng=rng, dtype=dtype)
        return _core.init(name, _shape(dims), dtype, float(gain), _rng(rng))
    init.__name__ = init.__qualname__ = name
    return init


glorot_uniform = _initialiser("glorot_uniform", 1.0)
glorot_uniform.__doc__ = """U(−a, a) with a = gain·√(6/(fan_in + fan_out)).

>>> import flux_rs as fx
>>> fx.glorot_uniform(3, 4, rng=0).shape
(3, 4)
"""
glorot_normal = _initialiser("glorot_normal", 1.0)
glorot_normal.__doc__ = "N(0, σ) with σ = gain·√(2/(fan_in + fan_out)).\n\n>>> import flux_rs as fx\n>>> fx.glorot_normal(2, 2).dtype\ndtype('float32')\n"
kaiming_uniform = _initialiser("kaiming_uniform", 2 ** 0.5)
kaiming_uniform.__doc__ = "U(−b, b) with b = gain·√(3/fan_in).\n\n>>> import flux_rs as fx\n>>> fx.kaiming_uniform(2, 2).shape\n(2, 2)\n"
kaiming_normal = _initialiser("kaiming_normal", 2 ** 0.5)
kaiming_normal.__doc__ = "N(0, σ) with σ = gain/√fan_in.\n\n>>> import flux_rs as fx\n>>> fx.kaiming_normal(2, 2).shape\n(2, 2)\n"


def _filled(value, dtype):
    def make(*dims):
        return _core.full(_shape(dims), value, dtype)
    return make


def _random(kind, dtype):
    def make(*dims, rng=None):
        return _core.init(kind, _shape(dims), dtype, None, _rng(rng))
    return make


zeros = _filled(0.0, "float64")
zeros.__doc__ = "float64 zeros, as numpy: ``fx.zeros(2, 3)``.\n\n>>> import flux_rs as fx\n>>> fx.zeros(2).tolist()\n[0.0, 0.0]\n"
ones = _filled(1.0, "float64")
ones.__doc__ = "float64 ones (usable as ``init=``).\n\n>>> import flux_rs as fx\n>>> fx.ones(1, 2).tolist()\n[[1.0, 1.0]]\n"
zeros32 = _filled(0.0, "float32")
zeros32.__doc__ = "float32 zeros.\n\n>>> import flux_rs as fx\n>>> fx.zeros32(2).dtype\ndtype('float32')\n"
ones32 = _filled(1.0, "float32")
ones32.__doc__ = "float32 ones.\n\n>>> import flux_rs as fx\n>>> fx.ones32(2).tolist()\n[1.0, 1.0]\n"
rand = _random("rand", "float64")
rand.__doc__ = "float64 uniform numbers in [0, 1).\n\n>>> import flux_rs as fx\n>>> fx.rand(3).shape\n(3,)\n"
randn = _random("randn", "float64")
randn.__doc__ = "float64 standard normal numbers.\n\n>>> import flux_rs as fx\n>>> fx.randn(3).shape\n(3,)\n"
rand32 = _random("rand", "float32")
rand32.__doc__ = "float32 uniform numbers in [0, 1).\n\n>>> import flux_rs as fx\n>>> fx.rand32(3).dtype\ndtype('float32')\n"
randn32 = _random("randn", "float32")
randn32.__doc__ = "float32 standard normal numbers.\n\n>>> import flux_rs as fx\n>>> fx.randn32(3).dtype\ndtype('float32')\n"
