"""Multi-head attention, batch first: queries (batch, q_len, dim), keys and values
(batch, kv_len, dim). Shells over Rust: the layer's whole forward pass (projections,
masked softmax attention, dropout) is one call into flux-core, whose attention is one
fused tape node."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _core
from ._core import Tensor
from .init import glorot_uniform
from .layers import Dense, as_input

__all__ = ["MultiHeadAttention", "make_causal_mask", "dot_product_attention"]


def make_causal_mask(x, dims: int = 1) -> np.ndarray:
    """A (len, len) boolean mask that lets position i attend to positions ≤ i, for
    ``x`` with the sequence along ``dims``.

    >>> import flux_rs as fx, numpy as np
    >>> fx.make_causal_mask(np.zeros((1, 3, 2))).astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    n = x.shape[dims]
    return np.tril(np.ones((n, n), dtype=bool))


def _check_nheads(nheads):
    if isinstance(nheads, bool) or not isinstance(nheads, (int, np.integer)):
        raise TypeError(f"nheads must be an integer, got {nheads!r}")
    if nheads < 1:
        raise ValueError(f"nheads must be at least 1, got {nheads}")


def dot_product_attention(q: Tensor, k: Tensor, v: Tensor, bias=None, *, mask=None, nheads: int = 1, fdrop=None):
    """Scaled dot-product attention over ``nheads`` heads. Inputs (batch, len, dim);
    returns ``(y, α)`` with y (batch, q_len, v_dim) and α (batch, nheads, q_len, kv_len).
    ``fdrop``, an ``fx.Dropout`` or None, drops attention weights before they weigh the
    values (α itself is returned without it), as NNlib does. One fused Rust op; ``mask``
    is a boolean array, true where a query may attend (a float array is a TypeError: an
    additive mask of 0 and -inf goes in ``bias``, which is added to the scaled scores).

    >>> import flux_rs as fx
    >>> y, a = fx.dot_product_attention(fx.ones32(1, 2, 4), fx.ones32(1, 3, 4), fx.ones32(1, 3, 4), nheads=2)
    >>> y.shape, a.shape
    ((1, 2, 4), (1, 2, 2, 3))
    """
    _check_nheads(nheads)
    return _core.dot_product_attention(q, k, v, int(nheads), bias, mask, *_drop_args(fdrop))


def _drop_args(fdrop):
    """(p, active, rng) of the dropout the fused op applies to the weights, from an
    ``fx.Dropout`` or None; ``active`` None is Flux's automatic mode, which Rust
    resolves (training iff a gradient is being taken)."""
    from .normalise import Dropout
    if fdrop is None:
        return 0.0, False, None
    if not isinstance(fdrop, Dropout):
        raise TypeError(f"fdrop must be an fx.Dropout or None (attention draws its mask in Rust), got {type(fdrop).__name__}")
    return fdrop.p, fdrop.active, fdrop.rng


class MultiHeadAttention:
    """Multi-head attention as Flux's ``MultiHeadAttention``, batch first.

    ``dims`` is an int (all sizes equal), ``(in, qkv, out)``, ``(in, (qk, v), out)``
    or ``((q_in, k_in, v_in), (qk, v), out)``. ``dropout_prob`` drops attention weights
    while training (Flux's automatic mode; ``fx.trainmode_``/``fx.testmode_`` force it). Call as ``mha(q)`` (self-attention),
    ``mha(q, kv)`` or ``mha(q, k, v, bias=None, mask=None)`` (``mask`` boolean, true where
    a query may attend; an additive float mask goes in ``bias``); returns ``(y, α)`` with
    α of shape (batch, nheads, q_len, kv_len).

    >>> import flux_rs as fx
    >>> mha = fx.MultiHeadAttention(8, nheads=2)
    >>> y, a = mha(fx.ones32(3, 5, 8))
    >>> y.shape, a.shape
    ((3, 5, 8), (3, 2, 5, 5))
    """

    def __init__(self, dims: int | tuple[Any, ...], nheads: int = 8, *, bias: bool = False,
                 init: Callable[..., Any] = glorot_uniform, dropout_prob: float = 0.0, rng: Any = None) -> None:
        (qi, ki, vi), (qk, vd), out = _parse_dims(dims)
        _check_nheads(nheads)
        if qk % nheads or vd % nheads:
            raise ValueError(f"qk dimension {qk} and v dimension {vd} must be divisible by nheads={nheads}")
        from .normalise import Dropout
        kw = {"bias": bias, "init": init, "rng": rng}
        self.nheads = nheads
        self.q_proj = Dense(qi, qk, **kw)
        self.k_proj = Dense(ki, qk, **kw)
        self.v_proj = Dense(vi, vd, **kw)
        self.out_proj = Dense(vd, out, **kw)
        # a Dropout layer in Flux's automatic mode: active only inside a gradient
        self.attn_drop = Dropout(dropout_prob, rng=rng)

    def __call__(self, q, k=None, v=None, bias=None, *, mask=None):
        k = q if k is None else k
        v = k if v is None else v
        dt = self.q_proj.weight.dtype
        # one conversion per distinct input: self-attention stays one tensor, which Rust
        # projects with one stacked GEMM
        done: dict[int, Tensor] = {}
        for t in (q, k, v):
            if id(t) not in done:
                done[id(t)] = as_input(t, dt)
        q, k, v = (done[id(t)] for t in (q, k, v))
        return _core.multihead_attention(q, k, v, self.nheads, *_proj(self.q_proj), *_proj(self.k_proj),
                                         *_proj(self.v_proj), *_proj(self.out_proj), bias, mask,
                                         *_drop_args(self.attn_drop))

    def __repr__(self):
        return (f"MultiHeadAttention({self.q_proj.weight.shape[1]} => {self.q_proj.weight.shape[0]} => "
                f"{self.out_proj.weight.shape[0]}; nheads={self.nheads})")


def _proj(d: Dense):
    return d.weight, (d.bias if type(d.bias) is Tensor else None)


def _parse_dims(dims):
    if isinstance(dims, int):
        return (dims, dims, dims), (dims, dims), dims
    inp, mid, out = dims
    ins = (inp, inp, inp) if isinstance(inp, int) else tuple(inp)
    mids = (mid, mid) if isinstance(mid, int) else tuple(mid)
    return ins, mids, out
