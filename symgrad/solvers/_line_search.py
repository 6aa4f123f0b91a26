"""The one line search: backtracking from a trial step until Armijo's condition holds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from symgrad.solvers._problem import NON_FINITE_TRIAL

_EPS = float(np.finfo(float).eps)


class LineSearch(NamedTuple):
    """The backtracking settings: each trial step is ``shrink`` times the last; a step is
    taken when Armijo's condition with constant ``c1`` holds, after at most
    ``max_backtracks`` shrinks."""

    shrink: float = 0.5
    c1: float = 1e-4
    max_backtracks: int = 40


DEFAULT = LineSearch()


class Backtrack(NamedTuple):
    """What a line search found: the step ``t`` (0 when none decreased the objective), the
    objective there, the evaluations used and whether any trial value was non-finite."""

    t: float
    f: float
    evaluations: int
    non_finite: bool


def check_number(name: str, value: float, *, positive: bool = False) -> float:
    """Return ``value`` as a float, or raise one ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def check_count(name: str, value: int, least: int) -> int:
    """Return ``value``, or raise one ValueError naming ``name`` if not an integer >= least."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return value


def line_search_settings(
    shrink: float = 0.5, c1: float = 1e-4, max_backtracks: int = 40
) -> LineSearch:
    """Return validated line-search settings."""
    shrink, c1 = check_number("shrink", shrink, positive=True), check_number("c1", c1)
    if shrink >= 1 or c1 >= 1:
        raise ValueError("shrink and c1 must lie in (0, 1) and [0, 1)")
    return LineSearch(shrink, c1, check_count("max_backtracks", max_backtracks, 0))


def sufficient(f: float, f0: float, t: float, slope: float, c1: float) -> bool:
    """Armijo's test for the step ``x - t d`` (``slope = g.d > 0``), finite ``f`` only.

    A rounding slack of a few ulps of the loss lets the full step through near the optimum,
    where the decrease is below round-off.
    """
    return math.isfinite(f) and f <= f0 - c1 * t * slope + 8 * _EPS * max(1.0, abs(f0))


def backtrack(
    value: Callable[[np.ndarray], float],
    x: np.ndarray,
    f0: float,
    slope: float,
    d: np.ndarray,
    *,
    t: float = 1.0,
    search: LineSearch = DEFAULT,
) -> Backtrack:
    """Return the first ``t, t*shrink, ...`` with ``value(x - t d)`` meeting Armijo's test.

    ``d`` must be a descent direction (``slope = g.d > 0``); ``value`` is one evaluation of
    the objective. A non-finite trial value is rejected like any other, and reported.
    Returns ``t = 0`` when ``max_backtracks`` shrinks find no decrease.
    """
    non_finite = False
    for k in range(search.max_backtracks + 1):
        f = float(value(x - t * d))
        non_finite |= not math.isfinite(f)
        if sufficient(f, f0, t, slope, search.c1):
            return Backtrack(t, f, k + 1, non_finite)
        t *= search.shrink
    return Backtrack(0.0, f0, search.max_backtracks + 1, non_finite)


def search(
    run: Any, kind: str, d: np.ndarray, slope: float, t: float, settings: LineSearch
) -> tuple[np.ndarray, tuple, float] | None:
    """Step from ``run``'s iterate along ``-d``: return ``(x, pass, t)`` or None.

    The first trial ``x - t d`` costs one ``kind`` pass (value, gradient and, for Newton, the
    Hessian of the next step), so an accepted full step costs one pass. If Armijo's test
    fails there, :func:`backtrack` continues from ``t * shrink`` with value passes, and the
    accepted point gets its ``kind`` pass. A non-finite trial value is rejected and recorded
    in ``run.warnings``; None means no step decreased the objective.
    """
    x, f0 = run.x, run.f
    out = run.call(kind, x - t * d)
    if sufficient(float(out[0]), f0, t, slope, settings.c1) and _finite(out):
        return x - t * d, out, t
    bad = not _finite(out)
    found = backtrack(run.value, x, f0, slope, d, t=t * settings.shrink, search=settings)
    if bad or found.non_finite:
        run.warn(NON_FINITE_TRIAL)
    if found.t == 0.0:
        return None
    return x - found.t * d, run.call(kind, x - found.t * d), found.t


def _finite(out: tuple) -> bool:
    return all(bool(np.all(np.isfinite(part))) for part in out)
