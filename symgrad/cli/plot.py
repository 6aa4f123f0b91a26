"""The loss-curve PNG of ``symgrad train``, drawn through matplotlib's object API.

``matplotlib.figure.Figure`` renders with its own Agg canvas, so nothing here selects a
backend or imports matplotlib's state machine: a notebook or GUI that runs the CLI in-process
keeps its backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from symgrad.cli.files import write_atomic

#: Curves whose largest and smallest positive values differ by more than this get a log y axis.
LOG_SPAN = 100.0


def log_scale(*curves: np.ndarray) -> bool:
    """Tell whether positive ``curves`` span more than :data:`LOG_SPAN` (orders of magnitude)."""
    values = np.concatenate([c[np.isfinite(c)] for c in curves])
    if values.size == 0 or np.any(values <= 0):
        return False
    return bool(values.max() > LOG_SPAN * values.min())


def plot(history: Any, path: Path, title: str) -> bool:
    """Write a loss-curve PNG; return False when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    rows = history.as_arrays()
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    curves = [rows["loss"]]
    ax.plot(rows["epoch"] + 1, rows["loss"], label="training")
    if np.any(np.isfinite(rows["val_loss"])):
        ax.plot(rows["epoch"] + 1, rows["val_loss"], label="validation")
        curves.append(rows["val_loss"])
    if log_scale(*curves):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda fh: fig.savefig(fh, format="png"))
    return True
