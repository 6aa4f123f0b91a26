"""One solver core for every caller: Newton, damped Newton, Newton-CG, L-BFGS and gd.

:func:`symgrad.newton.fit_newton`, :func:`symgrad.lbfgs.fit_lbfgs`, the scikit-learn
estimators, :func:`symgrad.dask.fit` and ``symgrad train`` all run :func:`minimize` on a
*problem* (:class:`ModelProblem` in memory, :class:`symgrad.dask.DaskProblem` on a Dask
cluster), whose every method is one pass over the data at a flat parameter vector ``x``
(:func:`symgrad.tree.ravel` order):

* ``value(x)`` -> f;  ``value_and_grad(x)`` -> (f, g);
* ``newton_parts(x)`` -> (f, g, H): value, gradient and dense Hessian from ONE pass;
* ``hvp(x, v)`` -> H v.

So the same model and data take the same iterates in memory and on a cluster. The parts
live once each: the linear solve (:func:`solve`: Cholesky, then a minimum-norm eigen
fallback), the line search (:func:`backtrack`, :func:`search`), the truncated CG
(:func:`truncated_cg`), the L-BFGS driver (scipy's L-BFGS-B) and the solver policy
(:func:`choose`). Results come back as :class:`symgrad.fit.FitResult` (``SolveResult`` is
the same class), with the passes counted and, in ``warnings``, every reason the result may
not be a minimum: a failure is never reported as convergence.
"""

from __future__ import annotations

from symgrad.fit import FitResult
from symgrad.solvers._cg import truncated_cg
from symgrad.solvers._choose import DENSE_LIMIT, choose
from symgrad.solvers._line_search import (
    Backtrack,
    LineSearch,
    backtrack,
    check_count,
    check_number,
    line_search_settings,
    search,
    sufficient,
)
from symgrad.solvers._linsolve import solve
from symgrad.solvers._minimize import METHODS, minimize
from symgrad.solvers._newton import damped_step, direction
from symgrad.solvers._problem import ModelProblem, Problem
from symgrad.solvers._tolerance import gradient_norm, relative_tolerance

#: the result of every solver (the runner's result type)
SolveResult = FitResult

__all__ = [
    "DENSE_LIMIT",
    "METHODS",
    "Backtrack",
    "LineSearch",
    "ModelProblem",
    "Problem",
    "SolveResult",
    "backtrack",
    "check_count",
    "check_number",
    "choose",
    "damped_step",
    "direction",
    "gradient_norm",
    "line_search_settings",
    "minimize",
    "relative_tolerance",
    "search",
    "solve",
    "sufficient",
    "truncated_cg",
]
