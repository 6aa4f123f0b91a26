"""The named sets a kernel's inputs and hyper-parameters may be declared to live in.

A spec declares them (``@sg.loss(domains={"yhat": "open_unit", "delta": "positive"})``); the
generated ``KERNELS`` table records them, so tests, ``symgrad verify`` and the integrations
know where a kernel is defined without guessing from its name. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: domain -> (description, membership test on a float array)
DOMAINS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "real": ("any real number", np.isfinite),
    "positive": ("> 0", lambda v: np.isfinite(v) & (v > 0)),
    "nonnegative": (">= 0", lambda v: np.isfinite(v) & (v >= 0)),
    "unit": ("in [0, 1]", lambda v: (v >= 0) & (v <= 1)),
    "open_unit": ("in (0, 1)", lambda v: (v > 0) & (v < 1)),
    "sign": ("-1 or +1", lambda v: np.abs(v) == 1),
    "simplex": ("rows of probabilities summing to 1", lambda v: (v >= 0) & (v <= 1)),
    "log_simplex": ("rows of log-probabilities", lambda v: np.isfinite(v) & (v <= 0)),
}
#: Domains a scalar hyper-parameter may take (the row-wise ones describe arrays only).
SCALAR_DOMAINS = ("real", "positive", "nonnegative", "unit", "open_unit")


def describe(domain: str) -> str:
    """Return a short human description of ``domain``."""
    return DOMAINS[domain][0]


def contains(domain: str, value: object) -> bool:
    """Tell whether every element of ``value`` lies in ``domain``."""
    with np.errstate(invalid="ignore"):
        return bool(np.all(DOMAINS[domain][1](np.asarray(value, dtype=float))))
