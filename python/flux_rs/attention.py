"""Multi-head attention, batch first: queries (batch, q_len, dim), keys and values
(batch, kv_len, dim). The projections are Dense layers; the attention itself is
batched matmuls and a softmax in Rust."""
from __future__ import annotations

import math

import numpy as np

from . import _core
from ._core import Tensor
from .activations import softmax
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


def _additive_mask(mask, dtype) -> Tensor:
    m = np.asarray(mask, dtype=bool)
    return _core.tensor(np.where(m, 0.0, -np.inf), dtype.name)


def _check_nheads(nheads):
    if isinstance(nheads, bool) or not isinstance(nheads, (int, np.integer)):
        raise TypeError(f"nheads must be an integer, got {nheads!r}")
    if nheads < 1:
        raise ValueError(f"nheads must be at least 1, got {nheads}")


def dot_product_attention(q: Tensor, k: Tensor, v: Tensor, bias=None, *, mask=None, nheads: int = 1, fdrop=None):
    """Scaled dot-product attention over ``nheads`` heads. Inputs (batch, len, dim);
    returns ``(y, α)`` with y (batch, q_len, v_dim) and α (batch, nheads, q_len, kv_len).
    ``fdrop``, when given, is applied to the attention weights before they weigh the
    values (α itself is returned without it), as NNlib does.

    >>> import flux_rs as fx
    >>> y, a = fx.dot_product_attention(fx.ones32(1, 2, 4), fx.ones32(1, 3, 4), fx.ones32(1, 3, 4), nheads=2)
    >>> y.shape, a.shape
    ((1, 2, 4), (1, 2, 2, 3))
    """
    B, Lq, dqk = q.shape
    Lk = k.shape[1]
    dv = v.shape[2]
    _check_nheads(nheads)
    if dqk % nheads or dv % nheads:
        raise ValueError(f"query/key dimension {dqk} and value dimension {dv} must be divisible by nheads={nheads}")
    hq, hv = dqk // nheads, dv // nheads
    qh = q.reshape(B, Lq, nheads, hq).permute(0, 2, 1, 3)
    kh = k.reshape(B, Lk, nheads, hq).permute(0, 2, 3, 1)
    vh = v.reshape(B, Lk, nheads, hv).permute(0, 2, 1, 3)
    scores = (qh @ kh) * (1.0 / math.sqrt(hq))  # (B, H, Lq, Lk)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores + _additive_mask(mask, scores.dtype)
    α = softmax(scores, -1)
    y = ((α if fdrop is None else fdrop(α)) @ vh).permute(0, 2, 1, 3).reshape(B, Lq, dv)
    return y, α


class MultiHeadAttention:
    """Multi-head attention as Flux's ``MultiHeadAttention``, batch first.

    ``dims`` is an int (all sizes equal), ``(in, qkv, out)``, ``(in, (qk, v), out)``
    or ``((q_in, k_in, v_in), (qk, v), out)``. ``dropout_prob`` drops attention weights
    while training (Flux's automatic mode; ``fx.trainmode_``/``fx.testmode_`` force it). Call as ``mha(q)`` (self-attention),
    ``mha(q, kv)`` or ``mha(q, k, v, bias=None, mask=None)``; returns ``(y, α)`` with
    α of shape (batch, nheads, q_len, kv_len).

    >>> import flux_rs as fx
    >>> mha = fx.MultiHeadAttention(8, nheads=2)
    >>> y, a = mha(fx.ones32(3, 5, 8))
    >>> y.shape, a.shape
    ((3, 5, 8), (3, 2, 5, 5))
    """

    def __init__(self, dims, nheads: int = 8, *, bias: bool = False, init=glorot_uniform, dropout_prob: float = 0.0,
                 rng=None):
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
        q, k, v = (as_input(t, dt) for t in (q, k, v))
        for name, t in (("query", q), ("key", k), ("value", v)):
            if t.ndim != 3:
                raise ValueError(f"MultiHeadAttention expects {name} of shape (batch, len, dim), got {t.shape}")
        if k.shape[:2] != v.shape[:2] or q.shape[0] != k.shape[0]:
            raise ValueError(f"MultiHeadAttention: query {q.shape}, key {k.shape} and value {v.shape} do not fit")
        y, α = dot_product_attention(self.q_proj(q), self.k_proj(k), self.v_proj(v), bias, mask=mask, nheads=self.nheads,
                                     fdrop=self.attn_drop if self.attn_drop.p > 0 else None)
        return self.out_proj(y), α

    def __repr__(self):
        return (f"MultiHeadAttention({self.q_proj.weight.shape[1]} => {self.q_proj.weight.shape[0]} => "
                f"{self.out_proj.weight.shape[0]}; nheads={self.nheads})")


def _parse_dims(dims):
    if isinstance(dims, int):
        return (dims, dims, dims), (dims, dims), dims
    inp, mid, out = dims
    ins = (inp, inp, inp) if isinstance(inp, int) else tuple(inp)
    mids = (mid, mid) if isinstance(mid, int) else tuple(mid)
    return ins, mids, out
