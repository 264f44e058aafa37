"""Recurrent layers with Flux's gate order, batch first: input (batch, time, features)
or (time, features) for one sequence. Cells take ``(x, state)`` for one time step.

Each class holds its parameters (``Wi``, ``Wh``, ``bias``, so the tree API, ``fx.setup``,
checkpoints and ``loadmodel_`` see them) and makes one call into Rust per use: a whole
sequence, or one cell step, is one fused op (``_core.recurrent``) with one tape node.
"""
from __future__ import annotations

from typing import Any, Callable

from . import _core
from ._typing import Activation, check_activation
from ._core import Tensor
from .activations import KERNELS, tanh
from .init import glorot_uniform
from .layers import make_weight

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]


def _zeros(shape, like: Tensor) -> Tensor:
    """Zeros of ``like``'s dtype on ``like``'s device (a GPU model's states start there)."""
    z = _core.full(list(shape), 0.0, like.dtype.name)
    if like.device != "cpu":
        z._to_device_(like.device)
    return z


#: a weight initialiser: ``init(out, in, rng=...)`` gives a matrix
Init = Callable[..., Any]


class _Cell:
    """Shared parameters: Wi (gates·out, in), Wh (gates·out, out), b (gates·out)."""

    gates = 1
    kind = "rnn"

    def __init__(self, in_: int, out: int, *, init_kernel: Init = glorot_uniform,
                 init_recurrent_kernel: Init = glorot_uniform, bias: bool = True, rng: Any = None) -> None:
        g = self.gates
        self.Wi = make_weight(init_kernel, (g * out, in_), rng)
        self.Wh = make_weight(init_recurrent_kernel, (g * out, out), rng)
        self.bias = _zeros([g * out], self.Wi) if bias else False

    @property
    def out(self) -> int:
        return self.Wh.shape[1]

    def _kernel(self):
        """The activation's name and parameter for Rust (None: not a built-in kernel)."""
        return ("tanh", None)

    def _call(self, x, state, step: bool):
        b = self.bias if type(self.bias) is Tensor else None
        return _core.recurrent(self.kind, x, self.Wi, self.Wh, b, state, *self._kernel(), step)

    def initialstates(self, x: Tensor):
        """The zero state for input ``x`` ((batch, in) or (in,)), on the cell's device."""
        return _zeros(x.shape[:-1][:1] + (self.out,) if x.ndim == 2 else (self.out,), self.Wi)

    def __call__(self, x, state=None):
        """One time step: ``(output, new_state)``; the state starts at zeros."""
        return self._call(x, state, True)

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

    def __init__(self, in_: int, out: int, σ: Activation = tanh, *, init_kernel: Init = glorot_uniform,
                 init_recurrent_kernel: Init = glorot_uniform, bias: bool = True, rng: Any = None) -> None:
        super().__init__(in_, out, init_kernel=init_kernel, init_recurrent_kernel=init_recurrent_kernel, bias=bias,
                         rng=rng)
        self.σ = check_activation("RNNCell", σ)

    def _kernel(self):
        return KERNELS.get(self.σ, (None, None))

    def _call(self, x, state, step: bool):
        if self._kernel()[0] is None:
            return _custom_rnn(self, x, state, step)
        return super()._call(x, state, step)


class LSTMCell(_Cell):
    """LSTM step with gate blocks in Flux's order: input, forget, cell, output.
    State ``(h, c)``; returns ``(h′, (h′, c′))``.

    >>> import flux_rs as fx
    >>> y, (h, c) = fx.LSTMCell(3, 4)(fx.ones32(2, 3))
    >>> (y.shape, c.shape)
    ((2, 4), (2, 4))
    """

    gates = 4
    kind = "lstm"

    def initialstates(self, x):
        z = super().initialstates(x)
        return (z, z)


class GRUCell(_Cell):
    """GRU step (Flux's v1 variant), gate blocks r, z, h̃:
    ``h̃ = tanh(Wxh·x + r ⊙ (Whh·h) + bh)``, ``h′ = (1 − z)·h̃ + z·h``; returns ``(h′, h′)``.

    >>> import flux_rs as fx
    >>> fx.GRUCell(3, 4)(fx.ones32(2, 3))[0].shape
    (2, 4)
    """

    gates = 3
    kind = "gru"


def _custom_rnn(cell: RNNCell, x, state, step: bool):
    """An RNN whose σ is a user function, not a Rust kernel: each step is the fused op
    with the identity (``Wi·x + Wh·h + b``), then σ in Python."""
    b = cell.bias if type(cell.bias) is Tensor else None
    pre = lambda xt, h: _core.recurrent("rnn", xt, cell.Wi, cell.Wh, b, h, "identity", None, True)[0]
    if step:
        h = cell.σ(pre(x, state))
        return h, h
    seq, _ = _core.recurrent("rnn", x, cell.Wi, cell.Wh, b, state, "identity", None, False)  # checks shapes
    unbatched = seq.ndim == 2
    xs = _core.tensor(x, cell.Wi.dtype.name) if not isinstance(x, Tensor) else x
    steps, h = [], state
    for t in range(xs.shape[-2]):
        h = cell.σ(pre(xs[t] if unbatched else xs[:, t], h))
        steps.append(h)
    if not steps:
        return seq, (state if state is not None else (_zeros([cell.out], cell.Wi) if unbatched
                                                      else _zeros([xs.shape[0], cell.out], cell.Wi)))
    return _core.stack(steps, 0 if unbatched else 1), h


class _Recurrence:
    """Runs a cell over the time dimension (dimension 1 of (batch, time, features))."""

    cell_type: type = RNNCell

    def __init__(self, in_: int, out: int, *args: Any, return_state: bool = False, **kw: Any) -> None:
        self.cell = self.cell_type(in_, out, *args, **kw)
        self.return_state = return_state

    def __call__(self, x, state=None):
        """The states of every step; with ``return_state=True`` also the last state."""
        out, state = self.cell._call(x, state, False)
        return (out, state) if self.return_state else out

    def __repr__(self):
        return f"{type(self).__name__}({self.cell.Wi.shape[1]} => {self.cell.out})"


class RNN(_Recurrence):
    """An Elman RNN over a sequence: output (batch, time, out); with
    ``return_state=True`` also the last state. ``rnn(x, h0)`` starts from ``h0``.

    >>> import flux_rs as fx
    >>> fx.RNN(3, 5)(fx.ones32(2, 7, 3)).shape
    (2, 7, 5)
    """
    cell_type = RNNCell

    def __init__(self, in_: int, out: int, σ: Activation = tanh, *, return_state: bool = False,
                 init_kernel: Init = glorot_uniform,
                 init_recurrent_kernel: Init = glorot_uniform, bias: bool = True, rng: Any = None) -> None:
        super().__init__(in_, out, σ, return_state=return_state, init_kernel=init_kernel, init_recurrent_kernel=init_recurrent_kernel, bias=bias, rng=rng)


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

    def __init__(self, in_: int, out: int, *, return_state: bool = False, init_kernel: Init = glorot_uniform,
                 init_recurrent_kernel: Init = glorot_uniform, bias: bool = True, rng: Any = None) -> None:
        super().__init__(in_, out, return_state=return_state, init_kernel=init_kernel, init_recurrent_kernel=init_recurrent_kernel, bias=bias, rng=rng)


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

    def __init__(self, in_: int, out: int, *, return_state: bool = False, init_kernel: Init = glorot_uniform,
                 init_recurrent_kernel: Init = glorot_uniform, bias: bool = True, rng: Any = None) -> None:
        super().__init__(in_, out, return_state=return_state, init_kernel=init_kernel, init_recurrent_kernel=init_recurrent_kernel, bias=bias, rng=rng)
