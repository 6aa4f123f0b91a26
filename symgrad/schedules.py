"""Learning-rate schedules as pure functions of the optimizer step, so runs are reproducible.

A schedule is any callable ``step -> lr``. ``step`` counts optimizer *updates* (not epochs),
starting at 0 for the first update; :func:`symgrad.fit.fit` passes nothing special, so with
mini-batches a schedule advances once per batch. The closed forms follow torch's
``lr_scheduler`` classes with ``last_epoch`` read as the update count.

Every constructor here returns a :class:`Schedule`, which composes: ``s * 0.5``, ``s + t``,
``s * t`` (pointwise), :func:`linear_warmup` around any schedule, and :func:`join` to run
schedules one after another.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from numbers import Real

__all__ = [
    "Schedule",
    "as_schedule",
    "constant",
    "cosine_annealing",
    "exponential",
    "join",
    "linear_warmup",
    "step_decay",
]

ScheduleLike = float | Callable[[int], float]


def _check_step(step: int) -> int:
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"schedule step must be an integer, got {step!r}") from None
    if step < 0:
        raise ValueError(f"schedule step must be >= 0, got {step}")
    return step


def _check_real(where: str, name: str, value: float, *, lo: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    if lo is not None and value < lo:
        raise ValueError(f"{where}: {name} must be >= {lo}, got {value!r}")
    return float(value)


def _check_int(where: str, name: str, value: int, *, lo: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {value!r}") from None
    if value < lo:
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {value!r}")
    return value


class Schedule:
    """Wrap a function ``step -> lr`` with step checking, a readable repr and arithmetic."""

    __slots__ = ("_fn", "_desc")

    def __init__(self, fn: Callable[[int], float], desc: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"Schedule needs a callable step -> lr, got {fn!r}")
        self._fn = fn
        self._desc = desc if desc is not None else f"Schedule({fn!r})"

    def __call__(self, step: int) -> float:
        """Return the learning rate for update number ``step`` (0 for the first update)."""
        return float(self._fn(_check_step(step)))

    def __repr__(self) -> str:
        return self._desc

    def _combine(self, other: ScheduleLike, op: Callable, sym: str, swap: bool = False):
        try:
            rhs = as_schedule(other)
        except TypeError:
            return NotImplemented
        a, b = (rhs, self) if swap else (self, rhs)
        return Schedule(lambda s: op(a(s), b(s)), f"({a!r} {sym} {b!r})")

    def __mul__(self, other: ScheduleLike) -> Schedule:
        return self._combine(other, operator.mul, "*")

    def __rmul__(self, other: ScheduleLike) -> Schedule:
        return self._combine(other, operator.mul, "*", swap=True)

    def __add__(self, other: ScheduleLike) -> Schedule:
        return self._combine(other, operator.add, "+")

    def __radd__(self, other: ScheduleLike) -> Schedule:
        return self._combine(other, operator.add, "+", swap=True)


def as_schedule(value: ScheduleLike) -> Schedule:
    """Turn a number or a callable ``step -> lr`` into a :class:`Schedule`."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, Real) and not isinstance(value, bool):
        return constant(value)
    if callable(value):
        return Schedule(value)
    raise TypeError(f"expected a number or a callable step -> lr, got {value!r}")


def constant(value: float) -> Schedule:
    """Return a schedule that is ``value`` at every step."""
    v = _check_real("constant", "value", value)
    return Schedule(lambda step: v, f"constant({v!r})")


def step_decay(init: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """Return ``init * gamma ** (step // step_size)`` (torch ``StepLR``)."""
    init = _check_real("step_decay", "init", init)
    step_size = _check_int("step_decay", "step_size", step_size, lo=1)
    gamma = _check_real("step_decay", "gamma", gamma, lo=0.0)
    return Schedule(
        lambda step: init * gamma ** (step // step_size),
        f"step_decay({init!r}, step_size={step_size}, gamma={gamma!r})",
    )


def exponential(init: float, gamma: float) -> Schedule:
    """Return ``init * gamma ** step`` (torch ``ExponentialLR``)."""
    init = _check_real("exponential", "init", init)
    gamma = _check_real("exponential", "gamma", gamma, lo=0.0)
    return Schedule(lambda step: init * gamma**step, f"exponential({init!r}, gamma={gamma!r})")


def cosine_annealing(init: float, t_max: int, eta_min: float = 0.0) -> Schedule:
    """Return torch ``CosineAnnealingLR``'s closed form.

    ``eta_min + (init - eta_min) * (1 + cos(pi * step / t_max)) / 2``. Like torch's closed
    form it is periodic: past ``t_max`` the rate rises again; ``join`` it with
    ``constant(eta_min)`` at ``t_max`` to hold the minimum instead.
    """
    init = _check_real("cosine_annealing", "init", init)
    t_max = _check_int("cosine_annealing", "t_max", t_max, lo=1)
    eta_min = _check_real("cosine_annealing", "eta_min", eta_min)
    return Schedule(
        lambda step: eta_min + (init - eta_min) * (1 + math.cos(math.pi * step / t_max)) / 2,
        f"cosine_annealing({init!r}, t_max={t_max}, eta_min={eta_min!r})",
    )


def linear_warmup(
    schedule_or_value: ScheduleLike, warmup_steps: int, start_factor: float = 1.0 / 3
) -> Schedule:
    """Scale a schedule by a factor rising linearly from ``start_factor`` to 1.

    The factor is ``start_factor + (1 - start_factor) * min(step, warmup_steps) / warmup_steps``
    (torch ``LinearLR`` with ``end_factor=1``, same default ``start_factor=1/3``), multiplied
    into the wrapped schedule evaluated at the *same* step. For "warm up, then start the
    schedule from its step 0", use ``join([linear_warmup(v, n), schedule], [n])`` instead.
    """
    base = as_schedule(schedule_or_value)
    warmup_steps = _check_int("linear_warmup", "warmup_steps", warmup_steps, lo=0)
    start_factor = _check_real("linear_warmup", "start_factor", start_factor, lo=0.0)
    if start_factor > 1.0:
        raise ValueError(f"linear_warmup: start_factor must be in [0, 1], got {start_factor!r}")
    if warmup_steps == 0:
        return base

    def fn(step: int) -> float:
        factor = start_factor + (1.0 - start_factor) * min(step, warmup_steps) / warmup_steps
        return base(step) * factor

    return Schedule(
        fn, f"linear_warmup({base!r}, warmup_steps={warmup_steps}, start_factor={start_factor!r})"
    )


def join(schedules: Sequence[ScheduleLike], boundaries: Sequence[int]) -> Schedule:
    """Run schedules one after another, switching at ``boundaries`` (optax ``join_schedules``).

    ``schedules[i + 1]`` takes over at ``step == boundaries[i]`` and is evaluated at
    ``step - boundaries[i]``, so every schedule starts from its own step 0.
    """
    parts = [as_schedule(s) for s in schedules]
    bounds = [_check_int("join", "boundaries[]", b, lo=0) for b in boundaries]
    if len(parts) != len(bounds) + 1:
        raise ValueError(
            f"join: need len(schedules) == len(boundaries) + 1, got {len(parts)} schedules "
            f"and {len(bounds)} boundaries"
        )
    if any(b1 > b2 for b1, b2 in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"join: boundaries must be non-decreasing, got {bounds}")

    def fn(step: int) -> float:
        i = sum(1 for b in bounds if step >= b)
        return parts[i](step - (bounds[i - 1] if i else 0))

    return Schedule(fn, f"join({parts!r}, {bounds!r})")
