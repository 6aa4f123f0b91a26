"""symgrad: symbolic gradients of ML losses, emitted as readable, stable, vectorized numpy.

Two floors: the compiler (``symgrad.compiler``, needs sympy and jinja2) turns specs into source;
the run-time (``symgrad.losses``, ``symgrad.models``, ``symgrad.optim``, ``symgrad.fit`` …) is
numpy only and never imports the compiler. Names that need the compiler (``symgrad.loss``,
``symgrad.compile`` …) are loaded on first use, so ``import symgrad`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from symgrad import _interrupt

_interrupt.guard()  # the `symgrad` command only: Ctrl-C while importing is one line, exit 130

from symgrad import optim, schedules  # noqa: E402
from symgrad._version import __version__ as __version__  # noqa: E402
from symgrad.errors import NonFiniteError, SpecError, SymgradError  # noqa: E402
from symgrad.fit import FitHistory, FitResult, fit  # noqa: E402
from symgrad.optim import OPTIMIZERS, Optimizer  # noqa: E402

#: public name -> module that defines it, imported on first access
_LAZY = {
    "compile": "symgrad.compiled",
    "generate_source": "symgrad.compiler.codegen",
    "Spec": "symgrad.compiler.spec",
    "activation": "symgrad.compiler.spec",
    "compose": "symgrad.compiler.spec",
    "loss": "symgrad.compiler.spec",
    "regularizer": "symgrad.compiler.spec",
    "axis_sum": "symgrad.compiler.primitives",
    "log_softmax": "symgrad.compiler.primitives",
    "logsumexp": "symgrad.compiler.primitives",
    "softmax": "symgrad.compiler.primitives",
    "xlogy": "symgrad.compiler.primitives",
    "fit_newton": "symgrad.newton",
}
#: run-time submodules reachable as attributes (``symgrad.losses``) without an explicit import
_SUBMODULES = ("activations", "losses", "regularizers", "models", "newton", "blocked", "tree")

__all__ = [
    "OPTIMIZERS",
    "FitHistory",
    "FitResult",
    "NonFiniteError",
    "Optimizer",
    "SpecError",
    "SymgradError",
    "fit",
    "optim",
    "schedules",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"symgrad.{name}")
    raise AttributeError(f"module 'symgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
