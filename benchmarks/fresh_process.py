"""A compiled user kernel in a fresh interpreter: loaded from its pickled source, or rebuilt.

Run ``python -m benchmarks.fresh_process [--runs 5]``. Each run starts a new Python (what a
``dask worker``, a spawned ``multiprocessing`` child or a ``GridSearchCV(n_jobs=2)`` child is)
that has numpy and its data ready, and times from the unpickling to the end of the first call
of a Tukey-loss gradient:

* after: unpickle the compiled function; its module arrives as source, checked against its
  hash, and runs with numpy only (sympy is never imported, which each run asserts);
* before: unpickle the spec and compile it with sympy, as a fresh process did when a compiled
  module travelled as a pickle of its specs.

Prints the median of the runs of each (interleaved, so machine load falls on both alike), the
whole interpreter's wall time for context, and after / before. Goal: after <= 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sympy as sp

import symgrad as sg

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 0.3


@sg.loss
def tukey(yhat, y, c=4.685):
    """Tukey's biweight: bounded, so outliers stop pulling."""
    r = yhat - y
    return sp.Piecewise(
        (c**2 / 6 * (1 - (1 - (r / c) ** 2) ** 3), sp.Abs(r) <= c), (c**2 / 6, True)
    )


#: the child: numpy and the data first (a worker has both), then the timed load and call
CHILD = """
import json, pickle, sys, time
import numpy as np
z, y = np.linspace(-9.0, 9.0, 1000), np.zeros(1000)
blob = open(sys.argv[2], "rb").read()
start = time.perf_counter()
if sys.argv[1] == "after":
    grad = pickle.loads(blob)
else:
    import symgrad
    grad = symgrad.compile(pickle.loads(blob)).tukey_grad
grad(z, y)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "sympy": "sympy" in sys.modules}))
"""


def _child(mode: str, blob: Path, folder: Path) -> tuple[float, float, bool]:
    """Run one fresh interpreter; return (load + first call s, whole process s, sympy loaded)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(blob)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    wall = time.perf_counter() - start
    out = json.loads(proc.stdout)
    return out["seconds"], wall, out["sympy"]


def measure(runs: int) -> dict[str, dict[str, float]]:
    """Return, for "after" and "before", the median seconds of ``runs`` fresh interpreters."""
    kernels = sg.compile(tukey)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        blobs = {"after": folder / "kernel.pkl", "before": folder / "spec.pkl"}
        blobs["after"].write_bytes(pickle.dumps(kernels.tukey_grad))
        blobs["before"].write_bytes(pickle.dumps(tukey))
        sizes = {mode: path.stat().st_size for mode, path in blobs.items()}
        times: dict[str, list[tuple[float, float, bool]]] = {"after": [], "before": []}
        for _ in range(runs):
            for mode in times:
                times[mode].append(_child(mode, blobs[mode], folder))
    if any(sympy for _, _, sympy in times["after"]):
        raise AssertionError("a fresh process imported sympy to load a compiled kernel")
    return {
        mode: {
            "load_and_first_call_s": statistics.median(t[0] for t in rows),
            "process_wall_s": statistics.median(t[1] for t in rows),
            "pickle_bytes": sizes[mode],
        }
        for mode, rows in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per mode")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    figures = measure(args.runs)
    after, before = figures["after"], figures["before"]
    print(
        f"fresh interpreters: {args.runs} per mode, median, {sys.platform}, Python "
        f"{sys.version.split()[0]}"
    )
    print("mode    load + first call   whole process   pickle")
    for mode, row in figures.items():
        print(
            f"{mode:<7} {row['load_and_first_call_s']:>15.3f} s {row['process_wall_s']:>13.3f} s"
            f" {row['pickle_bytes']:>8} B"
        )
    ratio = after["load_and_first_call_s"] / before["load_and_first_call_s"]
    verdict = "meets" if after["load_and_first_call_s"] <= GOAL_S else "misses"
    print(f"after / before: {ratio:.3f}; after {verdict} the goal of <= {GOAL_S} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
