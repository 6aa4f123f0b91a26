"""Every error class symgrad raises on purpose, in one place: users see one clear line, never
sympy's internals, and the CLI maps each class to one exit code."""

from __future__ import annotations

from typing import Any


class SymgradError(Exception):
    """Base class of every error symgrad raises on purpose."""


class SpecError(SymgradError, ValueError):
    """A kernel spec cannot be turned into code; the message names the spec and the problem."""

    def __init__(self, spec: str, problem: str, origin: str | None = None) -> None:
        self.spec = spec
        self.problem = problem
        self.origin = origin
        where = f" (defined in {origin})" if origin else ""
        super().__init__(f"spec {spec!r}{where}: {problem}")


class InternalError(SymgradError):
    """symgrad's own rules failed; not the user's fault (CLI exit 123, "please report")."""


class SafeModeError(InternalError):
    """An emitted function disagrees with the plain formula at a safe-mode check point."""


class BudgetError(SpecError):
    """A compiler stage ran past its time or size budget on this spec."""

    def __init__(self, spec: str, stage: str, limit: str, origin: str | None = None) -> None:
        self.stage = stage
        super().__init__(spec, f"{stage} exceeded its budget ({limit}); simplify the spec", origin)


class NonFiniteError(SymgradError, FloatingPointError):
    """Signal a NaN/inf loss, gradient or parameter; ``.result`` keeps the last finite params."""

    def __init__(self, message: str, *, result: Any, epoch: int, step: int, where: str) -> None:
        super().__init__(message)
        self.result = result
        self.epoch = epoch
        self.step = step
        self.where = where


class DataError(SymgradError):
    """The data cannot be used; the message names the source and the problem in one line."""


class TargetError(SymgradError):
    """A target cannot be found, imported or used; the message names it and the problem."""


class OutputError(SymgradError):
    """An output file or folder cannot be used; the message names it and the problem."""


class WriteFailed(OutputError):
    """Writing a file failed (nothing was replaced); ``name`` and ``problem`` say which and why."""

    def __init__(self, name: str, exc: OSError) -> None:
        self.name = name
        self.problem = f"cannot write: {exc.strerror or exc}"
        super().__init__(f"{self.name}: {self.problem}")


class TrainError(SymgradError):
    """A flag or combination of flags cannot be used; the message says which and why."""


class CodegenError(SymgradError):
    """Generated source failed the safety check run before any file is written."""


class ClusterError(SymgradError):
    """A Dask cluster cannot be reached or cannot finish a pass; the message says which and why."""


class HessianWarning(UserWarning):
    """A loss's second derivative is zero or negative on much of the data: a boosting library's
    Newton step is undefined there, so a safe Hessian policy replaces it."""


class ConvergenceWarning(UserWarning):
    """A solver stopped somewhere that may not be a minimum: a non-finite objective or
    gradient met, or a line search that found no decrease. The message names the cause;
    the scikit-learn estimators raise scikit-learn's own ``ConvergenceWarning`` instead."""


class AccuracyWarning(UserWarning):
    """Safe mode found no form of an emitted function as accurate as the plain formula at some
    point, and emitted the most accurate finite one it had (the message names the point)."""
