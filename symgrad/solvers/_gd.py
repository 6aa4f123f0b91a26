"""Gradient descent with Barzilai-Borwein step lengths, safeguarded by the one line search."""

from __future__ import annotations

from typing import Any

import numpy as np

from symgrad.solvers._line_search import LineSearch, search
from symgrad.solvers._problem import Run, max_abs


def gd(run: Run, x: np.ndarray, max_iter: int, tol: float, **opts: Any) -> tuple[str, str]:
    """Step along ``-g`` by the Barzilai-Borwein length, shortened until Armijo's test holds."""
    settings = LineSearch(**opts)
    run.begin("value_and_grad", x)
    t = 1.0 / max(max_abs(run.g), 1.0)
    for _ in range(max_iter):
        if done := run.done(tol):
            return done
        x, g = run.x, run.g
        found = search(run, "value_and_grad", g, float(g @ g), t, settings)
        if found is None:
            return run.failed_search()
        run.step(*found)
        s, r = run.x - x, run.g - g
        sr = float(s @ r)
        t = float(s @ s) / sr if sr > 0 else 2.0 * found[2]
    return run.out_of_steps(tol, max_iter)
