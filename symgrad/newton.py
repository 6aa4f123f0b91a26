"""Newton, damped (Levenberg-Marquardt) Newton and Newton-CG optimizers, so models fit in a few steps.

The runner :func:`symgrad.fit` hands an optimizer only the gradient, so these optimizers are
closures over the data: they hold a function of the parameters that returns the Hessian (or a
Hessian-vector operator, and the objective for line searches), built from a model's
closed-form second derivatives::

    import symgrad as sg
    from symgrad.models import LogisticRegression
    from symgrad.newton import fit_newton, newton

    model = LogisticRegression(regularizer=("l2", {"lam": 1 / (C * n)}))
    result = fit_newton(model, model.init(n_features=d), X, y)  # about 6-10 steps
    # or, the same thing spelled out with the runner (full batch: the closures see all of X):
    opt = newton(lambda p: model.hessian(p, X, y),
                 objective=lambda p: model.objective(p, X, y))
    result = sg.fit(model.objective, params, X, y, optimizer=opt, epochs=20, tol=1e-10)

Use them with full batches (``batch_size=None``): the gradient ``fit`` passes and the
Hessian the closure computes must describe the same objective. Parameters are flattened with
:func:`symgrad.models.flatten` (dict insertion order, each leaf in C order), the order the
models' ``hessian`` uses. Each update returns new arrays and never modifies its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from symgrad.fit import FitResult, fit
from symgrad.optim import Optimizer
from symgrad.schedules import as_schedule
from symgrad.tree import flatten_as, structure
from symgrad.tree import ravel as flatten
from symgrad.tree import unravel as unflatten

__all__ = [
    "NewtonState",
    "damped_newton",
    "fit_newton",
    "newton",
    "newton_cg",
]

PyTree = Any
Hessian = Callable[[PyTree], np.ndarray]
HVPOperator = Callable[[PyTree], Callable[[PyTree], PyTree]]
Objective = Callable[[PyTree], Any]

_EPS = np.finfo(float).eps


class NewtonState(NamedTuple):
    """Hold the update ``count``, the current ``damping`` and the last step's diagnostics.

    ``step_size`` is the line-search factor (or 1) of the last step, ``evaluations`` the
    objective evaluations it used, and ``cg_iters`` its conjugate-gradient iterations.
    """

    count: int
    damping: float
    step_size: float = 1.0
    evaluations: int = 0
    cg_iters: int = 0


def _check(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


class _LineSearch(NamedTuple):
    """The backtracking line search's settings: each trial step is ``shrink`` times the last;
    a step is taken when Armijo's condition with constant ``c1`` holds, after at most
    ``max_backtracks`` shrinks."""

    shrink: float
    c1: float
    max_backtracks: int


def _line_search_settings(shrink: float, c1: float, max_backtracks: int) -> _LineSearch:
    """Validate the backtracking line search's settings shared by every Newton variant."""
    shrink, c1 = _check("shrink", shrink, positive=True), _check("c1", c1)
    if shrink >= 1 or c1 >= 1:
        raise ValueError("shrink and c1 must lie in (0, 1) and [0, 1)")
    return _LineSearch(shrink, c1, _count("max_backtracks", max_backtracks, 0))


def _count(name: str, value: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return value


def _value(objective: Objective, params: PyTree) -> float:
    """Return the objective's loss at ``params`` (it may return ``loss`` or ``(loss, grads)``)."""
    out = objective(params)
    return float(out[0] if isinstance(out, tuple) else out)


def _flat_grads(grads: PyTree, params: PyTree) -> np.ndarray:
    """Return ``grads`` flattened in the order of ``params``' leaves."""
    leaves = flatten_as(structure(params), grads, "grads")
    return np.concatenate([np.ravel(np.asarray(g, dtype=float)) for g in leaves])


def _solve(A: np.ndarray, g: np.ndarray, *, require_pd: bool = False) -> np.ndarray | None:
    """Solve ``A d = g`` for symmetric ``A``, minimum-norm along numerically null directions.

    A Cholesky factorisation that fails, or whose pivots span more than 1e6 (so the
    condition number exceeds 1e12), switches to an eigendecomposition that drops eigenvalues
    below 1e-12 of the largest in magnitude: the unpenalised intercept shift of a softmax,
    along which the objective is flat, is then not moved by round-off. With ``require_pd``,
    return None when ``A`` is not positive definite.
    """
    try:
        pivots = np.abs(np.diag(np.linalg.cholesky(A)))
        if pivots.size == 0 or pivots.min() > 1e-6 * pivots.max():
            return np.linalg.solve(A, g)
    except np.linalg.LinAlgError:
        if require_pd:
            return None
    w, V = np.linalg.eigh(A)
    keep = np.abs(w) > 1e-12 * np.abs(w).max()
    return V[:, keep] @ ((V[:, keep].T @ g) / w[keep])


def _hessian_matrix(hessian: Hessian, params: PyTree, size: int) -> np.ndarray:
    H = np.array(hessian(params), dtype=float)  # a copy: the damping is added in place
    if H.shape != (size, size):
        raise ValueError(f"hessian returned shape {H.shape}, expected ({size}, {size})")
    return H


def _backtrack(
    objective: Objective,
    params: PyTree,
    x: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    t: float,
    *,
    search: _LineSearch,
) -> tuple[np.ndarray, float, int]:
    """Return ``(x - t d, t, evaluations)`` for the first ``t`` meeting Armijo's condition.

    ``d`` must be a descent direction (``g @ d > 0``). A rounding slack of a few ulps of the
    loss lets the full step through near the optimum, where the decrease is below round-off.
    Returns ``(x, 0.0, evaluations)`` if no step decreases the objective.
    """
    shrink, c1, max_backtracks = search
    f0 = _value(objective, params)
    slope = float(g @ d)
    slack = 8 * _EPS * max(1.0, abs(f0))
    for k in range(max_backtracks + 1):
        trial = x - t * d
        f = _value(objective, unflatten(trial, params))
        if math.isfinite(f) and f <= f0 - c1 * t * slope + slack:
            return trial, t, k + 2
        t *= shrink
    return x, 0.0, max_backtracks + 2


def newton(
    hessian: Hessian,
    *,
    lr: float = 1.0,
    damping: float = 0.0,
    objective: Objective | None = None,
    shrink: float = 0.5,
    c1: float = 1e-4,
    max_backtracks: int = 40,
) -> Optimizer:
    """Build Newton's method: ``params - lr * (H + damping I)^-1 grad`` with ``H = hessian(params)``.

    Args:
        hessian: ``params -> H``, the dense Hessian over ``flatten(params)``, e.g.
            ``lambda p: model.hessian(p, X, y)``.
        lr: the (first trial) step length; 1 is the Newton step.
        damping: ``lambda`` added to the diagonal (fixed ridge / Tikhonov damping). A singular
            system falls back to the minimum-norm least-squares step.
        objective: ``params -> loss`` or ``(loss, grads)``, e.g.
            ``lambda p: model.objective(p, X, y)``. When given, each step backtracks
            (``lr, lr * shrink, ...``) until Armijo's sufficient decrease
            ``f(x - t d) <= f(x) - c1 t grad.d`` holds; a direction that is not a descent
            direction (``H`` indefinite) is replaced by the gradient. Without it the step is
            taken as is: plain Newton, for convex problems such as the linear models.

    On a quadratic objective (``LinearRegression`` with ``mse``) one step with ``lr=1`` and
    no damping lands on the normal-equation solution.
    """
    lr, damping = _check("lr", lr, positive=True), _check("damping", damping)
    search = _line_search_settings(shrink, c1, max_backtracks)

    def init(params: PyTree) -> NewtonState:
        return NewtonState(0, damping)

    def update(grads: PyTree, state: NewtonState, params: PyTree) -> tuple[PyTree, NewtonState]:
        x, g = flatten(params), _flat_grads(grads, params)
        H = _hessian_matrix(hessian, params, x.size)
        H[np.diag_indices_from(H)] += damping
        d = _solve(H, g)
        if objective is None:
            return unflatten(x - lr * d, params), NewtonState(state.count + 1, damping, lr)
        if not float(g @ d) > 0:
            d = g  # not a descent direction: fall back to the gradient
        new, t, evals = _backtrack(objective, params, x, g, d, lr, search=search)
        new_state = NewtonState(state.count + 1, damping, t, evals)
        return unflatten(new, params), new_state

    hyper = dict(
        lr=lr,
        damping=damping,
        line_search=objective is not None,
        c1=search.c1,
        shrink=search.shrink,
    )
    return Optimizer(init, update, "newton", hyper, as_schedule(lr))


def damped_newton(
    hessian: Hessian,
    objective: Objective,
    *,
    damping: float = 1e-3,
    factor: float = 10.0,
    c1: float = 1e-4,
    max_tries: int = 60,
) -> Optimizer:
    """Build Levenberg-Marquardt damped Newton: solve ``(H + lambda I) d = grad``, adapting lambda.

    Each update tries ``lambda`` (starting at ``damping``, then the value the previous update
    left): it is multiplied by ``factor`` until ``H + lambda I`` is positive definite and the
    step decreases ``objective`` (Armijo's condition with ``c1``); after an accepted step the
    next update starts from ``lambda / factor``. Far from a minimum, or where ``H`` is
    indefinite (a non-convex MLP), large ``lambda`` turns the step into a short gradient
    step; near a minimum ``lambda`` shrinks geometrically and the steps become Newton steps
    (quadratic convergence). The loss never increases: if ``max_tries`` increases find no
    decrease (a stationary point), the parameters are returned unchanged.

    ``objective`` is ``params -> loss`` or ``(loss, grads)``; ``hessian`` as for :func:`newton`.
    """
    damping, factor = _check("damping", damping), _check("factor", factor, positive=True)
    c1, max_tries = _check("c1", c1), _count("max_tries", max_tries, 1)
    if factor <= 1 or c1 >= 1:
        raise ValueError("factor must be > 1 and c1 in [0, 1)")

    def init(params: PyTree) -> NewtonState:
        return NewtonState(0, damping)

    def update(grads: PyTree, state: NewtonState, params: PyTree) -> tuple[PyTree, NewtonState]:
        x, g = flatten(params), _flat_grads(grads, params)
        H = _hessian_matrix(hessian, params, x.size)
        diag = np.diag_indices_from(H)
        scale = max(float(np.mean(np.abs(H[diag]))) if x.size else 0.0, 1e-12)
        f0 = _value(objective, params)
        slack = 8 * _EPS * max(1.0, abs(f0))
        lam, evals = state.damping, 1
        for _ in range(max_tries):
            A = H.copy()
            A[diag] += lam
            d = _solve(A, g, require_pd=True)
            if d is not None:
                trial = x - d
                f = _value(objective, unflatten(trial, params))
                evals += 1
                if math.isfinite(f) and f <= f0 - c1 * float(g @ d) + slack:
                    lam = lam / factor if lam > 1e-15 * scale else 0.0
                    new_state = NewtonState(state.count + 1, lam, 1.0, evals)
                    return unflatten(trial, params), new_state
            lam = max(lam * factor, 1e-10 * scale)
        return unflatten(x, params), NewtonState(state.count + 1, lam, 0.0, evals)

    hyper = dict(damping=damping, factor=factor, c1=c1, max_tries=max_tries)
    return Optimizer(init, update, "damped_newton", hyper, as_schedule(1.0))


def _conjugate_gradient(
    matvec: Callable[[np.ndarray], np.ndarray], g: np.ndarray, iters: int, tol: float | None
) -> tuple[np.ndarray, int]:
    """Return ``(d, iterations)`` approximately solving ``A d = g`` by conjugate gradients.

    Stops when ``||r|| <= eta ||g||`` with ``eta = tol``, or by default the forcing term
    ``min(0.5, sqrt(||g||))`` (superlinear Newton-CG, Nocedal & Wright 7.1); after ``iters``
    iterations; or at curvature ``p.A p / p.p`` that is not positive or below 1e-10 of the
    largest seen (a numerically null direction, such as a softmax's intercept shift). It
    then returns the iterate so far, or ``g`` itself on the first iteration, which is
    always a descent direction (truncated Newton).
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


def newton_cg(
    hvp_operator: HVPOperator,
    *,
    lr: float = 1.0,
    damping: float = 0.0,
    cg_iters: int = 100,
    cg_tol: float | None = None,
    objective: Objective | None = None,
    shrink: float = 0.5,
    c1: float = 1e-4,
    max_backtracks: int = 40,
) -> Optimizer:
    """Build Newton-CG: solve ``(H + damping I) d = grad`` by conjugate gradients on products ``H v``.

    Never forms ``H``, so it scales to models with many parameters.

    Args:
        hvp_operator: ``params -> (v -> H v)`` on pytrees like ``params``, e.g.
            ``lambda p: model.hvp_operator(p, X, y)`` (the forward pass runs once per update;
            each CG iteration costs one R-operator pass), or
            ``lambda p: lambda v: model.hvp(p, X, y, v)``.
        cg_iters, cg_tol: at most ``cg_iters`` iterations, stopping when the residual is
            below ``cg_tol`` times ``||grad||`` (default: the forcing term
            ``min(0.5, sqrt(||grad||))``, which makes the outer iteration superlinear); CG
            also stops at non-positive or numerically null curvature.
        lr, damping, objective, shrink, c1, max_backtracks: as for :func:`newton`.
    """
    lr, damping = _check("lr", lr, positive=True), _check("damping", damping)
    cg_tol = None if cg_tol is None else _check("cg_tol", cg_tol)
    search = _line_search_settings(shrink, c1, max_backtracks)
    cg_iters = _count("cg_iters", cg_iters, 1)

    def init(params: PyTree) -> NewtonState:
        return NewtonState(0, damping)

    def update(grads: PyTree, state: NewtonState, params: PyTree) -> tuple[PyTree, NewtonState]:
        x, g = flatten(params), _flat_grads(grads, params)
        apply = hvp_operator(params)

        def matvec(v: np.ndarray) -> np.ndarray:
            return flatten(apply(unflatten(v, params))) + damping * v

        d, iters = _conjugate_gradient(matvec, g, cg_iters, cg_tol)
        if objective is None:
            new_state = NewtonState(state.count + 1, damping, lr, 0, iters)
            return unflatten(x - lr * d, params), new_state
        new, t, evals = _backtrack(objective, params, x, g, d, lr, search=search)
        return unflatten(new, params), NewtonState(state.count + 1, damping, t, evals, iters)

    hyper = dict(lr=lr, damping=damping, cg_iters=cg_iters, cg_tol=cg_tol)
    return Optimizer(init, update, "newton_cg", hyper, as_schedule(lr))


def fit_newton(
    model: Any,
    params: PyTree,
    X: Any,
    y: Any,
    *,
    method: str = "newton",
    max_iter: int = 50,
    tol: float = 1e-10,
    damping: float | None = None,
    line_search: bool = True,
    **fit_kwargs: Any,
) -> FitResult:
    """Fit ``model`` with full-batch Newton steps through :func:`symgrad.fit`; return its result.

    Args:
        model: a :mod:`symgrad.models` model (anything with ``objective``, ``hessian`` and,
            for ``"cg"``, ``hvp_operator``).
        method: ``"newton"`` (dense Hessian, :func:`newton`), ``"damped"``
            (Levenberg-Marquardt, :func:`damped_newton`: for non-convex models such as an
            MLP) or ``"cg"`` (:func:`newton_cg`, Hessian-free).
        max_iter: at most this many Newton steps (``fit``'s epochs).
        tol: stop once the gradient norm before a step is below ``tol`` (that step is still
            taken); ``result.n_steps`` counts the steps.
        damping: ``lambda`` for :func:`newton`/:func:`newton_cg` (default 0) or the initial
            ``lambda`` for :func:`damped_newton` (default 1e-3).
        line_search: backtrack on the objective (``"newton"`` and ``"cg"``); plain steps
            otherwise. ``"damped"`` always checks the objective.
        fit_kwargs: passed on to :func:`symgrad.fit` (``callbacks``, ``progress``, ...).
    """

    def objective(p: PyTree) -> tuple[float, PyTree]:
        return model.objective(p, X, y)

    watch = objective if line_search else None
    if method == "newton":
        opt = newton(lambda p: model.hessian(p, X, y), damping=damping or 0.0, objective=watch)
    elif method == "damped":
        opt = damped_newton(
            lambda p: model.hessian(p, X, y),
            objective,
            damping=1e-3 if damping is None else damping,
        )
    elif method == "cg":
        opt = newton_cg(
            lambda p: model.hvp_operator(p, X, y), damping=damping or 0.0, objective=watch
        )
    else:
        raise ValueError(f"method must be 'newton', 'damped' or 'cg', got {method!r}")
    if fit_kwargs.get("batch_size") is not None:
        raise ValueError("fit_newton takes full batches: the Hessian closure sees all of X")
    fit_kwargs.setdefault("progress", False)
    return fit(model.objective, params, X, y, optimizer=opt, epochs=max_iter, tol=tol, **fit_kwargs)
