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

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from symgrad.fit import FitResult, fit
from symgrad.optim import Optimizer
from symgrad.schedules import as_schedule
from symgrad.solvers import (
    ModelProblem,
    backtrack,
    check_count,
    check_number,
    damped_step,
    direction,
    line_search_settings,
    minimize,
    solve,
    truncated_cg,
)
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


def _value(objective: Objective, params: PyTree) -> float:
    """Return the objective's loss at ``params`` (it may return ``loss`` or ``(loss, grads)``)."""
    out = objective(params)
    return float(out[0] if isinstance(out, tuple) else out)


def _flat_grads(grads: PyTree, params: PyTree) -> np.ndarray:
    """Return ``grads`` flattened in the order of ``params``' leaves."""
    leaves = flatten_as(structure(params), grads, "grads")
    return np.concatenate([np.ravel(np.asarray(g, dtype=float)) for g in leaves])


def _hessian_matrix(hessian: Hessian, params: PyTree, size: int) -> np.ndarray:
    H = np.array(hessian(params), dtype=float)  # a copy: the damping is added in place
    if H.shape != (size, size):
        raise ValueError(f"hessian returned shape {H.shape}, expected ({size}, {size})")
    return H


def _line_search(
    objective: Objective, params: PyTree, g: np.ndarray, d: np.ndarray, t: float, search: Any
) -> tuple[np.ndarray, float, int]:
    """Return ``(x - t d, t, evaluations)`` from :func:`symgrad.solvers.backtrack`, counting
    the evaluation at ``params`` (``(x, 0.0, evaluations)`` if no step decreases)."""
    x, f0 = flatten(params), _value(objective, params)
    found = backtrack(
        lambda z: _value(objective, unflatten(z, params)), x, f0, float(g @ d), d, t=t,
        search=search,
    )  # fmt: skip
    return x - found.t * d, found.t, found.evaluations + 1


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
    lr, damping = check_number("lr", lr, positive=True), check_number("damping", damping)
    search = line_search_settings(shrink, c1, max_backtracks)

    def init(params: PyTree) -> NewtonState:
        return NewtonState(0, damping)

    def update(grads: PyTree, state: NewtonState, params: PyTree) -> tuple[PyTree, NewtonState]:
        x, g = flatten(params), _flat_grads(grads, params)
        H = _hessian_matrix(hessian, params, x.size)
        H[np.diag_indices_from(H)] += damping
        if objective is None:
            d = solve(H, g)
            return unflatten(x - lr * d, params), NewtonState(state.count + 1, damping, lr)
        d = direction(H, g)  # the gradient where H d = g is not a descent direction
        new, t, evals = _line_search(objective, params, g, d, lr, search)
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
    damping, factor = (
        check_number("damping", damping),
        check_number("factor", factor, positive=True),
    )
    c1, max_tries = check_number("c1", c1), check_count("max_tries", max_tries, 1)
    if factor <= 1 or c1 >= 1:
        raise ValueError("factor must be > 1 and c1 in [0, 1)")

    def init(params: PyTree) -> NewtonState:
        return NewtonState(0, damping)

    def update(grads: PyTree, state: NewtonState, params: PyTree) -> tuple[PyTree, NewtonState]:
        x, g = flatten(params), _flat_grads(grads, params)
        H = _hessian_matrix(hessian, params, x.size)
        f0 = _value(objective, params)
        value = lambda z: _value(objective, unflatten(z, params))  # noqa: E731
        new, _, lam, evals = damped_step(
            H, g, x, f0, value, state.damping, factor=factor, c1=c1, max_tries=max_tries
        )
        if new is None:
            return unflatten(x, params), NewtonState(state.count + 1, lam, 0.0, evals + 1)
        return unflatten(new, params), NewtonState(state.count + 1, lam, 1.0, evals + 1)

    hyper = dict(damping=damping, factor=factor, c1=c1, max_tries=max_tries)
    return Optimizer(init, update, "damped_newton", hyper, as_schedule(1.0))


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
    lr, damping = check_number("lr", lr, positive=True), check_number("damping", damping)
    cg_tol = None if cg_tol is None else check_number("cg_tol", cg_tol)
    search = line_search_settings(shrink, c1, max_backtracks)
    cg_iters = check_count("cg_iters", cg_iters, 1)

    def init(params: PyTree) -> NewtonState:
        return NewtonState(0, damping)

    def update(grads: PyTree, state: NewtonState, params: PyTree) -> tuple[PyTree, NewtonState]:
        x, g = flatten(params), _flat_grads(grads, params)
        apply = hvp_operator(params)

        def matvec(v: np.ndarray) -> np.ndarray:
            return flatten(apply(unflatten(v, params))) + damping * v

        d, iters = truncated_cg(matvec, g, cg_iters, cg_tol)
        if objective is None:
            new_state = NewtonState(state.count + 1, damping, lr, 0, iters)
            return unflatten(x - lr * d, params), new_state
        new, t, evals = _line_search(objective, params, g, d, lr, search)
        return unflatten(new, params), NewtonState(state.count + 1, damping, t, evals, iters)

    hyper = dict(lr=lr, damping=damping, cg_iters=cg_iters, cg_tol=cg_tol)
    return Optimizer(init, update, "newton_cg", hyper, as_schedule(lr))


#: fit_newton's method -> the solver core's
_METHODS = {"newton": "newton", "damped": "damped_newton", "cg": "newton_cg"}


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
    validation: tuple[Any, Any] | None = None,
    callbacks: Any = (),
    progress: bool | None = False,
    **fit_kwargs: Any,
) -> FitResult:
    """Fit ``model`` with full-batch Newton steps by :func:`symgrad.solvers.minimize`.

    Args:
        model: a :mod:`symgrad.models` model (anything with ``objective``, ``hessian`` and,
            for ``"cg"``, ``hvp_operator``).
        method: ``"newton"`` (dense Hessian), ``"damped"`` (Levenberg-Marquardt: for
            non-convex models such as an MLP) or ``"cg"`` (Newton-CG, Hessian-free): the
            solver core's ``"newton"``, ``"damped_newton"`` and ``"newton_cg"``, the same
            iterates :func:`symgrad.dask.fit` takes on a cluster.
        max_iter: at most this many Newton steps.
        tol: stop once the largest gradient entry is at most ``tol``; ``result.n_steps``
            counts the steps, ``result.n_passes`` the passes over the data.
        damping: a fixed ridge added to the Hessian for ``"newton"``/``"cg"`` (default 0),
            or the initial ``lambda`` of ``"damped"`` (default 1e-3).
        line_search: backtrack on the objective (the default). ``False`` takes plain steps
            through :func:`symgrad.fit` with :func:`newton` / :func:`newton_cg` (no check
            of the objective; ``fit_kwargs`` go to ``fit``).
        validation, callbacks, progress: as for :func:`symgrad.fit`.

    ``result.warnings`` says why a result may not be a minimum (a non-finite value met, no
    decrease from the start); ``stop_reason`` is ``"tol"`` only at the tolerance.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be 'newton', 'damped' or 'cg', got {method!r}")
    if fit_kwargs.get("batch_size") is not None:
        raise ValueError("fit_newton takes full batches: the Hessian closure sees all of X")
    if not line_search and method != "damped":
        make = newton if method == "newton" else newton_cg
        of = model.hessian if method == "newton" else model.hvp_operator
        opt = make(lambda p: of(p, X, y), damping=damping or 0.0)
        return fit(
            model.objective, params, X, y, optimizer=opt, epochs=max_iter, tol=tol,
            validation=validation, callbacks=callbacks, progress=progress, **fit_kwargs,
        )  # fmt: skip
    fit_kwargs.pop("batch_size", None)
    if fit_kwargs:
        raise TypeError(f"fit_newton got unexpected arguments: {', '.join(sorted(fit_kwargs))}")
    problem = ModelProblem(model, X, y, params)
    options: dict[str, Any] = {}
    if damping is not None:
        options["damping"] = check_number("damping", damping)
    return minimize(
        problem, problem.x0, params, method=_METHODS[method], max_iter=max_iter, tol=tol,
        progress=progress, callbacks=callbacks, validation=problem.scorer(validation), **options,
    )  # fmt: skip
