"""The named sets a kernel's inputs and hyper-parameters may be declared to live in.

A spec declares them (``@sg.loss(domains={"yhat": "open_unit", "delta": "positive"})``); the
generated ``KERNELS`` table records them, so tests, ``symgrad verify`` and the integrations
know where a kernel is defined without guessing from its name. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: The scalar domains as bounds (low, low allowed, high, high allowed; None: unbounded): the
#: emitted functions check every hyper-parameter against them on each call (and that it is a
#: finite number), from a copy of this table printed into the generated module.
BOUNDS: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "real": (None, False, None, False),
    "positive": (0.0, False, None, False),
    "nonnegative": (0.0, True, None, False),
    "unit": (0.0, True, 1.0, True),
    "open_unit": (0.0, False, 1.0, False),
}
#: Domains a scalar hyper-parameter may take (the row-wise ones describe arrays only).
SCALAR_DOMAINS = tuple(BOUNDS)


def _within(domain: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return the membership test of a scalar domain, read from its ``BOUNDS``."""
    low, low_in, high, high_in = BOUNDS[domain]

    def test(v: np.ndarray) -> np.ndarray:
        ok = np.isfinite(v)
        if low is not None:
            ok &= (v >= low) if low_in else (v > low)
        if high is not None:
            ok &= (v <= high) if high_in else (v < high)
        return ok

    return test


#: domain -> (description, membership test on a float array)
DOMAINS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "real": ("any real number", _within("real")),
    "positive": ("> 0", _within("positive")),
    "nonnegative": (">= 0", _within("nonnegative")),
    "unit": ("in [0, 1]", _within("unit")),
    "open_unit": ("in (0, 1)", _within("open_unit")),
    "sign": ("-1 or +1", lambda v: np.abs(v) == 1),
    "simplex": ("rows of probabilities summing to 1", lambda v: (v >= 0) & (v <= 1)),
    "log_simplex": ("rows of log-probabilities", lambda v: np.isfinite(v) & (v <= 0)),
}


def describe(domain: str) -> str:
    """Return a short human description of ``domain``."""
    return DOMAINS[domain][0]


def contains(domain: str, value: object) -> bool:
    """Tell whether every element of ``value`` lies in ``domain``."""
    with np.errstate(invalid="ignore"):
        return bool(np.all(DOMAINS[domain][1](np.asarray(value, dtype=float))))


#: Domains that are intervals: every element lies in one when the smallest and largest do.
_INTERVALS = frozenset(DOMAINS) - {"sign"}


def require(domain: str, value: object, what: str) -> None:
    """Raise a one-line ValueError naming ``what`` (a label, weight or target array) unless
    every element of ``value`` is finite and lies in ``domain``; the message shows the first
    value outside it and its index. An interval domain costs two reductions (min and max; a
    NaN reaches both) when the values pass, as they do on every boosting round."""
    v = np.asarray(value, dtype=float)
    if v.size == 0:
        return
    if domain in _INTERVALS:
        ends = np.array([np.min(v), np.max(v)])
        if np.all(np.isfinite(ends)) and contains(domain, ends):
            return
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & DOMAINS[domain][1](v)
    if np.all(ok):
        return
    index = np.unravel_index(int(np.argmin(ok)), v.shape) if v.ndim else ()
    where = f" at index {index[0] if len(index) == 1 else tuple(map(int, index))}" if index else ""
    words = "finite" if domain == "real" else f"finite and {describe(domain)}"
    raise ValueError(f"{what} must be {words}; got {float(v[index])!r}{where}")
