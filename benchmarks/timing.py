"""Check an implementation against the reference, then time it: warm-up, timeit-style repeats."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Relative agreement required with the hand-written numpy result (infinity norm, per array).
RTOL = 1e-8


@dataclass
class Cell:
    """One (workload, implementation) measurement; times are seconds per call."""

    workload: str
    column: str
    status: str = "ok"  # ok | non-finite | mismatch | n/a | error
    note: str = ""
    error: float = 0.0
    number: int = 1
    times: list[float] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Tell whether the cell has times."""
        return bool(self.times)

    @property
    def median(self) -> float:
        """Return the median time per call."""
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        """Return the fastest time per call."""
        return min(self.times)


def as_arrays(result: Any) -> tuple[np.ndarray, ...]:
    """Return copies of a kernel's results as float64 numpy arrays (torch and jax included)."""
    items = result if isinstance(result, tuple | list) else (result,)
    out = []
    for item in items:
        if hasattr(item, "detach"):  # torch
            item = item.detach().cpu().numpy()
        out.append(np.array(item, dtype=np.float64, copy=True))
    return tuple(out)


def compare(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> tuple[str, float, str]:
    """Return (status, worst relative error, note) of ``got`` against the reference ``want``."""
    if len(got) != len(want):
        return "mismatch", math.inf, f"{len(got)} results, expected {len(want)}"
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if a.shape != b.shape and a.size == b.size:
            a = a.reshape(b.shape)
        if a.shape != b.shape:
            return "mismatch", math.inf, f"result {i} has shape {a.shape}, expected {b.shape}"
        if not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            return "non-finite", math.inf, f"{bad} non-finite value(s) in result {i}"
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        diff = float(np.max(np.abs(a - b))) if b.size else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    if worst > RTOL:
        return "mismatch", worst, f"relative error {worst:.1e} > {RTOL:.0e}"
    return "ok", worst, ""


def _time(fn: Callable[[], Any], number: int) -> float:
    """Return seconds per call over ``number`` back-to-back calls, gc off (as timeit does)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if enabled:
            gc.enable()


def calibrate(fn: Callable[[], Any], min_time: float) -> tuple[int, float]:
    """Warm ``fn`` up and return (calls per repeat so a repeat lasts >= min_time, s per call).

    Two single calls first (the faster counts: the first after another kernel can pay for
    its memory), then, for fast kernels, a batch for a steadier estimate.
    """
    per_call = min(_time(fn, 1), _time(fn, 1))
    if per_call < min_time / 4:
        per_call = _time(fn, max(2, int(min_time / 4 / max(per_call, 1e-9))))
    return max(1, math.ceil(min_time / max(per_call, 1e-9))), per_call


def run_repeats(
    kernels: dict[str, Callable[[], Any]],
    numbers: dict[str, int],
    repeat: int,
    budgets: dict[str, float],
) -> dict[str, list[float]]:
    """Time every kernel ``repeat`` times, interleaved round-robin so drift hits them all alike.

    The order rotates each round, so no kernel always runs right after the same other one
    (whose freed memory or busy threads it would inherit). A kernel stops early (after at
    least 3 repeats) once its time exceeds its budget.
    """
    times: dict[str, list[float]] = {name: [] for name in kernels}
    names = list(kernels)
    for round_ in range(repeat):
        shift = round_ % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            spent = sum(times[name]) * numbers[name]
            if len(times[name]) >= min(3, repeat) and spent > budgets[name]:
                continue
            times[name].append(_time(kernels[name], numbers[name]))
    return times


def prime_allocator() -> None:
    """Put glibc malloc in the state of a long-running numpy process, whatever ran before.

    glibc serves large blocks with mmap (fresh pages, page faults on every use) until a block
    of that size has been freed, which raises its threshold up to 32 MiB. Without this the
    same kernel measured 3.0 or 1.9 ms (200,000 elements) depending on whether an earlier
    workload had freed a big array. Freeing one ~30 MiB array sets the threshold for all.
    """
    block = np.ones(30 * 2**20 // 8)
    del block
