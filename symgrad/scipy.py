"""scipy.optimize adapter: a model's objective, gradient and Hessian on flat float64 vectors.

scipy's minimizers work on one flat vector; :mod:`symgrad.models` on a dict of arrays. One
call bridges them, with no second copy of any derivative (the model's own ``objective``,
``hvp_operator`` and ``hessian``, from the generated kernels)::

    from scipy.optimize import minimize
    import symgrad.scipy

    f = symgrad.scipy.objective(model, X, y)
    res = minimize(f.fun, f.x0, jac=True, hessp=f.hessp, method="trust-ncg")
    params = f.unravel(res.x)

    params, res = symgrad.scipy.minimize(model, X, y, method="L-BFGS-B")  # the same, one call

scipy is imported on first use, so ``import symgrad.scipy`` works without it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from symgrad.errors import ConvergenceWarning
from symgrad.models import flatten, unflatten

__all__ = ["Objective", "initial_params", "minimize", "objective"]

Params = dict[str, np.ndarray]
#: scipy methods that take a Hessian-vector product ``hessp`` / a dense ``hess``, or no gradient
_HESSP = frozenset({"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"})
_HESS = frozenset({"dogleg", "trust-exact"})
_NO_JAC = frozenset({"nelder-mead", "powell", "cobyla", "cobyqa"})
#: the warning for a non-finite value met at a trial point (a solver stepped back from it)
NON_FINITE_TRIAL = "a non-finite objective or gradient at a trial point"


def initial_params(model: Any, X: Any, y: Any, seed: int = 0) -> Params:
    """Return ``model.init_for(X, y, seed)``: zeros for linear models, seeded for an MLP."""
    return model.init_for(X, y, seed)


class Objective:
    """A model's objective on ``X, y`` as functions of one flat float64 vector, for scipy.

    ``fun(x) -> (value, gradient)`` (pass ``jac=True``), ``hessp(x, p)`` and ``hess(x)`` use
    :func:`symgrad.models.flatten`'s order; ``x0`` is the flattened start and
    ``unravel(x)`` the params dict. The Hessian-vector operator is built once per point and
    reused while scipy asks for products at the same ``x`` (trust-ncg, Newton-CG).
    """

    def __init__(
        self,
        model: Any,
        X: Any,
        y: Any,
        params: Mapping[str, Any] | None = None,
        *,
        sample_weight: Any = None,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.X = np.asarray(X, dtype=float)
        self.y = y
        start = initial_params(model, self.X, y, seed) if params is None else dict(params)
        self._like = {key: np.asarray(value, dtype=float) for key, value in start.items()}
        self.x0 = flatten(self._like)
        self._kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        self._hvp_at: tuple[np.ndarray, Callable[[Params], Params]] | None = None

    def unravel(self, x: Any) -> Params:
        """Return the params dict for the flat vector ``x`` (the inverse of flattening)."""
        return unflatten(np.asarray(x, dtype=float), self._like)

    def fun(self, x: Any) -> tuple[float, np.ndarray]:
        """Return the objective's value and flat gradient at ``x`` (scipy's ``jac=True``)."""
        params = self.unravel(x)
        value, grads = self.model.objective(params, self.X, self.y, **self._kw)
        return float(value), flatten({key: grads[key] for key in params})

    def value(self, x: Any) -> float:
        """Return the objective's value alone at ``x`` (for derivative-free methods)."""
        return self.fun(x)[0]

    def hessp(self, x: Any, p: Any) -> np.ndarray:
        """Return the exact Hessian at ``x`` times the flat direction ``p``."""
        x = np.asarray(x, dtype=float)
        if self._hvp_at is None or not np.array_equal(self._hvp_at[0], x):
            operator = self.model.hvp_operator(self.unravel(x), self.X, self.y, **self._kw)
            self._hvp_at = (x.copy(), operator)
        return flatten(self._hvp_at[1](self.unravel(p)))

    def hess(self, x: Any) -> np.ndarray:
        """Return the dense Hessian at ``x`` (square, in the flat vector's order)."""
        return np.asarray(self.model.hessian(self.unravel(x), self.X, self.y, **self._kw))


def objective(
    model: Any,
    X: Any,
    y: Any,
    params: Mapping[str, Any] | None = None,
    *,
    sample_weight: Any = None,
    seed: int = 0,
) -> Objective:
    """Return ``model``'s objective on ``X, y`` as an :class:`Objective` of flat vectors.

    ``params`` is the start (default ``model.init``: zeros for linear models, ``seed`` for an
    MLP); ``sample_weight`` makes the loss a weighted mean.
    """
    return Objective(model, X, y, params, sample_weight=sample_weight, seed=seed)


def minimize(
    model: Any,
    X: Any,
    y: Any,
    params: Mapping[str, Any] | None = None,
    *,
    method: str = "L-BFGS-B",
    sample_weight: Any = None,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[Params, Any]:
    """Minimise ``model``'s objective with ``scipy.optimize.minimize``; return (params, result).

    The gradient is passed for every method that uses one, ``hessp`` for Newton-CG and the
    trust-region Krylov methods, the dense ``hess`` for dogleg and trust-exact. ``kwargs``
    go to scipy (``tol``, ``options={"maxiter": ...}``, ``callback``, ``bounds`` ...).

    Failure is never convergence: a non-finite objective or gradient met at any point, or a
    result equal to the start where the gradient is not small, sets ``res.success = False``,
    lists the causes in ``res.warnings`` and raises a
    :class:`symgrad.errors.ConvergenceWarning` naming them.
    """
    from scipy import optimize

    f = Objective(model, X, y, params, sample_weight=sample_weight, seed=seed)
    seen = {"non_finite": False}

    def fun(x: Any) -> tuple[float, np.ndarray]:
        value, grad = f.fun(x)
        seen["non_finite"] |= not (math.isfinite(value) and bool(np.all(np.isfinite(grad))))
        return value, grad

    def value(x: Any) -> float:
        return fun(x)[0]

    name = method.lower() if isinstance(method, str) else ""
    if name in _NO_JAC:
        res = optimize.minimize(value, f.x0, method=method, **kwargs)
    else:
        extra: dict[str, Any] = {}
        if name in _HESSP:
            extra["hessp"] = f.hessp
        elif name in _HESS:
            extra["hess"] = f.hess
        res = optimize.minimize(fun, f.x0, jac=True, method=method, **extra, **kwargs)
    res.warnings = _problems(res, f.x0, seen["non_finite"])
    if res.warnings:
        res.success = False
        warnings.warn(
            f"scipy {method} did not find a minimum: {'; '.join(res.warnings)}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return f.unravel(res.x), res


def _problems(res: Any, x0: np.ndarray, non_finite: bool) -> tuple[str, ...]:
    """Return why scipy's result may not be a minimum, whatever its ``success`` says: a
    non-finite value met, or a stop at the start that scipy did not call convergence
    (its gradient test passed there only if ``jac`` is small)."""
    out = []
    if non_finite:
        out.append(NON_FINITE_TRIAL)
    jac = getattr(res, "jac", None)
    small = jac is not None and bool(np.all(np.abs(np.asarray(jac)) <= 1e-8))
    if np.array_equal(np.asarray(res.x, dtype=float), x0) and not small:
        out.append(f"the result is the start ({res.message})")
    return tuple(out)
