"""Loading a numeric CSV: ``symgrad.data.load_csv`` against ``pandas.read_csv`` (and the stdlib
fallback), on the same file, printed side by side as medians.

``load_csv`` reads through pandas and then checks the parsed frame (every value finite, the
header's width) and splits off the label, so its time is pandas' plus those checks. Goal: at
most 1.5x pandas' time on 200,000 x 20 (issue 22)::

    python -m benchmarks.csv_load                     # 200,000 rows x 20 columns, 5 repeats
    python -m benchmarks.csv_load --rows 20000 --stdlib
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

GOAL = 1.5


def write_csv(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    """Write ``rows`` x ``cols`` random floats (17 significant digits) with a header row."""
    X = np.random.default_rng(seed).normal(size=(rows, cols))
    header = ",".join([*(f"x{i}" for i in range(cols - 1)), "y"])
    np.savetxt(path, X, delimiter=",", fmt="%.17g", header=header, comments="")


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Return the median wall time of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rows: int, cols: int, repeat: int, stdlib: bool = False) -> dict[str, float]:
    """Return the median seconds of each reader on one generated file, and the ratio."""
    import pandas as pd

    from symgrad.data import load_csv, read_csv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        write_csv(path, rows, cols)
        ours = load_csv(path)
        ref = pd.read_csv(path).to_numpy()
        assert np.array_equal(np.c_[ours.X, ours.y], ref)  # the same numbers, bit for bit
        out = {
            "pandas.read_csv": median_seconds(lambda: pd.read_csv(path), repeat),
            "symgrad load_csv": median_seconds(lambda: load_csv(path), repeat),
        }
        if stdlib:
            out["stdlib fallback"] = median_seconds(lambda: read_csv(path, fast=False), repeat)
    out["ratio"] = out["symgrad load_csv"] / out["pandas.read_csv"]
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the medians and whether the ratio meets the goal; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stdlib", action="store_true", help="also time the stdlib fallback")
    args = parser.parse_args(argv)
    result = measure(args.rows, args.cols, args.repeat, args.stdlib)
    print(f"{args.rows} x {args.cols} CSV, median of {args.repeat}:")
    for name, seconds in result.items():
        if name != "ratio":
            print(f"  {name:<18} {seconds:8.3f} s")
    verdict = "meets" if result["ratio"] <= GOAL else "misses"
    print(f"  ratio              {result['ratio']:8.2f}x pandas ({verdict} the {GOAL}x goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
