"""Run a Python snippet in fresh interpreters under given PYTHONHASHSEED values: the one way
the tests check that output is byte-identical whatever the hash seed (set and dict order)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def outputs_under_seeds(source: str, seeds: tuple[str, ...] = ("1", "4242")) -> list[str]:
    """Return the stdout of ``python -c source`` run from the repository root with this
    checkout first on the path, once per hash seed (a failing run raises, its stderr shown)."""
    outs = []
    for seed in seeds:
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", source], env=env, capture_output=True, text=True, cwd=ROOT
        )
        assert run.returncode == 0, run.stderr[-2000:]
        outs.append(run.stdout)
    return outs
