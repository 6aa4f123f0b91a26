"""L-BFGS on a model's objective: the solver core's scipy L-BFGS-B driver, as one call.

A full-batch quasi-Newton solver for any :mod:`symgrad.models` model (or anything with
``objective(params, X, y) -> (loss, grads)``), run to convergence like scikit-learn's
``lbfgs`` solver. It is :func:`symgrad.solvers.minimize` with ``method="lbfgs"`` on the
in-memory problem, so :func:`symgrad.dask.fit` takes the same iterates on a cluster. scipy
is optional: it is imported when :func:`fit_lbfgs` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from symgrad.fit import FitResult
from symgrad.solvers import ModelProblem, minimize

__all__ = ["fit_lbfgs"]

Callback = Callable[[int, FitResult], bool | None]


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
    loss or gradient at the start stops the run with reason ``"non_finite"``; one met at a
    trial point is stepped back from and listed in ``result.warnings``, as is a line search
    that cannot leave the start (``"line_search"``): neither is reported as convergence.
    """
    problem = ModelProblem(model, X, y, params)
    return minimize(
        problem, problem.x0, params, method="lbfgs", max_iter=max_iter, tol=tol,
        progress=False, callbacks=callbacks, validation=problem.scorer(validation), ftol=tol * 1e-6,
    )  # fmt: skip
