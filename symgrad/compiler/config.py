"""Knobs of the compiler in one frozen dataclass, and the time limit every stage runs under.

A spec may be arbitrarily deep; sympy's expand/simplify on it may not finish in any useful
time. Every choice that changes what is emitted is bounded by counting work (distinct nodes,
expansion terms, reference evaluations), never by a clock, so the output is the same on a
fast machine and on a loaded one. Each stage (derive, rewrite, lower, check) also runs under a
wall-clock limit, as a safety net only: a stage that hits it is a BudgetError naming the spec
and the stage, never a hang and never a silent fallback.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CodegenConfig:
    """Budgets (seconds, per spec) and size limits of code generation."""

    derive_s: float = 4.0
    #: ... per this many distinct nodes of the spec (a product of n factors has n terms in its
    #: derivative, each a product sympy sorts: a deep chain's derivatives cost more than linear)
    derive_nodes: int = 50
    #: derive, stabilize and lower at the stable level: a safety net, hit only on a machine
    #: far slower or busier than any built-in needs (a BudgetError, never a fallback: what is
    #: emitted never depends on the machine's speed)
    rewrite_s: float = 60.0
    #: derivatives with more distinct nodes than this skip stabilizing (deterministically)
    #: and are emitted as sympy's plain derivative, which safe mode then verifies
    stabilize_nodes: int = 200
    #: (a safety net too: a BudgetError, never a fallback)
    lower_s: float = 20.0
    #: ... per this many distinct nodes of the derived forms: lowering (CSE, printing) takes
    #: time linear in them, so a deep composition's budget grows with it
    lower_nodes: int = 400
    #: a safety net only: a check that outruns it is a BudgetError, never a silent pass
    check_s: float = 120.0
    #: safe mode's work per spec, in node-evaluations at 50 digits (a form's distinct nodes
    #: times digits / 50 per reference evaluation; a float64 evaluation of the plain formula
    #: counts as one at 50 digits): points met after it is spent stay unchecked, the same
    #: points on any machine
    check_work: float = 300_000.0
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

    In the main thread a SIGALRM timer interrupts the block; in any other thread (a Dask
    worker rebuilding a compiled module, a notebook's background thread) a watchdog timer
    raises into it asynchronously. Either way the exception arrives between Python bytecodes,
    which is where sympy spends its time. Budgets nest: an inner budget never extends the
    outer one's deadline.
    """
    if seconds <= 0:
        yield
        return
    with _alarm(stage, seconds) if _usable() else _watchdog(stage, seconds):
        yield


@contextmanager
def _alarm(stage: str, seconds: float) -> Iterator[None]:
    """The main thread's budget: SIGALRM, nested with any timer already running."""
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


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` to be raised in thread ``thread_id`` (None withdraws a pending one)."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc is None else ctypes.py_object(exc)
    )


@contextmanager
def _watchdog(stage: str, seconds: float) -> Iterator[None]:
    """Another thread's budget: a timer thread raises a class of this budget's own into it.

    The class derives from BaseException, so sympy's ``except Exception`` cannot swallow it,
    and it is this budget's alone, so an outer budget's expiry passes through an inner one.
    A timer that fires as the block ends has its exception withdrawn, never left pending.
    """
    expired = type("BudgetExpired", (BaseException,), {})
    thread_id, lock, state = threading.get_ident(), threading.Lock(), {"done": False}

    def fire() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                _raise_in(thread_id, expired)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except expired:
        raise OutOfTime(stage, seconds) from None
    finally:
        _disarm(timer, lock, state, expired, thread_id)


def _disarm(timer: threading.Timer, lock: Any, state: dict, expired: type, thread_id: int) -> None:
    """Stop a watchdog; its exception, if it fired, may land while we withdraw it: absorb it.
    An outer budget's expiry arriving meanwhile is raised once this one is disarmed."""
    outer = None
    while True:
        try:
            timer.cancel()
            with lock:
                state["done"] = True
                if state.get("fired"):
                    _raise_in(thread_id, None)
            break
        except expired:
            continue
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once disarmed
            outer = exc
    if outer is not None:
        raise outer
