"""Time each numpy operation of an emitted kernel: ``python -m benchmarks.profile_kernels``.

Emitted bodies are one numpy operation per statement, writing into reused buffers; each
statement is timed as the body runs on the benchmark data, and the table shows where the
time goes.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.timing import prime_allocator
from benchmarks.workloads import BY_NAME


@dataclass(frozen=True)
class Kernel:
    """An emitted function to profile, the workload whose data it runs on, and its arguments."""

    name: str
    workload: str
    args: Callable[[dict[str, Any]], dict[str, Any]]

    def function(self) -> Callable[..., Any]:
        """Import and return the emitted function (``symgrad.losses.huber_grad`` etc.)."""
        import importlib

        module, _, attr = self.name.rpartition(".")
        return getattr(importlib.import_module(module), attr)


KERNELS = {
    k.name.rpartition(".")[2]: k
    for k in (
        Kernel("symgrad.activations.sigmoid_grad", "sigmoid_grad", lambda d: {"x": d["x"]}),
        Kernel(
            "symgrad.losses.binary_cross_entropy_with_logits_value_and_grad",
            "bce_logits",
            lambda d: {"yhat": d["z"], "y": d["y"]},
        ),
        Kernel(
            "symgrad.losses.huber_grad",
            "huber_grad",
            lambda d: {"yhat": d["yhat"], "y": d["y"], "delta": d["delta"]},
        ),
        Kernel(
            "symgrad.losses.softmax_cross_entropy_value_and_grad",
            "softmax_ce",
            lambda d: {"yhat": d["z"], "y": d["Y"], "label_smoothing": 0.0},
        ),
        Kernel(
            "symgrad.losses.binary_cross_entropy_with_logits_hess",
            "logreg_hessian",
            lambda d: {"yhat": d["X"] @ d["w"], "y": d["y"]},
        ),
    )
}


def statements(fn: Callable[..., Any]) -> list[str]:
    """Return the body of ``fn`` statement by statement (source text), docstring dropped.

    Emitted bodies are already one numpy operation per statement; ``return x`` becomes
    ``_result = x`` and an ``if`` block stays one statement.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    (func,) = tree.body
    out: list[str] = []
    for stmt in func.body:  # type: ignore[attr-defined]
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # the docstring
        if isinstance(stmt, ast.Return):
            stmt = ast.Assign([ast.Name("_result", ast.Store())], stmt.value, lineno=0)
        out.append(ast.unparse(stmt))
    return out


def profile(kernel: Kernel, size: str, repeat: int = 7) -> tuple[list[tuple[str, float]], float]:
    """Return (statement, median seconds) for each statement, and the whole call's median.

    The statements write into reused buffers, so each repeat runs the whole body in order
    (timing every statement as it goes) from freshly bound arguments.
    """
    prime_allocator()
    fn = kernel.function()
    args = kernel.args(BY_NAME[kernel.workload].make(size))
    texts = statements(fn)
    codes = [compile(text, "<profile>", "exec") for text in texts]
    times: list[list[float]] = [[] for _ in codes]
    with np.errstate(all="ignore"):
        for _ in range(repeat + 1):  # the first pass warms the scratch arrays up
            namespace: dict[str, Any] = dict(fn.__globals__)
            namespace.update({k: v for k, v in _defaults(fn).items() if k not in args})
            namespace.update(args)
            for code, row in zip(codes, times, strict=True):
                start = time.perf_counter()
                exec(code, namespace)  # noqa: S102 - our own emitted code
                row.append(time.perf_counter() - start)
        whole = _median_time(lambda: fn(**args), repeat)
    rows = [
        (text, sorted(row[1:])[len(row[1:]) // 2]) for text, row in zip(texts, times, strict=True)
    ]
    return rows, whole


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """Return ``fn``'s keyword defaults (``out=None``, hyper-parameters)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def format_profile(name: str, rows: list[tuple[str, float]], whole: float) -> str:
    """Return the per-operation table of one kernel."""
    total = math.fsum(t for _, t in rows)
    lines = [f"{name}: {whole * 1e3:.2f} ms per call (sum of operations {total * 1e3:.2f} ms)"]
    for text, t in rows:
        share = 100 * t / total if total else 0.0
        lines.append(f"  {t * 1e3:8.3f} ms {share:5.1f}%  {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the per-operation profile of the chosen kernels."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_kernels", description=__doc__)
    p.add_argument("kernels", nargs="*", help=f"default all: {', '.join(KERNELS)}")
    p.add_argument("--size", choices=("full", "quick", "tiny"), default="full")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    unknown = sorted(set(args.kernels) - set(KERNELS))
    if unknown:
        p.error(f"unknown kernel {', '.join(unknown)}; choose from {', '.join(KERNELS)}")
    for name in args.kernels or KERNELS:
        rows, whole = profile(KERNELS[name], args.size, args.repeat)
        print(format_profile(name, rows, whole), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
