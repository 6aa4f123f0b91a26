"""The one L-BFGS driver: scipy's L-BFGS-B on a problem's value-and-gradient passes.

scipy does the quasi-Newton work; this driver counts passes, keeps the history, runs the
callbacks and, unlike scipy's ``success``, never reads a stop at a non-finite value or a
line search that could not leave the start as convergence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from symgrad.solvers._problem import NON_FINITE_TRIAL, Run, finite, max_abs

#: scipy's L-BFGS-B status 1: the iteration limit
_MAXITER = 1


def _scipy_minimize() -> Any:
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ImportError(
            "the lbfgs solver needs scipy (pip install scipy, or pip install symgrad[scipy])"
        ) from None
    return minimize


def lbfgs(run: Run, x: np.ndarray, max_iter: int, tol: float, **opts: Any) -> tuple[str, str]:
    """Run L-BFGS-B to ``gtol = tol``; ``opts``: ``ftol`` (default ``10 eps``), ``maxls``.

    A non-finite value or gradient at a trial point is handed to scipy as ``+inf`` with a
    zero gradient, so its line search steps back, and recorded in ``run.warnings``.
    """
    minimize = _scipy_minimize()
    run.begin("value_and_grad", x)
    x0 = run.x
    last: dict[str, Any] = {}

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        if np.array_equal(z, run.x):  # scipy's first call is the start, evaluated already
            return run.f, run.g
        out = run.call("value_and_grad", z)
        last["x"], last["out"] = z.copy(), out
        if not finite(out):
            run.warn(NON_FINITE_TRIAL)
            return math.inf, np.zeros_like(out[1])
        return float(out[0]), out[1]

    def callback(intermediate_result: Any) -> None:
        z = np.asarray(intermediate_result.x, dtype=float)
        if "x" in last and np.array_equal(last["x"], z):
            out = last["out"]
        else:
            out = run.call("value_and_grad", z)
        run.step(z.copy(), out, math.nan)

    options = {
        "maxiter": int(max_iter),
        "gtol": tol,
        "ftol": float(opts.get("ftol", 10 * np.finfo(float).eps)),
    }
    if "maxls" in opts:
        options["maxls"] = int(opts["maxls"])
    res = minimize(fun, run.x, jac=True, method="L-BFGS-B", callback=callback, options=options)
    words = f"L-BFGS-B: {res.message} ({res.nit} iterations, {res.nfev} evaluations)"
    if max_abs(run.g) <= tol:
        return "tol", f"converged: {words}"
    if np.array_equal(run.x, x0):  # scipy may call this success (no relative reduction)
        run.warn(f"L-BFGS-B's line search could not leave the start ({res.message})")
        return "line_search", words
    if res.success:
        return "tol", f"converged: {words}"
    return ("epochs" if res.status == _MAXITER else "stalled"), words
