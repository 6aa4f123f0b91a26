"""Full-batch solvers that count data passes, so the same code fits in memory or on a cluster.

A solver sees the objective only through a *problem* (:class:`ModelProblem` in memory,
:class:`symgrad.dask.DaskProblem` on a Dask cluster), whose every method is one pass over
the data, at a flat parameter vector ``x`` (:func:`symgrad.models.flatten` order):

* ``value(x)`` -> f;  ``value_and_grad(x)`` -> (f, g);
* ``newton_parts(x)`` -> (f, g, H): value, gradient and dense Hessian from ONE pass;
* ``hvp(x, v)`` -> H v.

Methods (:func:`minimize`): ``"newton"`` (one pass per step; a backtracking line search adds
value passes only when the full step is rejected), ``"lbfgs"`` (scipy's L-BFGS-B on the
driver), ``"newton_cg"`` (truncated Newton on Hessian-vector products) and ``"gd"``
(Barzilai-Borwein steps with an Armijo safeguard). Each reports its iterations and passes,
and shows a tqdm bar on a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from symgrad.fit import progress_bar
from symgrad.models import unflatten
from symgrad.scipy import Objective

__all__ = ["METHODS", "ModelProblem", "Problem", "SolveResult", "minimize"]

_ARMIJO = 1e-4
_EPS = float(np.finfo(float).eps)


class Problem(Protocol):
    """What a solver needs: each method is one pass over the data at flat parameters."""

    def value(self, x: np.ndarray) -> float: ...
    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...
    def newton_parts(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]: ...
    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray: ...


@dataclass
class SolveResult:
    """Hold the solution, as params and flat, and how the solver got there."""

    params: Any
    x: np.ndarray
    objective: float
    grad_norm: float
    n_iter: int
    n_passes: int
    converged: bool
    method: str
    message: str = ""
    history: list[float] = field(default_factory=list)


class ModelProblem(Objective):
    """Evaluate a :mod:`symgrad.models` model on in-memory ``X, y`` at flat parameters: the
    :class:`Problem` protocol over the one flat-vector adapter, :class:`symgrad.scipy.Objective`."""

    def __init__(self, model: Any, X: Any, y: Any, like: Any) -> None:
        super().__init__(model, X, y, like)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Return the objective and its flat gradient at ``x``."""
        return self.fun(x)

    def newton_parts(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Return the objective, gradient and Hessian at ``x``."""
        f, g = self.fun(x)
        return f, g, self.hess(x)

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Return the Hessian at ``x`` times ``v``."""
        return self.hessp(x, v)


class _Run:
    """Count passes and iterations, keep the objective history and drive the progress bar."""

    def __init__(self, problem: Problem, method: str, max_iter: int, progress: bool | None):
        self.problem, self.method, self.passes, self.iters = problem, method, 0, 0
        self.history: list[float] = []
        self.last: tuple[np.ndarray, float, np.ndarray] | None = None
        self.bar = progress_bar(progress, max_iter)
        if self.bar is not None:
            self.bar.set_description(method)
            self.bar.unit = "it"

    def call(self, name: str, *args: Any) -> Any:
        self.passes += 1
        out = getattr(self.problem, name)(*args)
        if name in ("value_and_grad", "newton_parts"):
            self.last = (np.array(args[0]), out[0], out[1])
        return out

    def final(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Return the objective and gradient at ``x``, reusing the last pass when it was there."""
        if self.last is not None and np.array_equal(self.last[0], x):
            return self.last[1], self.last[2]
        return self.call("value_and_grad", x)

    def step(self, f: float, gnorm: float) -> None:
        self.iters += 1
        self.history.append(f)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(objective=f"{f:.6g}", grad=f"{gnorm:.2e}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _norm(g: np.ndarray) -> float:
    return float(np.max(np.abs(g))) if g.size else 0.0


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Return the Newton direction ``-H^-1 g`` (Cholesky; a small ridge if H is not PD)."""
    ridge = 0.0
    scale = max(float(np.max(np.abs(np.diag(H)))), 1.0) if H.size else 1.0
    for _ in range(12):
        try:
            L = np.linalg.cholesky(H + ridge * np.eye(len(g)))
        except np.linalg.LinAlgError:
            ridge = max(ridge * 10, 1e-10 * scale)
            continue
        return -np.linalg.solve(L.T, np.linalg.solve(L, g))
    return -g


def _sufficient(f_new: float, f: float, decrease: float) -> bool:
    """Armijo's test, with the objective's rounding error allowed near the optimum."""
    return f_new <= f + _ARMIJO * decrease + 8 * _EPS * abs(f)


def _backtrack(run: _Run, x: np.ndarray, f: float, slope: float, d: np.ndarray) -> float:
    """Halve the step until the Armijo condition holds; return the accepted step (0: none)."""
    t = 0.5
    while t > 1e-10:
        if _sufficient(run.call("value", x + t * d), f, t * slope):
            return t
        t *= 0.5
    return 0.0


def _newton(run: _Run, x: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, str]:
    f, g, H = run.call("newton_parts", x)
    for _ in range(max_iter):
        if _norm(g) <= tol:
            return x, "converged"
        d = _solve(H, g)
        slope = float(g @ d)
        f_new, g_new, H_new = run.call("newton_parts", x + d)  # next step's pass, if accepted
        if not _sufficient(f_new, f, slope):
            t = _backtrack(run, x, f, slope, d)
            if t == 0.0:
                return x, "line search failed"
            f_new, g_new, H_new = run.call("newton_parts", x + t * d)
            d = t * d
        x, f, g, H = x + d, f_new, g_new, H_new
        run.step(f, _norm(g))
    return x, "converged" if _norm(g) <= tol else "max_iter"


def _cg(run: _Run, x: np.ndarray, g: np.ndarray, max_cg: int) -> np.ndarray:
    """Return an approximate Newton direction by conjugate gradients on Hessian products."""
    gnorm = float(np.linalg.norm(g))
    eta = min(0.5, math.sqrt(gnorm)) * gnorm
    d, r = np.zeros_like(g), -g
    p, rr = r.copy(), float(r @ r)
    for _ in range(max_cg):
        Hp = run.call("hvp", x, p)
        curv = float(p @ Hp)
        if curv <= 0:
            return d if d.any() else -g
        alpha = rr / curv
        d += alpha * p
        r -= alpha * Hp
        rr_new = float(r @ r)
        if math.sqrt(rr_new) <= eta:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return d


def _newton_cg(run: _Run, x: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, str]:
    f, g = run.call("value_and_grad", x)
    for _ in range(max_iter):
        if _norm(g) <= tol:
            return x, "converged"
        d = _cg(run, x, g, max_cg=max(10, len(g)))
        slope = float(g @ d)
        f_new, g_new = run.call("value_and_grad", x + d)
        if not _sufficient(f_new, f, slope):
            t = _backtrack(run, x, f, slope, d)
            if t == 0.0:
                return x, "line search failed"
            f_new, g_new = run.call("value_and_grad", x + t * d)
            d = t * d
        x, f, g = x + d, f_new, g_new
        run.step(f, _norm(g))
    return x, "converged" if _norm(g) <= tol else "max_iter"


def _gd(run: _Run, x: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, str]:
    """Gradient descent with Barzilai-Borwein steps, halved until the Armijo test passes."""
    f, g = run.call("value_and_grad", x)
    step = 1.0 / max(_norm(g), 1.0)
    for _ in range(max_iter):
        if _norm(g) <= tol:
            return x, "converged"
        while True:
            x_new = x - step * g
            f_new, g_new = run.call("value_and_grad", x_new)
            if _sufficient(f_new, f, -step * float(g @ g)) or step < 1e-16:
                break
            step *= 0.5
        s, t = x_new - x, g_new - g
        st = float(s @ t)
        step = float(s @ s) / st if st > 0 else step * 2.0
        x, f, g = x_new, f_new, g_new
        run.step(f, _norm(g))
    return x, "converged" if _norm(g) <= tol else "max_iter"


def _lbfgs(run: _Run, x: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, str]:
    from scipy.optimize import minimize as scipy_minimize

    def callback(xk: np.ndarray) -> None:
        run.step(last[0], last[1])

    last = [math.nan, math.nan]

    def fun(xk: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = run.call("value_and_grad", xk)
        last[:] = [f, _norm(g)]
        return f, g

    res = scipy_minimize(
        fun,
        x,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": max_iter, "gtol": tol, "ftol": 10 * np.finfo(float).eps},
    )
    return res.x, "converged" if res.success else str(res.message)


METHODS: dict[str, Callable[..., tuple[np.ndarray, str]]] = {
    "newton": _newton,
    "lbfgs": _lbfgs,
    "newton_cg": _newton_cg,
    "gd": _gd,
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
) -> SolveResult:
    """Minimize ``problem`` from ``x0``; ``like`` gives the params' structure for the result.

    Stops once the largest gradient entry is at most ``tol`` (``converged``), or after
    ``max_iter`` iterations. ``progress`` shows a tqdm bar (default: when stderr is a TTY).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    run = _Run(problem, method, max_iter, progress)
    try:
        x, message = METHODS[method](run, np.asarray(x0, dtype=float).copy(), max_iter, tol)
        f, g = run.final(x)
    finally:
        run.close()
    return SolveResult(
        params=unflatten(x, like),
        x=x,
        objective=f,
        grad_norm=_norm(g),
        n_iter=run.iters,
        n_passes=run.passes,
        converged=_norm(g) <= tol or message == "converged",
        method=method,
        message=message,
        history=run.history,
    )
