"""The one linear solve of the Newton steps: Cholesky, then a minimum-norm eigen fallback."""

from __future__ import annotations

import numpy as np

#: Cholesky pivots spanning more than this ratio (condition number above its inverse
#: squared, 1e12) are treated as singular and handed to the fallback.
PIVOT_RATIO = 1e-6
#: eigenvalues below this fraction of the largest in magnitude are dropped by the fallback
NULL_RATIO = 1e-12


def solve(A: np.ndarray, g: np.ndarray, *, require_pd: bool = False) -> np.ndarray | None:
    """Solve ``A d = g`` for symmetric ``A``, minimum-norm along numerically null directions.

    First a Cholesky factorisation. If it fails, or its pivots span more than
    ``1 / PIVOT_RATIO`` (the condition number exceeds 1e12), the documented fallback is an
    eigendecomposition that drops eigenvalues below ``NULL_RATIO`` of the largest in
    magnitude: the unpenalised intercept shift of a softmax, along which the objective is
    flat, is then not moved by round-off. With ``require_pd``, return None instead when
    ``A`` is not positive definite (Levenberg-Marquardt then raises its damping).
    """
    try:
        pivots = np.abs(np.diag(np.linalg.cholesky(A)))
        if pivots.size == 0 or pivots.min() > PIVOT_RATIO * pivots.max():
            return np.linalg.solve(A, g)
    except np.linalg.LinAlgError:
        if require_pd:
            return None
    w, V = np.linalg.eigh(A)
    keep = np.abs(w) > NULL_RATIO * np.abs(w).max() if w.size else w.astype(bool)
    return V[:, keep] @ ((V[:, keep].T @ g) / w[keep])
