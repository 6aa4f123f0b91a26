"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--repeat N] [--only NAME]``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.codesize import CHAINS, measure_chain
from benchmarks.columns import COLUMNS, REFERENCE
from benchmarks.envinfo import environment
from benchmarks.generation import time_generation
from benchmarks.report import (
    Results,
    Row,
    bar_chart,
    comparison_report,
    markdown_report,
    text_report,
)
from benchmarks.suite import OMP_WAIT_POLICY, run_isolated, run_workload
from benchmarks.workloads import SIZES, WORKLOADS

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
SECTIONS = ("generation", "codesize")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How hard to measure at one size."""

    repeat: int
    min_time: float  # seconds per timed repeat (calls are batched up to it)
    budget: float  # seconds of timing per implementation before repeats are cut (min 3)
    depths: tuple[int, ...]
    depth_timeout: float
    generation_runs: int


SETTINGS = {
    "full": Settings(7, 0.05, 8.0, (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32), 20.0, 3),
    "quick": Settings(3, 0.01, 1.0, (1, 2, 3, 4), 3.0, 1),
    "tiny": Settings(1, 0.0, 0.5, (1, 2), 30.0, 1),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    names = [w.name for w in WORKLOADS] + list(SECTIONS)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Time symgrad's emitted kernels against hand-written numpy, sympy.lambdify "
        "and (when installed) jax, torch and autograd; write results.md and results.png.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, 3 repeats (< 30 s)")
    p.add_argument("--size", choices=SIZES, help="data sizes (default full; --quick = quick)")
    p.add_argument("--repeat", type=int, help="timed repeats per implementation (default 7)")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(names)}",
    )
    p.add_argument(
        "--columns",
        metavar="NAMES",
        help="comma-separated implementations to run besides hand numpy "
        f"({', '.join(c.name for c in COLUMNS[1:])})",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (%(default)s)")
    p.add_argument(
        "--compare",
        type=Path,
        metavar="JSON",
        help="an earlier results.json: also print each ratio then and now",
    )
    p.add_argument("--depth-timeout", type=float, help="seconds allowed per chain depth")
    p.add_argument(
        "--blas-threads",
        type=int,
        help="limit numpy's BLAS threads for the in-process columns (needs threadpoolctl; "
        "default: the library's own, 2 on this machine)",
    )
    args = p.parse_args(argv)
    selected = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = sorted(set(selected) - set(names))
    if unknown:
        p.error(f"unknown --only {', '.join(unknown)}; choose from {', '.join(names)}")
    args.only = selected or names
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.blas_threads is not None and args.blas_threads < 1:
        p.error("--blas-threads must be at least 1")
    args.size = args.size or ("quick" if args.quick else "full")
    if args.compare is not None:
        try:  # read now: this run may overwrite the file
            args.compare = json.loads(args.compare.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            p.error(f"--compare: cannot read {args.compare}: {exc}")
    if args.columns is not None:
        wanted = {c.strip() for c in args.columns.split(",") if c.strip()}
        bad = sorted(wanted - {c.name for c in COLUMNS})
        if bad:
            p.error(f"unknown --columns {', '.join(bad)}")
        args.columns = [c for c in COLUMNS if c.name == REFERENCE or c.name in wanted]
    else:
        args.columns = list(COLUMNS)
    return args


@contextlib.contextmanager
def blas_limit(threads: int | None) -> Iterator[None]:
    """Limit numpy's BLAS thread pool to ``threads`` inside the block (no limit for None)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        yield


def log(message: str) -> None:
    """Print progress to stderr."""
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> Results:
    """Run the selected sections and workloads and return the results."""
    settings = SETTINGS[args.size]
    repeat = args.repeat or settings.repeat
    results = Results(size=args.size, repeat=repeat)
    start = time.perf_counter()
    if "generation" in args.only:
        log("generating the built-in library ...")
        results.generation = time_generation(settings.generation_runs)
    if "codesize" in args.only:
        timeout = args.depth_timeout or settings.depth_timeout
        for kind in CHAINS:
            log(f"code size of the {kind} chain, depths {list(settings.depths)} ...")
            results.chains.append(measure_chain(kind, list(settings.depths), timeout))
    workloads = [w for w in WORKLOADS if w.name in args.only]
    timing = (repeat, settings.min_time, settings.budget)
    local = [c for c in args.columns if not c.isolate]
    with blas_limit(args.blas_threads):
        for workload in workloads:
            log(f"{workload.name} ({workload.shape(args.size)}) ...")
            cells = run_workload(workload, args.size, *timing, local, log=log)
            shape = workload.shape(args.size)
            results.rows.append(Row(workload.name, workload.title, shape, cells))
    for column in (c for c in args.columns if c.isolate):
        log(f"{column.name}, in its own interpreter ...")
        isolated = run_isolated(column, workloads, args.size, *timing, log=log)
        for row in results.rows:
            row.cells.append(isolated[row.name])
    results.environment = environment()
    results.environment["settings"] = [
        f"{len(workloads)} workloads at {args.size} sizes; up to {repeat} repeats of >= "
        f"{settings.min_time:g} s, at most ~{settings.budget:g} s of timing per implementation",
        "numpy BLAS threads: "
        + (str(args.blas_threads) if args.blas_threads else "library default"),
        "sympy lambdify, jax, torch, autograd: each in its own interpreter, OMP_WAIT_POLICY="
        + os.environ.get("OMP_WAIT_POLICY", OMP_WAIT_POLICY),
    ]
    results.elapsed = time.perf_counter() - start
    return results


def write(results: Results, out: Path) -> list[Path]:
    """Write results.md, results.json and (with matplotlib) results.png; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.md", out / "results.json"]
    written[0].write_text(markdown_report(results), encoding="utf-8")
    written[1].write_text(json.dumps(dataclasses.asdict(results), indent=1, default=str) + "\n")
    png = out / "results.png"
    if results.rows and bar_chart(results, png):
        written.append(png)
    elif png.exists():
        png.unlink()  # never leave a chart from an earlier run beside these results
    return written


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table, write the files."""
    args = parse_args(argv)
    results = run(args)
    print(text_report(results))
    if args.compare is not None:
        print("\n" + comparison_report(results, args.compare))
    for path in write(results, args.out):
        print(f"wrote {path}")
    if not any(p.suffix == ".png" for p in args.out.iterdir()) and results.rows:
        print("(no results.png: matplotlib is not installed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
