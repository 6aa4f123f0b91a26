"""Time generating the whole built-in library, in a fresh interpreter and in this process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """
import json, time
start = time.perf_counter()
from symgrad.compiler.codegen import generate_source
from symgrad.cli.targets import builtin_targets
imported = time.perf_counter()
texts = [generate_source(t.specs, source=t.source, title=t.title) for t in builtin_targets()]
done = time.perf_counter()
print(json.dumps({"import": imported - start, "generate": done - imported,
                  "lines": sum(len(t.splitlines()) for t in texts),
                  "chars": sum(len(t) for t in texts)}))
"""


@dataclass
class GenerationTimes:
    """Seconds to generate the built-in library (medians over runs), and its size."""

    runs: int
    wall: float  # fresh subprocess, interpreter start to exit
    imports: float  # inside it: importing symgrad (and sympy)
    generate: float  # inside it: deriving, lowering and rendering every target
    in_process: float  # in this process, first time
    in_process_again: float  # in this process again (sympy's caches warm)
    lines: int
    chars: int


def child_env() -> dict[str, str]:
    """Return the environment for a child interpreter that imports this checkout first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _fresh() -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
        check=True,
        timeout=600,
    )
    wall = time.perf_counter() - start
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def _in_process() -> float:
    from symgrad.cli.targets import builtin_targets
    from symgrad.compiler.codegen import generate_source

    start = time.perf_counter()
    for target in builtin_targets():
        generate_source(target.specs, source=target.source, title=target.title)
    return time.perf_counter() - start


def time_generation(runs: int = 3) -> GenerationTimes:
    """Return the medians of ``runs`` fresh-interpreter generations and two in-process ones."""
    fresh = [_fresh() for _ in range(max(1, runs))]
    first, again = _in_process(), _in_process()
    return GenerationTimes(
        runs=len(fresh),
        wall=statistics.median(w for w, _ in fresh),
        imports=statistics.median(r["import"] for _, r in fresh),
        generate=statistics.median(r["generate"] for _, r in fresh),
        in_process=first,
        in_process_again=again,
        lines=fresh[0][1]["lines"],
        chars=fresh[0][1]["chars"],
    )


# ---------------------------------------------------------------- deep compositions (issue 12)

DEPTHS = (5, 10, 20, 40, 80)


def _composition(kind: str, depth: int):
    """Return the spec of a deep composition: the mixed chain or the iterated polynomial."""
    import sympy as sp

    from symgrad.compiler.spec import Spec

    x = sp.Symbol("x", real=True)
    e = x
    steps = [sp.tanh, lambda u: sp.log(1 + sp.exp(u)), lambda u: 1 / (1 + sp.exp(-u)), sp.sin]
    for i in range(depth):
        e = steps[i % 4](e) if kind == "chain" else e**2 / 2 + e / 3
    return Spec(f"deep_{kind}", "activation", (x,), (), e)


@dataclass
class DepthRow:
    """One deep composition compiled with safe mode on: seconds, peak traced memory, size."""

    kind: str
    depth: int
    seconds: float
    peak_mb: float
    lines: int


def time_depth(kind: str, depth: int) -> DepthRow:
    """Compile one composition twice from an empty sympy cache: timed, then under tracemalloc."""
    import tracemalloc

    from sympy.core.cache import clear_cache

    import symgrad as sg

    clear_cache()
    start = time.perf_counter()
    module = sg.compile(_composition(kind, depth))
    seconds = time.perf_counter() - start
    clear_cache()
    tracemalloc.start()
    sg.compile(_composition(kind, depth))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return DepthRow(kind, depth, seconds, peak / 2**20, len(module.__source__.splitlines()))


def depth_table(depths=DEPTHS) -> list[str]:
    """Return the Markdown table of ``time_depth`` for both compositions at ``depths``."""
    lines = [
        "| composition | depth | seconds | peak memory (MB) | emitted lines |",
        "|---|---|---|---|---|",
    ]
    from symgrad.errors import BudgetError

    for kind in ("chain", "poly"):
        for depth in depths:
            try:
                row = time_depth(kind, depth)
            except BudgetError as exc:
                lines.append(f"| {kind} | {depth} | BudgetError ({exc.stage}) | | |")
            else:
                cells = f"{row.seconds:.2f} | {row.peak_mb:.0f} | {row.lines}"
                lines.append(f"| {kind} | {depth} | {cells} |")
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", action="store_true", help="time deep compositions (issue 12)")
    args = parser.parse_args()
    if args.depth:
        depth_table()
    else:
        print(time_generation())
