"""The implementations compared (table columns), each importable only when its library is."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.workloads import Data

Kernel = Callable[[], tuple]
Factory = Callable[[Data], Kernel]
REFERENCE = "hand numpy"


class Unavailable(Exception):  # noqa: N818 - reads as a cell status
    """A column cannot run a workload; the message says why (shown in the table)."""


@dataclass(frozen=True)
class Column:
    """One implementation: its table name, the module with its factories, what it needs."""

    name: str
    module: str
    requires: tuple[str, ...] = ()
    attr: str = "FACTORIES"
    #: Run in its own interpreter: its thread pools or its heap churn then slow no other column.
    isolate: bool = False

    def missing(self) -> str | None:
        """Return why this column cannot run here (a library is not installed), or None."""
        for name in self.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"{name} not installed"
        return None

    def factories(self) -> dict[str, Factory]:
        """Import the column's module and return its factories by workload name."""
        return getattr(importlib.import_module(self.module), self.attr)


COLUMNS: tuple[Column, ...] = (
    Column(REFERENCE, "benchmarks.baselines"),
    Column("symgrad", "benchmarks.symgrad_impl"),
    Column("symgrad out=", "benchmarks.symgrad_variants", (), "OUT_FACTORIES"),
    Column("symgrad blocked", "benchmarks.symgrad_variants", ("symgrad.blocked",), "BLOCKED"),
    Column("symgrad 2 threads", "benchmarks.symgrad_variants", ("symgrad.blocked",), "THREADED"),
    Column("sympy lambdify", "benchmarks.lambdify_impl", ("sympy",), isolate=True),
    Column("jax", "benchmarks.jax_impl", ("jax",), isolate=True),
    Column("torch", "benchmarks.torch_impl", ("torch",), isolate=True),
    Column("autograd", "benchmarks.autograd_impl", ("autograd",), isolate=True),
)
BY_NAME = {c.name: c for c in COLUMNS}
