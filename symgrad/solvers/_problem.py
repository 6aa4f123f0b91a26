"""What a solver sees of an objective (a *problem*), and the run that counts its passes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from symgrad.fit import FitHistory, FitResult, progress_bar
from symgrad.scipy import NON_FINITE_TRIAL, Objective
from symgrad.tree import unravel

Callback = Callable[[int, FitResult], bool | None]


__all__ = ["NON_FINITE_TRIAL", "ModelProblem", "Problem", "Run", "Stop"]


class Problem(Protocol):
    """What a solver needs: each method is one pass over the data at flat parameters."""

    def value(self, x: np.ndarray) -> float: ...
    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...
    def newton_parts(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]: ...
    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray: ...


class ModelProblem(Objective):
    """Evaluate a :mod:`symgrad.models` model on in-memory ``X, y`` at flat parameters: the
    :class:`Problem` protocol over the one flat-vector adapter, :class:`symgrad.scipy.Objective`."""

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

    def scorer(self, validation: tuple[Any, Any] | None) -> Callable[[np.ndarray], float] | None:
        """Return ``x -> the model's objective on (X_val, y_val)``, or None without them."""
        if validation is None:
            return None
        X_val, y_val = validation
        return lambda x: float(self.model.objective(self.unravel(x), X_val, y_val)[0])


class Stop(Exception):
    """End a run early: ``reason`` becomes the result's ``stop_reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def max_abs(g: np.ndarray) -> float:
    """Return the largest gradient entry in magnitude (the solvers' convergence measure)."""
    return float(np.max(np.abs(g))) if g.size else 0.0


def finite(out: Any) -> bool:
    """Tell whether every number of a pass's output (a float or a tuple of arrays) is finite."""
    parts = out if isinstance(out, tuple) else (out,)
    return all(bool(np.all(np.isfinite(part))) for part in parts)


class Run:
    """One solver run: counts passes, holds the current iterate, keeps the history, calls
    the callbacks, drives the progress bar and collects the reasons a result may be wrong."""

    def __init__(
        self,
        problem: Problem,
        method: str,
        like: Any,
        max_iter: int,
        *,
        progress: bool | None = None,
        callbacks: Sequence[Callback] = (),
        validation: Callable[[np.ndarray], float] | None = None,
    ) -> None:
        self.problem, self.method, self.like = problem, method, like
        self.passes, self.history = 0, FitHistory()
        self.callbacks, self.validation = tuple(callbacks), validation
        self.warnings: list[str] = []
        self.x: np.ndarray = np.zeros(0)
        self.f, self.g = math.nan, np.zeros(0)
        self.start = time.perf_counter()
        self.bar = progress_bar(progress, max_iter)
        if self.bar is not None:
            self.bar.set_description(method)
            self.bar.unit = "it"

    def call(self, name: str, *args: Any) -> Any:
        """Return the problem's ``name`` pass at ``args``, counting it."""
        self.passes += 1
        return getattr(self.problem, name)(*args)

    def value(self, x: np.ndarray) -> float:
        """Return the objective at ``x`` (one value pass)."""
        return float(self.call("value", x))

    def warn(self, reason: str) -> None:
        """Record a reason the result may not be a minimum (once each)."""
        if reason not in self.warnings:
            self.warnings.append(reason)

    def begin(self, name: str, x: np.ndarray) -> tuple:
        """Return the ``name`` pass at the start ``x``; stop if it is not finite."""
        out = self.call(name, x)
        self.x, self.f, self.g = x, float(out[0]), out[1]
        if not finite(out):
            what = "objective" if not math.isfinite(self.f) else "gradient"
            self.warn(f"the {what} is not finite at the start")
            raise Stop("non_finite", f"{self.method}: non-finite {what} at the start")
        return out

    def step(self, x: np.ndarray, out: tuple, t: float) -> None:
        """Accept ``x`` (its pass ``out``, reached with step length ``t``) as the next iterate."""
        self.x, self.f, self.g = x, float(out[0]), out[1]
        if not finite(out):
            self.warn(f"a non-finite value at iteration {len(self.history)}'s accepted point")
            raise Stop("non_finite", f"{self.method}: non-finite value after a step")
        n = len(self.history)
        self.history.append(
            epoch=n,
            loss=self.f,
            val_loss=math.nan if self.validation is None else float(self.validation(x)),
            grad_norm=float(np.linalg.norm(self.g)),
            lr=float(t),
            seconds=time.perf_counter() - self.start,
            n_steps=n + 1,
        )
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(objective=f"{self.f:.6g}", grad=f"{max_abs(self.g):.2e}")
        if self.callbacks:
            snapshot = self.result("running", f"after iteration {n}")
            if any(bool(cb(n, snapshot)) for cb in self.callbacks):
                raise Stop("callback", f"a callback asked to stop after iteration {n}")

    def result(self, reason: str, message: str) -> FitResult:
        """Return the run's result at the current iterate."""
        n = len(self.history)
        return FitResult(
            params=unravel(self.x, self.like),
            history=self.history,
            stop_reason=reason,
            n_steps=n,
            n_epochs=n,
            message=message,
            tol_mode="grad_max",
            objective=self.f,
            grad_norm=max_abs(self.g),
            n_passes=self.passes,
            method=self.method,
            warnings=tuple(self.warnings),
        )

    def done(self, tol: float) -> tuple[str, str] | None:
        """Return the converged stop when the largest gradient entry is at most ``tol``."""
        if max_abs(self.g) <= tol:
            return "tol", f"converged: largest gradient entry <= {tol:g} ({self.method})"
        return None

    def failed_search(self) -> tuple[str, str]:
        """Return the stop after a line search found no decrease: a stall at round-off after
        progress, a failure (recorded in ``warnings``) at the start."""
        if self.history:
            return "stalled", f"{self.method}: no step decreases the objective (round-off)"
        self.warn("the line search found no decrease from the start")
        return "line_search", f"{self.method}: the line search failed at the start"

    def out_of_steps(self, tol: float, max_iter: int) -> tuple[str, str]:
        """Return the stop after ``max_iter`` iterations."""
        done = self.done(tol)
        return done or ("epochs", f"{self.method}: not converged in max_iter={max_iter} iterations")

    def close(self) -> None:
        """End the progress bar."""
        if self.bar is not None:
            self.bar.close()
