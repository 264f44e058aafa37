"""The implicit-parameter style of earlier Flux, so that old code ports line for line:
``params``/``Params``, ``Grads``, ``gradient(f, ps)``, ``update_(rule, ps, gs)``,
``train_(loss, ps, data, rule, cb=...)``, ``throttle``, ``stop``, ``epochs`` and
``Optimiser``. Every number is still computed in Rust: gradients by the same tape as
:func:`fx.withgradient`, steps by the same fused rules as :func:`fx.update_`, so both
styles give bit-identical parameters.

Where the optimiser state lives. Flux's old optimisers kept an ``IdDict`` from
parameter to state inside the (mutable) optimiser. Rules here are immutable values
that compare by value (``fx.Adam() == fx.Adam()``), so the state is kept in a
module-level registry keyed by the rule's *identity*, holding one ``fx.Leaf`` per
parameter (keyed by the parameter's identity). A ``WeakKeyDictionary`` would not do:
it hashes by value and would let two equal but separate rules share state. The entry
is dropped when the rule object is garbage collected (``weakref.finalize``); the
leaves hold a private copy of the rule so that they do not keep the original alive.
As in Flux, the state follows the rule object, not the ``Params`` object: calling
``fx.train_(loss, fx.params(m), data, opt)`` once per epoch keeps Adam's moments.

>>> import flux_rs as fx, numpy as np
>>> fx.seed(0)
>>> m = fx.Dense(2, 1)
>>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
>>> ps = fx.params(m)
>>> gs = fx.gradient(lambda: fx.losses.mse(m(x), y), ps)
>>> gs[m.weight].shape
(1, 2)
>>> _ = fx.update_(fx.Descent(0.1), ps, gs)
"""
from __future__ import annotations

import copy
import functools
import logging
import sys
import time
import weakref
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import _core
from . import _autodiff
from ._autodiff import WithGradient, record_gradient
from ._core import Leaf, Tensor
from ._tree import tensors, trainable_children
from .optimise import Rule
from .train import run_epoch

__all__ = ["params", "Params", "Grads", "throttle", "stop", "StopTraining", "epochs", "Optimiser"]

_log = logging.getLogger("flux_rs")


# ---- Params ------------------------------------------------------------------------------

def _shapes(ts) -> str:
    return ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in ts)


class Params:
    """An ordered set of parameter Tensors (Zygote's ``Params``), compared by identity.
    Usually made by :func:`params`; ``Params(tensors)`` takes Tensors directly.

    >>> import flux_rs as fx
    >>> w, b = fx.zeros(2), fx.zeros(1)
    >>> ps = fx.Params([w, b, w])
    >>> len(ps), w in ps, fx.zeros(2) in ps, [t.shape for t in ps]
    (2, True, False, [(2,), (1,)])
    """

    __slots__ = ("_order", "_ids", "__weakref__")

    def __init__(self, xs: Iterable[Tensor] = ()):
        self._order: list[Tensor] = []
        self._ids: set[int] = set()
        for x in xs:
            self.append(x)

    def append(self, x: Tensor) -> "Params":
        """Add a Tensor at the end unless it is already here (Zygote's ``push!``)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"Params holds Tensors, got {type(x).__name__}; "
                            "use fx.params(...) to collect the Tensors of a model")
        if id(x) not in self._ids:
            self._ids.add(id(x))
            self._order.append(x)
        return self

    def remove(self, x: Tensor) -> "Params":
        """Take a Tensor out (Zygote's ``delete!``); KeyError when it is not here."""
        if id(x) not in self._ids:
            raise KeyError("this Tensor is not one of the Params")
        self._ids.discard(id(x))
        self._order = [t for t in self._order if t is not x]
        return self

    def __iter__(self) -> Iterator[Tensor]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, x) -> bool:
        return isinstance(x, Tensor) and id(x) in self._ids

    def __getitem__(self, i: int) -> Tensor:
        return self._order[i]

    def __repr__(self) -> str:
        return f"Params([{_shapes(self._order)}])"

    # the hooks that fx.withgradient, fx.update_ and fx.train_ call for Params

    def _implicit_withgradient(self, f: Callable[[], Any]) -> WithGradient:
        ps = list(self._order)
        val, gs = record_gradient(ps, f)
        return WithGradient(val, Grads(ps, gs))

    def _implicit_update(self, rule: Rule, grads) -> tuple:
        state = _state_of(rule)
        leaves, xs, gs = [], [], []
        for p in self._order:
            g = grads[p]
            if g is None:
                continue
            entry = state.leaves.get(id(p))
            if entry is None:
                entry = state.leaves[id(p)] = (p, Leaf(state.rule, _core.rule_init(rule, p)))
            if entry[1].frozen:
                continue
            leaves.append(entry[1])
            xs.append(p)
            gs.append(g)
        if leaves:
            _core.update_many(leaves, xs, gs)
        return rule, self

    def _implicit_train(self, loss, data, opt, *, cb=None, progress=None) -> list[float]:
        if not isinstance(opt, Rule):
            raise TypeError("train_ with fx.Params needs a rule such as fx.Adam() as the optimiser (it keeps its "
                            f"state per parameter), got {type(opt).__name__}; an explicit state from fx.setup "
                            "goes with the model itself: fx.train_(loss, model, data, opt_state)")
        return run_epoch(data, lambda args: self._implicit_withgradient(lambda: loss(*args)),
                         lambda gs: self._implicit_update(opt, gs), progress=progress, callbacks=_callbacks(cb),
                         stop=StopTraining)


def _check_no_arrays(x, path: str, visiting: set) -> None:
    """A numpy array given to params (directly or in a list/tuple/dict) cannot be
    updated in place, so it is an error rather than a silently empty Params."""
    if isinstance(x, np.ndarray):
        raise TypeError(f"params got a numpy array at {path}; a numpy array cannot be trained in place: "
                        "make it a Tensor first (w = fx.tensor(a)) and pass the Tensor")
    if isinstance(x, (tuple, list, dict)) and id(x) not in visiting:
        visiting.add(id(x))
        for k, v in (x.items() if isinstance(x, dict) else enumerate(x)):
            _check_no_arrays(v, f"{path}[{k!r}]", visiting)


def params(*xs) -> Params:
    """The trainable Tensors of models, Tensors, tuples, lists and dicts, in order and
    each once (Flux's ``params``). Numbers and other non-Tensor leaves are ignored;
    ``@fx.layer(trainable=...)`` is respected as by ``fx.setup``. Numpy arrays given
    directly raise TypeError (they could not be updated in place).

    >>> import flux_rs as fx
    >>> a, b = fx.tensor([2.0, 2.0]), fx.tensor([3.0, 3.0, 3.0])
    >>> [t.tolist() for t in fx.params(1, [a], {"alpha": b, "beta": 4, "gamma": fx.relu}, a)]
    [[2.0, 2.0], [3.0, 3.0, 3.0]]
    >>> len(fx.params(fx.Chain(fx.Dense(3, 2), fx.softmax)))
    2
    """
    ps = Params()
    for i, x in enumerate(xs):
        _check_no_arrays(x, f"argument {i}", set())
        if isinstance(x, Params):
            for t in x:
                ps.append(t)
        else:
            for t in tensors(x, walk=trainable_children):
                ps.append(t)
    return ps


# ---- Grads -------------------------------------------------------------------------------

class Grads:
    """The gradient of an implicit-style loss: a mapping from each parameter Tensor of
    the ``Params`` to its gradient (None when the loss does not touch it). Keys are
    compared by identity; iteration, ``keys``, ``values`` and ``items`` follow the
    order of the ``Params``. ``gs1 + gs2`` adds two Grads of the same Params.

    >>> import flux_rs as fx
    >>> w, v = fx.tensor([1.0, 2.0]), fx.tensor([5.0])
    >>> gs = fx.gradient(lambda: (w * w).sum(), fx.params(w, v))
    >>> gs[w].tolist(), gs[v], w in gs, len(gs)
    ([2.0, 4.0], None, True, 2)
    """

    __slots__ = ("_params", "_grads")

    def __init__(self, ps: Iterable[Tensor], grads: Iterable):
        ps = list(ps)
        grads = list(grads)
        if len(ps) != len(grads):
            raise ValueError(f"Grads needs one gradient per parameter: {len(ps)} parameters, {len(grads)} gradients")
        self._params = Params(ps)
        if len(self._params) != len(ps):
            raise ValueError("Grads got the same parameter Tensor twice")
        self._grads = {id(p): g for p, g in zip(ps, grads)}

    @property
    def params(self) -> Params:
        """The parameters these gradients are for."""
        return self._params

    def __getitem__(self, p: Tensor):
        if p not in self._params:
            raise KeyError("this Tensor is not one of the parameters of these Grads (was it in the "
                           "fx.params(...) given to fx.gradient?)")
        return self._grads[id(p)]

    def get(self, p, default=None):
        return self._grads[id(p)] if p in self._params else default

    def __contains__(self, p) -> bool:
        return p in self._params

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def keys(self) -> list[Tensor]:
        return list(self._params)

    def values(self) -> list:
        return [self._grads[id(p)] for p in self._params]

    def items(self) -> list[tuple]:
        return [(p, self._grads[id(p)]) for p in self._params]

    def __add__(self, other: "Grads") -> "Grads":
        if not isinstance(other, Grads):
            return NotImplemented
        if list(map(id, self._params)) != list(map(id, other._params)):
            raise ValueError("can only add Grads of the same Params")
        out = []
        for p in self._params:
            a, b = self._grads[id(p)], other._grads[id(p)]
            out.append(b if a is None else a if b is None else a + b)  # the sum is a Tensor op, in Rust
        return Grads(list(self._params), out)

    def __repr__(self) -> str:
        inner = ", ".join("None" if g is None else f"{tuple(g.shape)}" for g in self.values())
        return f"Grads({len(self)} parameters: {inner})"


# ---- the per-rule state of update_ -------------------------------------------------------

class _RuleState:
    __slots__ = ("rule", "leaves")

    def __init__(self, rule: Rule):
        self.rule = copy.copy(rule)  # an equal rule for the Leaves, so they do not keep `rule` alive
        self.leaves: dict[int, tuple[Tensor, Leaf]] = {}  # id(param) -> (param, Leaf); the param keeps its id


_STATES: dict[int, _RuleState] = {}


def _state_of(rule: Rule) -> _RuleState:
    st = _STATES.get(id(rule))
    if st is None:
        st = _STATES[id(rule)] = _RuleState(rule)
        weakref.finalize(rule, _STATES.pop, id(rule), None)
    return st


# ---- callbacks: throttle, stop, epochs ---------------------------------------------------

class StopTraining(Exception):
    """Raised by :func:`stop`; ``fx.train_`` catches it and ends after the current item."""


def stop() -> None:
    """End the running implicit-style ``fx.train_`` after the current item (Flux's
    ``Flux.stop()``). Called from a callback the item's update is kept; called from
    the loss it is not applied. Outside ``train_`` it raises :class:`StopTraining`.

    >>> import flux_rs as fx
    >>> w = fx.tensor([1.0])
    >>> fx.train_(lambda i: (w * w).sum(), fx.params(w), range(5), fx.Descent(0.1), cb=fx.stop, progress=False)
    [1.0]
    """
    raise StopTraining("fx.stop() was called outside fx.train_")


_now = time.monotonic  # tests replace this to control time


class _Throttled:
    def __init__(self, f, timeout, leading, trailing):
        functools.update_wrapper(self, f, updated=())
        self.f, self.timeout, self.leading, self.trailing = f, float(timeout), bool(leading), bool(trailing)
        self.result = None
        self._cooldown = True  # True: a call now starts a new window
        self._window_end = 0.0
        self._later = None     # the call waiting for the end of the window

    def _run_due(self, now: float) -> None:
        # Flux runs the delayed call from a timer task at the end of the window, when the
        # main task yields; in a busy Python loop the next call is that moment
        while not self._cooldown and now >= self._window_end:
            if self._later is None:
                self._cooldown = True
            else:
                later, self._later = self._later, None
                self._window_end += self.timeout
                self.result = self.f(*later[0], **later[1])

    def flush(self):
        """Run a waiting trailing call now (if any) and return the latest result."""
        if self._later is not None:
            later, self._later = self._later, None
            self.result = self.f(*later[0], **later[1])
        return self.result

    def __call__(self, *args, **kwargs):
        now = _now()
        self._run_due(now)
        if self._cooldown:
            self._cooldown = False
            self._window_end = now + self.timeout
            if self.leading:
                self.result = self.f(*args, **kwargs)
            else:
                self._later = (args, kwargs)
        elif self.trailing:
            self._later = (args, kwargs)
        return self.result


def throttle(f: Callable, timeout: float, *, leading: bool = True, trailing: bool = False) -> Callable:
    """A version of ``f`` that runs at most once per ``timeout`` seconds (Flux's
    ``throttle``): the first call runs at once (``leading``), later calls within the
    window are dropped, or, with ``trailing=True``, the last of them runs when the
    window ends. Returns the latest result of ``f``. A delayed call runs at the first
    call after its window ends (Flux runs it from a timer task, which in a busy loop is
    the same moment), or at ``throttled.flush()``; it never runs on another thread.

    >>> import flux_rs as fx
    >>> calls = []
    >>> log = fx.throttle(lambda: calls.append(1), 3600)
    >>> for _ in range(5): _ = log()
    >>> len(calls)
    1
    """
    if not callable(f):
        raise TypeError(f"throttle needs a function, got {type(f).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"throttle needs a timeout of 0 seconds or more, got {timeout!r}")
    return _Throttled(f, timeout, leading, trailing)


def _callbacks(cb) -> list[Callable]:
    # Flux's implicit-style callbacks take no arguments; run_epoch passes (step, loss)
    if cb is None:
        return []
    if callable(cb):
        cb = [cb]
    if isinstance(cb, (list, tuple)) and all(callable(f) for f in cb):
        return [lambda i, l, f=f: f() for f in cb]
    raise TypeError(f"cb must be a function or a list of functions, got {type(cb).__name__}")


def _info(msg: str) -> None:
    # the logging module when the application configured it, else stderr (as Julia's @info)
    if _log.hasHandlers():
        _log.info(msg)
    else:
        print(msg, file=sys.stderr)


class epochs:
    """Iterate ``n`` times, announcing "Epoch i" (1-based) before each pass: Flux's
    ``@epochs n body`` for REPL use. The message goes to the ``flux_rs`` logger at
    INFO level when logging is configured, else to stderr.

    >>> import flux_rs as fx
    >>> [i for i in fx.epochs(2)]
    [1, 2]
    >>> len(fx.epochs(3))
    3
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"epochs needs an integer count, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"epochs needs a count of 0 or more, got {n}")
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        for i in range(1, self.n + 1):
            _info(f"Epoch {i}")
            yield i

    def __repr__(self) -> str:
        return f"epochs({self.n})"


# ---- Optimiser ---------------------------------------------------------------------------

_autodiff._PARAMS_TYPES = (Params,)  # fx.gradient(f, ps) takes the implicit path

from .optimise import OptimiserChain as Optimiser  # noqa: E402  (Flux's old name of the same rule)
