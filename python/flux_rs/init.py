"""Weight initialisers and array constructors. Initialisers are ``init(*shape)``
callables returning float32 Tensors; ``rng=`` (an ``fx.Rng`` or an int seed) makes
them reproducible, as does ``fx.seed(n)`` for the global generator. Called with only
keywords they return a configured initialiser: ``fx.glorot_uniform(gain=2)``."""
from __future__ import annotations

import functools

from . import _core

__all__ = ["seed", "Rng", "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal",
           "truncated_normal", "lecun_normal", "orthogonal", "sparse_init", "identity_init",
           "zeros", "ones", "rand", "randn", "zeros32", "ones32", "rand32", "randn32"]

Rng = _core.Rng


def seed(n: int) -> None:
    """Reseed the global random generator.

    >>> import flux_rs as fx
    >>> fx.seed(1); a = fx.rand(2).tolist(); fx.seed(1); a == fx.rand(2).tolist()
    True
    """
    _core.seed(n)  # checked there: a non-negative integer (1.5 is a TypeError, not 1)


def derived_rng() -> "_core.Rng":
    """A new generator seeded from the global one, so that ``fx.seed(n)`` also fixes
    what the default generator of a DataLoader or Dropout draws."""
    return _core.Rng(int(_core.init("rand", [1], "float64", None, None).item() * 2**53))


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


def _split_rng(dims, rng):
    """Flux's optional leading ``rng`` argument: ``init(rng, 3, 4)``."""
    if dims and isinstance(dims[0], _core.Rng):
        if rng is not None:
            raise TypeError("give the generator either first or as rng=, not both")
        return dims[1:], dims[0]
    return dims, rng


def _initialiser(name: str, defaults: dict, required: tuple = ()):
    """An ``init(*shape, rng=None, dtype="float32", **keywords)`` over ``_core.init``;
    called with keywords only, it returns the configured initialiser."""
    def init(*dims, rng=None, dtype: str = "float32", **kw):
        bad = sorted(set(kw) - set(defaults))
        if bad:
            raise TypeError(f"{name} got unexpected keyword(s) {', '.join(bad)}; it takes "
                            f"{', '.join(list(defaults) + ['rng', 'dtype'])}")
        dims, rng = _split_rng(dims, rng)
        if not dims:
            return functools.partial(init, rng=rng, dtype=dtype, **kw)
        vals = {**defaults, **kw}
        for k in required:
            if vals.get(k) is None:
                raise TypeError(f"{name} needs the keyword {k}=")
        args = {}
        for k, v in vals.items():
            if k == "shift":
                v = [v] if isinstance(v, int) else list(v)
                if not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
                    raise TypeError(f"{name}: shift must be an integer or a tuple of integers, got {vals[k]!r}")
            elif v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise TypeError(f"{name}: {k} must be a real number, got {v!r}")
                v = float(v)
            args[k] = v
        return _core.init(name, _shape(dims), dtype, rng=_rng(rng), **args)
    init.__name__ = init.__qualname__ = name
    return init


glorot_uniform = _initialiser("glorot_uniform", {"gain": 1.0})
glorot_uniform.__doc__ = """U(−a, a) with a = gain·√(6/(fan_in + fan_out)).

>>> import flux_rs as fx
>>> fx.glorot_uniform(3, 4, rng=0).shape
(3, 4)
"""
glorot_normal = _initialiser("glorot_normal", {"gain": 1.0})
glorot_normal.__doc__ = "N(0, σ) with σ = gain·√(2/(fan_in + fan_out)).\n\n>>> import flux_rs as fx\n>>> fx.glorot_normal(2, 2).dtype\ndtype('float32')\n"
kaiming_uniform = _initialiser("kaiming_uniform", {"gain": 2 ** 0.5})
kaiming_uniform.__doc__ = "U(−b, b) with b = gain·√(3/fan_in).\n\n>>> import flux_rs as fx\n>>> fx.kaiming_uniform(2, 2).shape\n(2, 2)\n"
kaiming_normal = _initialiser("kaiming_normal", {"gain": 2 ** 0.5})
kaiming_normal.__doc__ = "N(0, σ) with σ = gain/√fan_in.\n\n>>> import flux_rs as fx\n>>> fx.kaiming_normal(2, 2).shape\n(2, 2)\n"
truncated_normal = _initialiser("truncated_normal", {"mean": 0.0, "std": 1.0, "lo": -2.0, "hi": 2.0})
truncated_normal.__doc__ = """N(mean, std) truncated to [lo, hi] by inverse-CDF sampling, as Flux.

>>> import flux_rs as fx
>>> bool(abs(fx.truncated_normal(1000, lo=-1, hi=1, rng=0).numpy()).max() <= 1)
True
"""
lecun_normal = _initialiser("lecun_normal", {"gain": 1.0})
lecun_normal.__doc__ = """Truncated normal with σ = gain·√(1/fan_in), limits ±2.

>>> import flux_rs as fx
>>> fx.lecun_normal(4, 3, rng=1).shape
(4, 3)
"""
orthogonal = _initialiser("orthogonal", {"gain": 1.0})
orthogonal.__doc__ = """A (semi-)orthogonal matrix times ``gain`` (QR of a normal draw, sign-fixed).
Shapes of 3 or more dimensions are flattened to ``(shape[0], prod(shape[1:]))``; 1-D is
a ValueError.

>>> import flux_rs as fx, numpy as np
>>> q = fx.orthogonal(3, 5, rng=0).numpy()
>>> bool(np.allclose(q @ q.T, np.eye(3), atol=1e-6))
True
"""
sparse_init = _initialiser("sparse_init", {"sparsity": None, "std": 0.01}, required=("sparsity",))
sparse_init.__doc__ = """N(0, std) with ``ceil(sparsity·rows)`` zeros in each column; 2-D only.

>>> import flux_rs as fx
>>> int((fx.sparse_init(10, 4, sparsity=0.3, rng=0).numpy() == 0).sum())
12
"""
identity_init = _initialiser("identity_init", {"gain": 1.0, "shift": 0})
identity_init.__doc__ = """Identity-like weights: 1-D zeros, 2-D ``gain·I``, a conv kernel
``(out, in, k...)`` with ``gain`` at the centre tap of ``w[i, i]``; ``shift`` shifts
circularly (dimensions in Flux's order: spatial first for kernels).

>>> import flux_rs as fx
>>> fx.identity_init(2, 2, gain=3).tolist()
[[3.0, 0.0], [0.0, 3.0]]
"""


def _filled(value, dtype):
    def make(*dims):
        return _core.full(_shape(dims), value, dtype)
    return make


def _random(kind, dtype):
    def make(*dims, rng=None):
        dims, rng = _split_rng(dims, rng)
        return _core.init(kind, _shape(dims), dtype, rng=_rng(rng))
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
