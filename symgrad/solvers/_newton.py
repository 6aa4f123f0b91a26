"""The one Newton: dense Newton, Levenberg-Marquardt damped Newton and truncated Newton-CG.

Each iteration is scikit-learn's ``NewtonSolver`` sequence: the pass at the iterate gives
value, gradient and Hessian (or the Hessian-vector products), the inner solve gives a
direction (:func:`direction`, :func:`damped_step` or :func:`symgrad.solvers.truncated_cg`),
the line search (:func:`symgrad.solvers.search`) a step, and the next pass the convergence
check. The optax-style optimizers of :mod:`symgrad.newton` call the same step functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from symgrad.solvers._cg import truncated_cg
from symgrad.solvers._line_search import LineSearch, search, sufficient
from symgrad.solvers._linsolve import solve
from symgrad.solvers._problem import Run


def direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Return the Newton direction ``H^-1 g`` (step ``x - t d``), or ``g`` itself where that
    is not a descent direction (``H`` indefinite, a non-convex model)."""
    d = solve(H, g)
    return d if float(g @ d) > 0 else g


def damped_step(
    H: np.ndarray,
    g: np.ndarray,
    x: np.ndarray,
    f0: float,
    value: Callable[[np.ndarray], float],
    lam: float,
    *,
    factor: float = 10.0,
    c1: float = 1e-4,
    max_tries: int = 60,
) -> tuple[np.ndarray | None, float, float, int]:
    """Return one Levenberg-Marquardt step ``(x_new or None, f_new, next lambda, evaluations)``.

    Solves ``(H + lambda I) d = g``, multiplying ``lambda`` by ``factor`` until
    ``H + lambda I`` is positive definite and ``x - d`` meets Armijo's test; after an accepted
    step the next ``lambda`` is ``lambda / factor``. None: ``max_tries`` found no decrease.
    """
    diag = np.diag_indices_from(H)
    scale = max(float(np.mean(np.abs(H[diag]))) if x.size else 0.0, 1e-12)
    evals = 0
    for _ in range(max_tries):
        A = H.copy()
        A[diag] += lam
        d = solve(A, g, require_pd=True)
        if d is not None:
            f = float(value(x - d))
            evals += 1
            if sufficient(f, f0, 1.0, float(g @ d), c1):
                return x - d, f, (lam / factor if lam > 1e-15 * scale else 0.0), evals
        lam = max(lam * factor, 1e-10 * scale)
    return None, f0, lam, evals


def newton(run: Run, x: np.ndarray, max_iter: int, tol: float, **opts: Any) -> tuple[str, str]:
    """Run dense Newton with a backtracking line search: one pass per accepted full step.

    ``opts``: ``damping`` (a fixed ridge added to ``H``) and the line search's settings.
    """
    damping = float(opts.pop("damping", 0.0))
    settings = LineSearch(**opts)
    _, _, H = run.begin("newton_parts", x)
    for _ in range(max_iter):
        if done := run.done(tol):
            return done
        if damping:
            H = H + damping * np.eye(len(H))
        d = direction(H, run.g)
        found = search(run, "newton_parts", d, float(run.g @ d), 1.0, settings)
        if found is None:
            return run.failed_search()
        x, out, t = found
        H = out[2]
        run.step(x, out, t)
    return run.out_of_steps(tol, max_iter)


def newton_cg(run: Run, x: np.ndarray, max_iter: int, tol: float, **opts: Any) -> tuple[str, str]:
    """Run truncated Newton-CG: CG on Hessian-vector passes, then the line search."""
    cg_iters, cg_tol = opts.pop("cg_iters", None), opts.pop("cg_tol", None)
    damping = float(opts.pop("damping", 0.0))
    settings = LineSearch(**opts)
    run.begin("value_and_grad", x)
    for _ in range(max_iter):
        if done := run.done(tol):
            return done
        at = run.x
        d, _ = truncated_cg(
            lambda v, at=at: run.call("hvp", at, v) + damping * v,
            run.g,
            cg_iters or max(10, run.g.size),
            cg_tol,
        )
        found = search(run, "value_and_grad", d, float(run.g @ d), 1.0, settings)
        if found is None:
            return run.failed_search()
        run.step(*found)
    return run.out_of_steps(tol, max_iter)


def damped_newton(
    run: Run, x: np.ndarray, max_iter: int, tol: float, **opts: Any
) -> tuple[str, str]:
    """Run Levenberg-Marquardt damped Newton (safe where curvature is flat or negative)."""
    lam = float(opts.pop("damping", 1e-3))
    _, _, H = run.begin("newton_parts", x)
    for _ in range(max_iter):
        if done := run.done(tol):
            return done
        new, _, lam, _ = damped_step(H, run.g, run.x, run.f, run.value, lam, **opts)
        if new is None:
            return run.failed_search()
        out = run.call("newton_parts", new)
        H = out[2]
        run.step(new, out, 1.0)
    return run.out_of_steps(tol, max_iter)
