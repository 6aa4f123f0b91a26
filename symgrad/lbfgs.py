"""L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on a model's objective.

A full-batch quasi-Newton solver for any :mod:`symgrad.models` model (or anything with
``objective(params, X, y) -> (loss, grads)``), run to convergence like scikit-learn's
``lbfgs`` solver. Parameters travel as one float64 vector (:class:`symgrad.scipy.Objective`)
and come back in their tree. scipy is optional: it is imported when :func:`fit_lbfgs` runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad.fit import FitHistory, FitResult

__all__ = ["fit_lbfgs"]

Callback = Callable[[int, FitResult], bool | None]


class _Stop(Exception):
    """Raised inside scipy's callback to end the run (a callback asked, or a non-finite value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _scipy_minimize() -> Callable[..., Any]:
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ImportError(
            "the lbfgs solver needs scipy (pip install scipy, or pip install symgrad[scipy])"
        ) from None
    return minimize


def fit_lbfgs(
    model: Any,
    params: Any,
    X: Any,
    y: Any,
    *,
    max_iter: int = 1000,
    tol: float = 1e-8,
    validation: tuple[Any, Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Minimise ``model.objective(params, X, y)`` with scipy's L-BFGS-B; return a FitResult.

    ``tol`` is scipy's ``gtol`` (largest gradient component) and also its relative ``ftol``
    scaled by 1e-6; ``max_iter`` bounds the iterations (one ``history`` row each, with the
    validation loss when ``validation`` is given). ``callbacks`` are called like
    :func:`symgrad.fit`'s (``cb(iteration, snapshot)``; a truthy answer stops). A non-finite
    loss or gradient stops the run with reason ``"non_finite"`` and the last finite params.
    """
    minimize = _scipy_minimize()
    from symgrad.scipy import Objective  # the one flat-vector adapter over a model

    history = FitHistory()
    flat = Objective(model, X, y, params)
    x0 = flat.x0
    last: dict[str, Any] = {"x": x0, "evals": 0}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, g = flat.fun(x)
        last["evals"] += 1
        if not (math.isfinite(float(loss)) and np.all(np.isfinite(g))):
            return math.inf, np.zeros_like(g)  # makes scipy's line search step back
        return float(loss), g

    def snapshot(reason: str, message: str, x: np.ndarray) -> FitResult:
        n = len(history)
        return FitResult(flat.unravel(x), history, reason, n, n, message)

    def on_iteration(intermediate_result: Any) -> None:
        x, loss = intermediate_result.x, float(intermediate_result.fun)
        if not math.isfinite(loss):
            raise _Stop("non_finite", f"non-finite loss at iteration {len(history)}")
        _, g = fun(x)
        val = math.nan
        if validation is not None:
            val = float(model.objective(flat.unravel(x), *validation)[0])
        history.append(
            epoch=len(history),
            loss=loss,
            val_loss=val,
            grad_norm=float(np.linalg.norm(g)),
            lr=math.nan,
            seconds=time.perf_counter() - start,
            n_steps=len(history) + 1,
        )
        last["x"] = x
        info = snapshot("running", f"after iteration {len(history) - 1}", x)
        if any(bool(cb(len(history) - 1, info)) for cb in callbacks):
            raise _Stop("callback", f"a callback asked to stop after iteration {len(history) - 1}")

    start = time.perf_counter()
    options = {"maxiter": int(max_iter), "gtol": tol, "ftol": tol * 1e-6}
    try:
        out = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=on_iteration, options=options)
    except _Stop as stop:
        return snapshot(stop.reason, stop.message, last["x"])
    if not math.isfinite(float(out.fun)):
        return snapshot("non_finite", "L-BFGS-B met a non-finite loss", last["x"])
    reason = "tol" if out.success else "epochs"
    message = f"L-BFGS-B: {out.message} ({out.nit} iterations, {out.nfev} evaluations)"
    return snapshot(reason, message, out.x)
