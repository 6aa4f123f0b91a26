"""A stopping tolerance relative to the start's gradient, computed without overflow."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def gradient_norm(grads: Iterable[Any]) -> float:
    """Return the 2-norm of every array in ``grads`` together, scaled so that it overflows
    only where the norm itself is beyond float64 (inf or NaN entries give inf or NaN)."""
    flat = [np.ravel(np.asarray(g, dtype=np.float64)) for g in grads]
    flat = np.concatenate(flat) if flat else np.zeros(1)
    largest = float(np.max(np.abs(flat), initial=0.0))
    if not np.isfinite(largest) or largest == 0.0:
        return largest
    return largest * float(np.sqrt(np.sum(np.square(flat / largest))))


def relative_tolerance(tol: float, grads: Iterable[Any]) -> float:
    """Return ``tol`` times the start's gradient norm (at least 1): the gradient-norm stop of
    the second-order solvers, as scikit-learn scales it. A start whose gradient is not finite
    keeps ``tol`` itself; the solver then stops on the non-finite value and says so."""
    norm = gradient_norm(grads)
    return tol * max(1.0, norm) if np.isfinite(norm) else tol
