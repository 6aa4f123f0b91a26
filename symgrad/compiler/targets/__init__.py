"""Lowering targets: each emits one function of the table (``emitted``) and names its template.

The loop over the table is here, once: a target module supplies ``emit(derived, fn)``, its
``TEMPLATE``, the ``ANNOTATIONS`` it prints on parameters and ``context(functions, helpers)``
for the template. Adding a target adds a module, never a copy of the table.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from symgrad.compiler.emitted import FunctionPlan, functions_of
from symgrad.compiler.kernel import Derived

#: target name -> module under symgrad.compiler.targets
MODULES = {"numpy": "numpy", "array-api": "array_api", "cupy": "cupy"}
#: lowering targets: the buffer-reusing numpy modules, the Array API modules, fused CuPy kernels
TARGETS = tuple(MODULES)


def target(name: str) -> ModuleType:
    """Return the module of lowering target ``name``."""
    if name not in MODULES:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    return importlib.import_module(f"symgrad.compiler.targets.{MODULES[name]}")


def plan_functions(derived: Derived, name: str = "numpy") -> list[FunctionPlan]:
    """Return the functions one kernel emits on target ``name``, in the table's order."""
    module = target(name)
    return [module.emit(derived, fn) for fn in functions_of(derived)]


def checked_targets() -> tuple[str, ...]:
    """Return the targets safe mode can run here: numpy always; array-api where
    array_api_compat is installed (its functions run on numpy arrays); cupy where a C compiler
    is (its C bodies compiled for the CPU, ``c_on_cpu``). Elsewhere a target's form is the
    same tree printed by another printer, and only the targets checked here decide levels."""
    from symgrad.compiler.targets.c_on_cpu import compiler

    found = ["numpy"]
    if importlib.util.find_spec("array_api_compat") is not None:
        found.append("array-api")
    if compiler() is not None:
        found.append("cupy")
    return tuple(found)
