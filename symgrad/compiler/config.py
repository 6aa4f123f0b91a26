"""Knobs of the compiler in one frozen dataclass, and the time budget every stage runs under.

A spec may be arbitrarily deep; sympy's expand/simplify on it may not finish in any useful
time. Each stage (derive, rewrite, lower, check) runs under a wall-clock budget: an optional
optimization that runs out (tidy's expansion) is simply dropped, a stabilizing rewrite that runs
out falls back to the plain derivative, and a stage that cannot finish at all is a BudgetError
naming the spec and the stage, never a hang.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class CodegenConfig:
    """Budgets (seconds, per spec) and size limits of code generation."""

    derive_s: float = 4.0
    #: ... per this many distinct nodes of the spec (a product of n factors has n terms in its
    #: derivative, each a product sympy sorts: a deep chain's derivatives cost more than linear)
    derive_nodes: int = 50
    #: stabilizing a spec that takes longer than this falls back to the raw derivative (a
    #: safety net: every built-in stabilizes in well under a tenth of it, so their output
    #: never depends on the machine's speed)
    rewrite_s: float = 5.0
    #: derivatives with more distinct nodes than this skip stabilizing (deterministically)
    #: and are emitted as sympy's plain derivative, which safe mode then verifies
    stabilize_nodes: int = 200
    lower_s: float = 4.0
    #: ... per this many distinct nodes of the derived forms: lowering (CSE, printing) takes
    #: time linear in them, so a deep composition's budget grows with it
    lower_nodes: int = 400
    check_s: float = 2.0
    #: ``tidy`` only expands an expression whose expansion has at most this many terms
    expand_terms: int = 64
    #: above this many operations, ``tidy`` does not even try expanding
    expand_limit: int = 120


DEFAULT = CodegenConfig()


class OutOfTime(Exception):  # noqa: N818 - a signal, not an error users see
    """Raised inside a stage when its budget runs out."""

    def __init__(self, stage: str, seconds: float) -> None:
        super().__init__(f"{stage} took over {seconds:g} s")
        self.stage = stage
        self.seconds = seconds


def _usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def budget(stage: str, seconds: float) -> Iterator[None]:
    """Raise OutOfTime(stage) inside the block once it has run ``seconds`` (wall clock).

    Uses SIGALRM, so it only applies in the main thread (elsewhere the block runs unbounded);
    budgets nest: an inner budget never extends the outer one's deadline.
    """
    if not _usable() or seconds <= 0:
        yield
        return
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    outer_handler = signal.getsignal(signal.SIGALRM)
    inner = seconds if outer_left == 0 else min(seconds, outer_left)
    fired = {"inner": outer_left == 0 or seconds < outer_left}

    def handler(signum, frame):
        if fired["inner"]:
            raise OutOfTime(stage, seconds)
        if callable(outer_handler):
            outer_handler(signum, frame)

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, inner)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_left:
            left = outer_left - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
