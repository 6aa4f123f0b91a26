"""The one truncated conjugate-gradient solve of Newton-CG, on Hessian-vector products."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def truncated_cg(
    matvec: Callable[[np.ndarray], np.ndarray], g: np.ndarray, iters: int, tol: float | None
) -> tuple[np.ndarray, int]:
    """Return ``(d, iterations)`` approximately solving ``A d = g`` by conjugate gradients.

    Stops when ``||r|| <= eta ||g||`` with ``eta = tol``, or by default the forcing term
    ``min(0.5, sqrt(||g||))`` (superlinear Newton-CG, Nocedal & Wright 7.1); after ``iters``
    iterations; or at curvature ``p.A p / p.p`` that is not positive or below 1e-10 of the
    largest seen (a numerically null direction, such as a softmax's intercept shift). It
    then returns the iterate so far, or ``g`` itself on the first iteration, which is
    always a descent direction (truncated Newton). Each iteration is one ``matvec``.
    """
    d = np.zeros_like(g)
    r = g.copy()
    p = r.copy()
    rr = float(r @ r)
    eta = min(0.5, math.sqrt(math.sqrt(rr))) if tol is None else tol
    stop = (eta * math.sqrt(rr)) ** 2
    top = 0.0
    for k in range(iters):
        if rr <= stop:
            return d, k
        Ap = matvec(p)
        curvature = float(p @ Ap)
        rayleigh = curvature / float(p @ p)
        if not rayleigh > 1e-10 * top:
            return (g.copy() if k == 0 else d), k + 1
        top = max(top, rayleigh)
        alpha = rr / curvature
        d += alpha * p
        r -= alpha * Ap
        rr, rr_old = float(r @ r), rr
        p = r + (rr / rr_old) * p
    return d, iters
