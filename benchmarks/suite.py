"""Run the workloads: build each column's kernel, verify it against hand numpy, then time it.

hand numpy and the symgrad columns share this process and are timed interleaved; jax, torch,
autograd and sympy.lambdify each run in a child interpreter (``benchmarks.worker``): the
frameworks' thread pools spin-wait after work and would slow whatever runs next on a 2-core
machine, and lambdify's hundreds of column temporaries left the heap in a state where
symgrad's softmax row took 2.5x longer until they stopped. Children get
``OMP_WAIT_POLICY=PASSIVE`` unless it is set: with libgomp's default active wait, torch on
this shared 2-core machine measured 30 ms instead of 1 ms for the logistic-regression row
whenever another process kept the second core busy.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from benchmarks.columns import BY_NAME, REFERENCE, Column, Unavailable
from benchmarks.generation import ROOT, child_env
from benchmarks.timing import Cell, as_arrays, calibrate, compare, prime_allocator, run_repeats
from benchmarks.workloads import Workload

Log = Callable[[str], None]
OMP_WAIT_POLICY = "PASSIVE"


def stderr_log(message: str) -> None:
    """Print progress to stderr."""
    print(message, file=sys.stderr, flush=True)


def _build(column: Column, workload: Workload, data: dict[str, Any]) -> tuple[Any, Cell]:
    """Return (kernel or None, cell carrying why there is none)."""
    cell = Cell(workload.name, column.name)
    missing = column.missing()
    if missing:
        cell.status, cell.note = "n/a", missing
        return None, cell
    try:
        factory = column.factories().get(workload.name)
        if factory is None:
            raise Unavailable("not implemented for this workload")
        return factory(data), cell
    except Unavailable as exc:
        cell.status, cell.note = "n/a", str(exc)
    except Exception as exc:  # a column failing to build must not stop the suite
        cell.status, cell.note = "error", f"{type(exc).__name__}: {exc}"
    return None, cell


def run_workload(
    workload: Workload,
    size: str,
    repeat: int,
    min_time: float,
    budget: float,
    columns: Sequence[Column],
    *,
    log: Log = stderr_log,
    time_reference: bool = True,
) -> list[Cell]:
    """Return one cell per column (hand numpy first) for ``workload`` at ``size``, in-process."""
    prime_allocator()
    data = workload.make(size)
    cells: list[Cell] = []
    kernels: dict[str, Callable[[], Any]] = {}
    reference: tuple[np.ndarray, ...] | None = None
    with np.errstate(all="ignore"):  # the plain lambdified formulas may overflow; checked below
        for column in [BY_NAME[REFERENCE], *(c for c in columns if c.name != REFERENCE)]:
            kernel, cell = _build(column, workload, data)
            if column.name != REFERENCE or time_reference:
                cells.append(cell)
            if kernel is None:
                continue
            try:
                got = as_arrays(kernel())
            except Exception as exc:  # noqa: BLE001 - reported in the table
                cell.status, cell.note = "error", f"{type(exc).__name__}: {exc}"
                continue
            if column.name == REFERENCE:
                reference = got
                if not time_reference:
                    continue
            elif reference is None:
                cell.status, cell.note = "error", "no reference result"
                continue
            else:
                cell.status, cell.error, cell.note = compare(got, reference)
            kernels[column.name] = kernel
        numbers = {}
        for name, kernel in kernels.items():
            numbers[name], per_call = calibrate(kernel, min_time)
            log(f"  {workload.name:15s} {name:18s} ~{per_call * 1e3:10.3f} ms/call")
        times = run_repeats(kernels, numbers, repeat, dict.fromkeys(kernels, budget))
    for cell in cells:
        if cell.column in times:
            cell.times, cell.number = times[cell.column], numbers[cell.column]
    del kernels, data
    gc.collect()
    return cells


def run_isolated(
    column: Column,
    workloads: Sequence[Workload],
    size: str,
    repeat: int,
    min_time: float,
    budget: float,
    *,
    log: Log = stderr_log,
    timeout: float = 900.0,
) -> dict[str, Cell]:
    """Run ``column`` on ``workloads`` in a child interpreter; return its cells by workload."""
    names = [w.name for w in workloads]
    missing = column.missing()
    if missing:
        return {n: Cell(n, column.name, "n/a", missing) for n in names}
    cmd = [sys.executable, "-m", "benchmarks.worker", column.name, size, str(repeat)]
    cmd += [repr(min_time), repr(budget), *names]
    env = child_env()
    env.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    err_tail: list[str] = []

    def relay() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            err_tail[:] = [*err_tail[-20:], line.rstrip()]
            if line.startswith("  "):
                log(line.rstrip())

    relay_thread = threading.Thread(target=relay, daemon=True)
    relay_thread.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    out = proc.stdout.read()  # type: ignore[union-attr]
    proc.wait()
    watchdog.cancel()
    relay_thread.join(timeout=5)
    if timed_out.is_set():
        err_tail.append(f"killed after {timeout:g} s")
    cells = {}
    for line in out.splitlines():
        cell = Cell(**json.loads(line))
        cells[cell.workload] = cell
    why = err_tail[-1] if err_tail else f"worker exited with {proc.returncode}"
    for name in names:
        cells.setdefault(name, Cell(name, column.name, "error", f"worker: {why}"))
    return cells


def worker_main(argv: list[str]) -> None:
    """Run one isolated column: ``COLUMN SIZE REPEAT MIN_TIME BUDGET WORKLOAD...``."""
    from benchmarks.workloads import BY_NAME as WORKLOADS

    column, size, repeat, min_time, budget, *names = argv
    for name in names:
        (cell,) = run_workload(
            WORKLOADS[name],
            size,
            int(repeat),
            float(min_time),
            float(budget),
            [BY_NAME[column]],
            time_reference=False,
        )
        print(json.dumps(asdict(cell)), flush=True)
