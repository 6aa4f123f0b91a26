"""Stage budgets hold in any thread: a spec that outruns them is a BudgetError naming the
stage, whether it is compiled in the main thread or in another (a Dask worker rebuilding a
compiled module, a notebook's background thread)."""

from __future__ import annotations

import threading
import time

import pytest
import sympy as sp

import symgrad as sg
from symgrad.compiler.codegen import plan_spec
from symgrad.compiler.config import CodegenConfig, OutOfTime, budget
from symgrad.errors import BudgetError

TINY = CodegenConfig(derive_s=0.02, rewrite_s=0.02, lower_s=0.02, check_s=0.02)


@sg.activation
def slow(x):
    """A composition whose derivation takes well over TINY's budgets."""
    e = x
    for _ in range(12):
        e = sp.log(1 + sp.exp(sp.tanh(e))) + e / 3
    return e


def _in_thread(fn):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "a budget did not stop the stage"
    return out


@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_spec_over_budget_is_a_budget_error_in_any_thread(where):
    start = time.perf_counter()
    if where == "main":
        with pytest.raises(BudgetError, match="slow") as info:
            plan_spec(slow, config=TINY)
        error = info.value
    else:
        error = _in_thread(lambda: plan_spec(slow, config=TINY)).get("error")
        assert isinstance(error, BudgetError), error
    assert error.stage in ("validate", "derive", "rewrite", "lower", "check")
    assert time.perf_counter() - start < 20


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(100))


def test_thread_budgets_nest_and_leave_nothing_pending():
    def work():
        seen = []
        try:
            with budget("outer", 0.1), budget("inner", 30):
                _spin(5)
        except OutOfTime as exc:
            seen.append(exc.stage)  # the outer one, through the inner
        with budget("quick", 0.2):
            _spin(0.01)
        for _ in range(20):  # a budget that ended (on time or not) must never fire later
            try:
                with budget("edge", 0.005):
                    _spin(0.005)
            except OutOfTime:
                pass
        _spin(0.3)
        return seen

    out = _in_thread(work)
    assert out.get("value") == ["outer"], out
