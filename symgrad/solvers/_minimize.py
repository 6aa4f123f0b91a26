"""One entry point over every full-batch solver: :func:`minimize` on a problem."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad.errors import ConvergenceWarning
from symgrad.fit import FitResult
from symgrad.solvers._gd import gd
from symgrad.solvers._lbfgs import lbfgs
from symgrad.solvers._newton import damped_newton, newton, newton_cg
from symgrad.solvers._problem import Callback, Problem, Run, Stop

#: method name -> driver ``(run, x0, max_iter, tol, **options) -> (stop_reason, message)``
METHODS: dict[str, Callable[..., tuple[str, str]]] = {
    "newton": newton,
    "lbfgs": lbfgs,
    "newton_cg": newton_cg,
    "damped_newton": damped_newton,
    "gd": gd,
}


def minimize(
    problem: Problem,
    x0: np.ndarray,
    like: Any,
    *,
    method: str = "newton",
    max_iter: int = 100,
    tol: float = 1e-8,
    progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
    validation: Callable[[np.ndarray], float] | None = None,
    **options: Any,
) -> FitResult:
    """Minimize ``problem`` from ``x0``; ``like`` gives the params' structure for the result.

    Stops once the largest gradient entry is at most ``tol`` (``stop_reason="tol"``), after
    ``max_iter`` iterations (``"epochs"``), when a callback ``cb(iteration, snapshot)``
    answers truthy (``"callback"``), at a non-finite value (``"non_finite"``, the last finite
    iterate) or when no step decreases the objective (``"line_search"`` from the start,
    ``"stalled"`` after progress). ``history`` has one row per iteration, at the point it
    reached; ``validation(x)`` fills its ``val_loss``. ``warnings`` lists what makes the
    result suspect (a non-finite value met anywhere, a failed line search), and a
    :class:`symgrad.errors.ConvergenceWarning` naming them is raised. ``options`` go
    to the method: the line search's ``shrink``, ``c1``, ``max_backtracks`` (Newton,
    Newton-CG, gd); ``cg_iters``, ``cg_tol`` (Newton-CG); ``damping``, ``factor``,
    ``max_tries`` (damped Newton); ``ftol``, ``maxls`` (L-BFGS). ``progress`` shows a tqdm
    bar (default: when stderr is a TTY).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    run = Run(
        problem, method, like, max_iter, progress=progress, callbacks=callbacks,
        validation=validation,
    )  # fmt: skip
    try:
        reason, message = METHODS[method](
            run, np.array(x0, dtype=float), max_iter, float(tol), **options
        )
    except Stop as stop:
        reason, message = stop.reason, stop.message
    finally:
        run.close()
    result = run.result(reason, message)
    if result.warnings:
        warnings.warn(
            f"{method} stopped ({reason}) after {result.n_iter} iterations; "
            + "; ".join(result.warnings),
            ConvergenceWarning,
            stacklevel=3,
        )
    return result
