"""float32 against float64: the element-wise kernels and hand-written numpy in both dtypes.

Run ``python -m benchmarks.dtypes [--size N] [--repeat R]``. Prints, per workload and dtype,
the median time of symgrad (a fresh result), symgrad with ``out=`` and the hand-written numpy
of ``benchmarks/baselines.py`` run on arrays of that dtype, then the ratios the float32 goal
asks for: symgrad float32 / float64 (goal <= 0.6) and symgrad float32 / hand float32 (goal <= 1).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks import baselines

DTYPES = (np.float64, np.float32)


def _interleaved(fns: dict, repeat: int, stat=statistics.median) -> dict:
    """Return each callable's median seconds, timing them round-robin (one call of each per
    round) so that load from other processes falls on every column alike."""
    times: dict = {key: [] for key in fns}
    for fn in fns.values():
        fn()  # warm-up: buffers, page faults
    for _ in range(repeat):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: stat(t) for key, t in times.items()}


def _workloads(n: int, dtype) -> dict[str, dict[str, Callable[[], object]]]:
    """Return per workload the three callables (symgrad, symgrad out=, hand numpy)."""
    import symgrad.activations as A
    import symgrad.losses as L

    rng = np.random.default_rng(0)
    x = (rng.normal(size=n) * 3).astype(dtype)
    y = (rng.uniform(size=n) > 0.5).astype(dtype)
    t = (rng.normal(size=n) * 3).astype(dtype)
    out, b1, b2 = (np.empty(n, dtype) for _ in range(3))
    return {
        "sigmoid_grad": {
            "symgrad": lambda: A.sigmoid_grad(x),
            "symgrad out=": lambda: A.sigmoid_grad(x, out=out),
            "hand numpy": lambda: baselines.sigmoid_grad(x, out),
        },
        "bce_logits": {
            "symgrad": lambda: L.binary_cross_entropy_with_logits_value_and_grad(x, y),
            "symgrad out=": lambda: L.binary_cross_entropy_with_logits_value_and_grad(
                x, y, out=out
            ),
            "hand numpy": lambda: baselines.bce_logits(x, y, b1, b2, out),
        },
        "huber_grad": {
            "symgrad": lambda: L.huber_grad(x, t),
            "symgrad out=": lambda: L.huber_grad(x, t, out=out),
            "hand numpy": lambda: baselines.huber_grad(x, t, 1.0, out),
        },
    }


def measure(n: int, repeat: int, stat=statistics.median) -> dict[tuple[str, str, str], float]:
    """Return seconds (median, or ``stat`` of the calls) keyed by (workload, column, dtype)."""
    fns = {}
    for dtype in DTYPES:
        for work, columns in _workloads(n, dtype).items():
            for column, fn in columns.items():
                fns[work, column, np.dtype(dtype).name] = fn
    return _interleaved(fns, repeat, stat)


def table(times: dict[tuple[str, str, str], float]) -> str:
    """Return the measurements as a markdown table with the goal ratios."""
    rows = [
        "| workload | column | float64 ms | float32 ms | f32/f64 | f32 / hand f32 |",
        "|---|---|---|---|---|---|",
    ]
    works = dict.fromkeys(w for w, _, _ in times)
    for work in works:
        hand32 = times[work, "hand numpy", "float32"]
        for column in ("symgrad", "symgrad out=", "hand numpy"):
            t64, t32 = times[work, column, "float64"], times[work, column, "float32"]
            rows.append(
                f"| {work} | {column} | {t64 * 1e3:.2f} | {t32 * 1e3:.2f} | "
                f"{t32 / t64:.2f} | {t32 / hand32:.2f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the float32/float64 table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dtypes", description=__doc__)
    parser.add_argument("--size", type=int, default=2_000_000, help="elements (default 2e6)")
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per cell")
    parser.add_argument(
        "--min", action="store_true", help="report the fastest call (steadier on a busy machine)"
    )
    args = parser.parse_args(argv)
    stat = min if args.min else statistics.median
    print(table(measure(args.size, args.repeat, stat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
