"""Learning-rate schedules: plain callables ``step -> eta`` (step counts from 0), to be
applied with :func:`flux_rs.adjust_` before each update or epoch. A schedule is
bookkeeping on one number, so it is computed here in Python; the arrays never leave Rust.

>>> import flux_rs as fx
>>> sched = fx.schedules.warmup(fx.schedules.cosine(0.1, period=100), steps=10)
>>> [round(sched(t), 4) for t in (0, 5, 10, 60, 110)]
[0.0, 0.05, 0.1, 0.05, 0.1]

Typical use: ``for t, (x, y) in enumerate(data): fx.adjust_(opt_state, sched(t)); ...``.
Iterating a schedule gives its values for steps 0, 1, 2, … (as ParameterSchedulers.jl).
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

__all__ = ["Schedule", "constant", "step", "exponential", "cosine", "linear", "warmup", "onecycle", "sequence"]


class Schedule:
    """A callable ``step -> eta``; iterating it yields ``f(0), f(1), …`` forever.

    >>> import flux_rs as fx
    >>> s = fx.schedules.Schedule(lambda t: 1 / (1 + t), "inverse")
    >>> s(1), s
    (0.5, inverse)
    """

    def __init__(self, f: Callable[[int], float], desc: str):
        self._f, self._desc = f, desc

    def __call__(self, t: int) -> float:
        if t < 0:
            raise ValueError(f"schedule step must be >= 0, got {t}")
        return float(self._f(int(t)))

    def __iter__(self) -> Iterator[float]:
        t = 0
        while True:
            yield self(t)
            t += 1

    def __repr__(self) -> str:
        return self._desc


def _pos(name: str, v, strict: bool = True) -> None:
    if not (v > 0 if strict else v >= 0):
        raise ValueError(f"{name} must be {'positive' if strict else 'non-negative'}, got {v}")


def constant(eta: float) -> Schedule:
    """``eta`` at every step.

    >>> import flux_rs as fx
    >>> fx.schedules.constant(0.1)(7)
    0.1
    """
    _pos("eta", eta, strict=False)
    return Schedule(lambda t: eta, f"constant({eta})")


def step(eta: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``eta · gamma^(t // step_size)``: multiply by ``gamma`` every ``step_size`` steps
    (PyTorch's StepLR).

    >>> import flux_rs as fx
    >>> s = fx.schedules.step(1.0, 2, gamma=0.5)
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    _pos("eta", eta, strict=False)
    _pos("step_size", step_size)
    return Schedule(lambda t: eta * gamma ** (t // step_size), f"step({eta}, {step_size}, gamma={gamma})")


def exponential(eta: float, gamma: float) -> Schedule:
    """``eta · gamma^t`` (PyTorch's ExponentialLR).

    >>> import flux_rs as fx
    >>> fx.schedules.exponential(1.0, 0.5)(3)
    0.125
    """
    _pos("eta", eta, strict=False)
    _pos("gamma", gamma, strict=False)
    return Schedule(lambda t: eta * gamma ** t, f"exponential({eta}, {gamma})")


def cosine(eta_max: float, period: int, eta_min: float = 0.0, *, t_mult: int = 1, restart: bool = True) -> Schedule:
    """Cosine annealing from ``eta_max`` down to ``eta_min`` over ``period`` steps, then
    a warm restart at ``eta_max`` with the period multiplied by ``t_mult`` (SGDR;
    PyTorch's CosineAnnealingWarmRestarts). With ``restart=False`` it stays at
    ``eta_min`` after the first period.

    >>> import flux_rs as fx
    >>> s = fx.schedules.cosine(1.0, period=4)
    >>> [round(s(t), 4) for t in range(6)]
    [1.0, 0.8536, 0.5, 0.1464, 1.0, 0.8536]
    """
    _pos("eta_max", eta_max, strict=False)
    _pos("period", period)
    if t_mult < 1 or int(t_mult) != t_mult:
        raise ValueError(f"t_mult must be an integer >= 1, got {t_mult}")

    def f(t: int) -> float:
        length = period
        if not restart and t >= period:
            return eta_min
        while t >= length:  # find the current cycle
            t -= length
            length *= t_mult
        return eta_min + (eta_max - eta_min) * (1 + math.cos(math.pi * t / length)) / 2

    return Schedule(f, f"cosine({eta_max}, period={period}, eta_min={eta_min}, t_mult={t_mult}, restart={restart})")


def linear(start: float, end: float, steps: int) -> Schedule:
    """From ``start`` at step 0 to ``end`` at step ``steps`` in equal increments, then
    ``end``.

    >>> import flux_rs as fx
    >>> s = fx.schedules.linear(0.0, 1.0, 4)
    >>> [s(t) for t in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    _pos("steps", steps)
    return Schedule(lambda t: start + (end - start) * min(t, steps) / steps, f"linear({start}, {end}, {steps})")


def sequence(*pieces) -> Schedule:
    """Run schedules one after another: ``sequence((s1, n1), (s2, n2), …, s_last)``
    follows ``s1`` for ``n1`` steps, then ``s2`` for ``n2`` steps counted from 0 again,
    and so on; the last piece (a bare schedule, or a pair) runs for ever.

    >>> import flux_rs as fx
    >>> s = fx.schedules.sequence((fx.schedules.constant(0.5), 2), fx.schedules.step(1.0, 1, 0.1))
    >>> [round(s(t), 6) for t in range(5)]
    [0.5, 0.5, 1.0, 0.1, 0.01]
    """
    if not pieces:
        raise ValueError("sequence needs at least one schedule")
    parts = []
    for i, p in enumerate(pieces):
        if isinstance(p, tuple):
            f, n = p
            _pos("each length", n)
        elif i == len(pieces) - 1:
            f, n = p, None
        else:
            raise TypeError("every piece of sequence but the last must be a (schedule, steps) pair")
        if not callable(f):
            raise TypeError(f"a schedule must be callable, got {type(f).__name__}")
        parts.append((f, n))

    def g(t: int) -> float:
        for f, n in parts[:-1]:
            if t < n:
                return f(t)
            t -= n
        return parts[-1][0](t)

    return Schedule(g, "sequence(" + ", ".join(f"({f!r}, {n})" if n else repr(f) for f, n in parts) + ")")


def warmup(schedule, steps: int, start: float = 0.0) -> Schedule:
    """Linear warm-up: rise from ``start`` to ``schedule(0)`` over ``steps`` steps, then
    follow ``schedule`` (counted from 0 at the end of the warm-up).

    >>> import flux_rs as fx
    >>> s = fx.schedules.warmup(fx.schedules.exponential(1.0, 0.5), steps=2)
    >>> [s(t) for t in range(5)]
    [0.0, 0.5, 1.0, 0.5, 0.25]
    """
    if isinstance(schedule, (int, float)):
        schedule = constant(float(schedule))
    _pos("steps", steps)
    top = schedule(0)
    return sequence((linear(start, top, steps), steps), schedule)


def onecycle(eta_max: float, total: int, pct_start: float = 0.25, div_factor: float = 25.0,
             final_div_factor: float = 1e4) -> Schedule:
    """The one-cycle policy (PyTorch's OneCycleLR, cosine annealing): from
    ``eta_max / div_factor`` up to ``eta_max`` over the first ``pct_start`` of ``total``
    steps, then down to ``eta_max / div_factor / final_div_factor`` at step
    ``total - 1``, where it stays.

    >>> import flux_rs as fx
    >>> s = fx.schedules.onecycle(1.0, total=9, pct_start=0.5, div_factor=10, final_div_factor=1)
    >>> [round(s(t), 4) for t in (0, 2, 4, 6, 8, 20)]
    [0.1, 0.6501, 0.9729, 0.4719, 0.1, 0.1]
    """
    _pos("eta_max", eta_max)
    _pos("total", total)
    if not 0 < pct_start < 1:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    lo = eta_max / div_factor
    end = lo / final_div_factor
    up = float(pct_start * total) - 1  # PyTorch's phase boundaries
    down = float(total - 1)

    def cos(a, b, pct):
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)

    def f(t: int) -> float:
        if t <= up:
            return cos(lo, eta_max, t / up if up > 0 else 1.0)
        if t >= down:
            return end
        return cos(eta_max, end, (t - up) / (down - up))

    return Schedule(f, f"onecycle({eta_max}, total={total}, pct_start={pct_start}, div_factor={div_factor}, "
                       f"final_div_factor={final_div_factor})")
