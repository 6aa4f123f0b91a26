"""Fit the model ``symgrad train`` built: the solver policy (``choose_solver``, one function,
to be replaced by the library's ``solvers.choose``), a divergence guard, and the call into
``fit``, ``newton`` or ``lbfgs``."""

from __future__ import annotations

import argparse
import importlib.util
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgrad.cli.build import Built
from symgrad.errors import TrainError

SECOND_ORDER = ("newton", "lbfgs")
#: A training loss above this many times its starting value (or non-finite) is divergence.
DIVERGENCE_FACTOR = 1e6
#: Iteration limits when --epochs is not given: first-order epochs, Newton and L-BFGS steps.
DEFAULT_EPOCHS = {"first-order": 100, "newton": 100, "lbfgs": 1000}
DEFAULT_LR = 0.01
#: Newton's method forms the dense Hessian up to this many parameters, else uses Newton-CG.
DENSE_NEWTON_MAX_PARAMS = 2000
DEFAULT_BATCH = 32


def first_order_names() -> list[str]:
    """Return the names of the first-order optimizers ``--optimizer`` accepts."""
    from symgrad.optim import OPTIMIZERS

    return sorted(OPTIMIZERS)


@dataclass(frozen=True)
class Solver:
    """The optimizer the flags chose, with its iteration limit, step length and batch size."""

    name: str
    epochs: int
    lr: float | None
    batch_size: int | None

    @property
    def second_order(self) -> bool:
        """Return True for the full-batch solvers run to convergence (newton, lbfgs)."""
        return self.name in SECOND_ORDER

    def describe(self) -> str:
        """Return the ``fit`` status line's text."""
        if self.name == "lbfgs":
            return f"lbfgs (scipy L-BFGS-B, full batch), at most {self.epochs} iterations"
        if self.name == "newton":
            step = "line search" if self.lr is None else f"fixed step {self.lr:g}"
            return f"newton (full batch, {step}), at most {self.epochs} iterations"
        return f"{self.name}(lr={self.lr}), {self.epochs} epochs, batch size {self.batch_size or 'full'}"


def _solver_name(args: argparse.Namespace, built: Built, X: np.ndarray, y: np.ndarray) -> str:
    name = args.optimizer.lower()
    has_scipy = importlib.util.find_spec("scipy") is not None
    if name == "auto":  # the one policy, from the kernels' facts (never a Hessian)
        from symgrad.solvers import choose

        chosen = choose(built.model, X, y, params=built.init)
        if chosen == "lbfgs" and has_scipy:
            return "lbfgs"
        return "adam" if chosen == "adam" else "newton"
    if name not in (*SECOND_ORDER, *first_order_names()):
        choices = ", ".join(["auto", *SECOND_ORDER, *first_order_names()])
        raise TrainError(f"unknown optimizer {args.optimizer!r}; choose one of: {choices}")
    if name == "lbfgs" and not has_scipy:
        raise TrainError("--optimizer lbfgs needs scipy (pip install scipy)")
    return name


def choose_solver(args: argparse.Namespace, built: Built, X: np.ndarray, y: np.ndarray) -> Solver:
    """Return the solver for ``--optimizer`` (auto: second order for convex models)."""
    name = _solver_name(args, built, X, y)
    if args.epochs is not None and args.epochs < 1:
        raise TrainError(f"--epochs must be at least 1, got {args.epochs}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise TrainError(f"--lr must be a positive number, got {args.lr}")
    if name in SECOND_ORDER:
        if args.batch_size not in (None, 0):
            raise TrainError(
                f"--batch-size applies to first-order optimizers; {name} uses full batches"
            )
        if name == "lbfgs" and args.lr is not None:
            raise TrainError("--lr does not apply to lbfgs (it finds its own step lengths)")
        epochs = args.epochs or DEFAULT_EPOCHS[name]
        return Solver(name, epochs, args.lr, None)
    batch = DEFAULT_BATCH if args.batch_size is None else args.batch_size
    if batch < 0:
        raise TrainError(f"--batch-size must be 0 (full batch) or more, got {batch}")
    epochs = args.epochs or DEFAULT_EPOCHS["first-order"]
    return Solver(name, epochs, DEFAULT_LR if args.lr is None else args.lr, batch or None)


# --------------------------------------------------------------------------- fitting


class Guard:
    """A fit callback that stops on divergence (loss far above its start) or a stalled Newton step."""

    def __init__(self, start_loss: float) -> None:
        self.start = start_loss
        self.limit = DIVERGENCE_FACTOR * max(abs(start_loss), 1e-6)
        self.diverged: str | None = None
        self.stalled = False

    def __call__(self, epoch: int, info: Any) -> bool:
        loss = info.history.loss[-1]
        if not loss <= self.limit:
            self.diverged = f"the loss grew from {self.start:.4g} to {loss:.4g} by epoch {epoch}"
            return True
        if getattr(info.opt_state, "step_size", None) == 0.0:
            self.stalled = True  # no step decreases the loss: converged to round-off
            return True
        return False


@contextmanager
def quiet_numpy() -> Iterator[None]:
    """Silence numpy's floating-point warnings: non-finite results are reported as divergence."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@dataclass
class Problem:
    """What a fit needs: the built model, the standardized training (and validation) data."""

    built: Built
    X: np.ndarray
    y: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    seed: int


def fit(problem: Problem, solver: Solver, guard: Guard, progress: bool | None) -> Any:
    """Run ``solver`` on the problem's training data; return the FitResult."""
    from symgrad import optim
    from symgrad.fit import fit as fit_epochs
    from symgrad.solvers import relative_tolerance

    model, X, y, validation = problem.built.model, problem.X, problem.y, problem.validation
    if solver.name == "lbfgs":
        from symgrad.lbfgs import fit_lbfgs

        return fit_lbfgs(
            model, problem.built.init, X, y, max_iter=solver.epochs, validation=validation,
            callbacks=[guard],
        )  # fmt: skip
    kwargs: dict[str, Any] = dict(validation=validation, progress=progress, callbacks=[guard])
    if solver.name == "newton":
        opt = _newton(problem, solver.lr)
        grads = model.objective(problem.built.init, X, y)[1].values()
        kwargs |= dict(tol=relative_tolerance(1e-9, grads))
    else:
        opt = optim.get(solver.name, lr=solver.lr)
        kwargs |= dict(batch_size=solver.batch_size, seed=problem.seed)
    return fit_epochs(
        model.objective, problem.built.init, X, y, optimizer=opt, epochs=solver.epochs,
        on_non_finite="stop", **kwargs,
    )  # fmt: skip


def _newton(problem: Problem, lr: float | None) -> Any:
    """Dense Newton for small linear and logistic models, else Newton-CG (Hessian-free).

    A softmax's Hessian is singular (shifting every class's intercept changes nothing), which
    conjugate gradients handle at the cost of a few products with ``X``, where a dense solve
    needs an eigendecomposition per step.
    """
    from symgrad.models import flatten
    from symgrad.newton import newton, newton_cg

    model, X, y = problem.built.model, problem.X, problem.y

    def objective(p: Any) -> Any:
        return model.objective(p, X, y)

    watch = objective if lr is None else None
    small = flatten(problem.built.init).size <= DENSE_NEWTON_MAX_PARAMS
    if problem.built.kind in ("linear", "logistic") and small:
        return newton(lambda p: model.hessian(p, X, y), lr=lr or 1.0, objective=watch)
    return newton_cg(lambda p: model.hvp_operator(p, X, y), lr=lr or 1.0, objective=watch)
