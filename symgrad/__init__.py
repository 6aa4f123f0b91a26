"""symgrad: symbolic gradients of ML losses, emitted as readable, stable, vectorized numpy."""

from symgrad import optim, schedules
from symgrad.codegen import compile, generate_source
from symgrad.errors import SpecError, SymgradError
from symgrad.fit import FitHistory, FitResult, NonFiniteError, fit
from symgrad.optim import OPTIMIZERS, Optimizer
from symgrad.primitives import axis_sum, log_softmax, logsumexp, softmax, xlogy
from symgrad.spec import Spec, activation, compose, loss, regularizer

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "FitHistory",
    "FitResult",
    "NonFiniteError",
    "Optimizer",
    "fit",
    "optim",
    "schedules",
    "Spec",
    "SpecError",
    "SymgradError",
    "activation",
    "axis_sum",
    "compile",
    "compose",
    "generate_source",
    "log_softmax",
    "logsumexp",
    "loss",
    "regularizer",
    "softmax",
    "xlogy",
]


def __getattr__(name: str):
    # The built-in kernel modules (and the models built on them) load generated/ lazily,
    # so `import symgrad` stays cheap.
    if name in ("activations", "losses", "regularizers", "models", "newton", "blocked"):
        import importlib

        return importlib.import_module(f"symgrad.{name}")
    if name == "fit_newton":
        from symgrad.newton import fit_newton

        return fit_newton
    raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
