"""Recurrent layers with Flux's gate order, batch first: input (batch, time, features)
or (time, features) for one sequence. Cells take ``(x, state)`` for one time step.

The input projection of all time steps is one matmul; each step then costs one matmul
with the recurrent kernel and a few fused elementwise ops, all in Rust.
"""
from __future__ import annotations

from . import _core
from ._core import Tensor
from .activations import sigmoid, tanh
from .init import glorot_uniform
from .layers import as_input

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]


def _zeros(shape, like: Tensor) -> Tensor:
    return _core.full(list(shape), 0.0, like.dtype.name)


class _Cell:
    """Shared parameters: Wi (gates·out, in), Wh (gates·out, out), b (gates·out)."""

    gates = 1

    def __init__(self, in_: int, out: int, *, init_kernel=glorot_uniform, init_recurrent_kernel=glorot_uniform,
                 bias: bool = True, rng=None):
        kw = {} if rng is None else {"rng": rng}
        g = self.gates
        self.Wi = init_kernel(g * out, in_, **kw)
        self.Wh = init_recurrent_kernel(g * out, out, **kw)
        self.bias = _zeros([g * out], self.Wi) if bias else False

    @property
    def out(self) -> int:
        return self.Wh.shape[1]

    def _input_proj(self, x: Tensor) -> Tensor:
        """x @ Wi.T + b for every step at once."""
        b = self.bias if isinstance(self.bias, Tensor) else None
        return _core.dense(x, self.Wi, b, "identity")

    def _check(self, x: Tensor):
        if x.shape[-1] != self.Wi.shape[1]:
            raise ValueError(f"{self!r} expects input with last dimension {self.Wi.shape[1]}, got shape {x.shape}")

    def initialstates(self, x: Tensor):
        return _zeros(x.shape[:-1][:1] + (self.out,) if x.ndim == 2 else (self.out,), self.Wi)

    def __call__(self, x, state=None):
        """One time step: ``(output, new_state)``; the state starts at zeros."""
        x = as_input(x, self.Wi.dtype)
        self._check(x)
        state = self.initialstates(x) if state is None else state
        return _step_out(self, self._input_proj(x), state)

    def __repr__(self):
        return f"{type(self).__name__}({self.Wi.shape[1]} => {self.out})"


class RNNCell(_Cell):
    """``h′ = σ(Wi·x + Wh·h + b)``; returns ``(h′, h′)``.

    >>> import flux_rs as fx
    >>> c = fx.RNNCell(3, 5)
    >>> y, h = c(fx.ones32(2, 3))
    >>> y.shape
    (2, 5)
    """

    def __init__(self, in_: int, out: int, σ=tanh, **kw):
        super().__init__(in_, out, **kw)
        self.σ = σ

    def _step(self, gx: Tensor, h: Tensor) -> Tensor:
        return self.σ(gx + h @ self.Wh.T)



class LSTMCell(_Cell):
    """LSTM step with gate blocks in Flux's order: input, forget, cell, output.
    State ``(h, c)``; returns ``(h′, (h′, c′))``.

    >>> import flux_rs as fx
    >>> y, (h, c) = fx.LSTMCell(3, 4)(fx.ones32(2, 3))
    >>> (y.shape, c.shape)
    ((2, 4), (2, 4))
    """

    gates = 4

    def initialstates(self, x):
        z = super().initialstates(x)
        return (z, z)

    def _step(self, gx: Tensor, state):
        h, c = state
        o = self.out
        g = gx + h @ self.Wh.T
        i_, f_, c_, o_ = (g[..., k * o:(k + 1) * o] for k in range(4))
        c2 = sigmoid(f_) * c + sigmoid(i_) * tanh(c_)
        h2 = sigmoid(o_) * tanh(c2)
        return h2, (h2, c2)



class GRUCell(_Cell):
    """GRU step (Flux's v1 variant), gate blocks r, z, h̃:
    ``h̃ = tanh(Wxh·x + r ⊙ (Whh·h) + bh)``, ``h′ = (1 − z)·h̃ + z·h``; returns ``(h′, h′)``.

    >>> import flux_rs as fx
    >>> fx.GRUCell(3, 4)(fx.ones32(2, 3))[0].shape
    (2, 4)
    """

    gates = 3

    def _step(self, gx: Tensor, h: Tensor):
        o = self.out
        gh = h @ self.Wh.T
        r = sigmoid(gx[..., :o] + gh[..., :o])
        z = sigmoid(gx[..., o:2 * o] + gh[..., o:2 * o])
        hh = tanh(gx[..., 2 * o:] + r * gh[..., 2 * o:])
        h2 = (1 - z) * hh + z * h
        return h2



class _Recurrence:
    """Runs a cell over the time dimension (dimension 1 of (batch, time, features))."""

    cell_type: type = RNNCell

    def __init__(self, in_: int, out: int, *args, return_state: bool = False, **kw):
        self.cell = self.cell_type(in_, out, *args, **kw)
        self.return_state = return_state

    def __call__(self, x, state=None):
        cell = self.cell
        x = as_input(x, cell.Wi.dtype)
        cell._check(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"{self!r} expects input (batch, time, features) or (time, features), got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(1, *x.shape)
        gx = cell._input_proj(x)  # (batch, time, gates·out): one matmul for all steps
        if state is None:
            state = cell.initialstates(x[:, 0])
        ys = []
        for t in range(x.shape[1]):
            y, state = _step_out(cell, gx[:, t], state)
            ys.append(y)
        out = _core.stack(ys, 1) if ys else _zeros([x.shape[0], 0, cell.out], cell.Wi)
        if unbatched:
            out = out[0]
            state = tuple(s[0] for s in state) if isinstance(state, tuple) else state[0]
        return (out, state) if self.return_state else out

    def __repr__(self):
        return f"{type(self).__name__}({self.cell.Wi.shape[1]} => {self.cell.out})"


def _step_out(cell, gx, state):
    r = cell._step(gx, state)
    if isinstance(cell, LSTMCell):
        return r
    return r, r


class RNN(_Recurrence):
    """An Elman RNN over a sequence: output (batch, time, out); with
    ``return_state=True`` also the last state. ``rnn(x, h0)`` starts from ``h0``.

    >>> import flux_rs as fx
    >>> fx.RNN(3, 5)(fx.ones32(2, 7, 3)).shape
    (2, 7, 5)
    """
    cell_type = RNNCell


class LSTM(_Recurrence):
    """An LSTM over a sequence (Flux's gate order); the state is ``(h, c)``.
    ``lstm(x, (h0, c0))`` starts from that state, each part (batch, out) (or (out,)
    for one unbatched sequence); without it the state starts at zeros.

    >>> import flux_rs as fx
    >>> lstm = fx.LSTM(3, 4, return_state=True)
    >>> y, (h, c) = lstm(fx.ones32(2, 5, 3))
    >>> y.shape, h.shape
    ((2, 5, 4), (2, 4))
    >>> y, (h, c) = lstm(fx.ones32(2, 5, 3), (h, c))   # carry on from the last state
    >>> y, (h, c) = lstm(fx.ones32(2, 5, 3), (fx.ones32(2, 4), fx.zeros32(2, 4)))   # a chosen (h0, c0)
    """
    cell_type = LSTMCell


class GRU(_Recurrence):
    """A GRU over a sequence (Flux's v1 variant). ``gru(x, h0)`` starts from the state
    ``h0`` (batch, out) (or (out,) for one unbatched sequence); without it, from zeros.

    >>> import flux_rs as fx
    >>> fx.GRU(3, 4)(fx.ones32(6, 3)).shape
    (6, 4)
    >>> fx.GRU(3, 4)(fx.ones32(2, 6, 3), fx.ones32(2, 4)).shape   # from h0 = ones
    (2, 6, 4)
    """
    cell_type = GRUCell
