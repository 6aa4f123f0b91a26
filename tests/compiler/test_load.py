"""What is emitted never depends on the machine's speed: every choice between forms counts
work (nodes, points, reference evaluations), and a stage that hits its time limit is a
BudgetError naming the stage, never a silent fallback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sympy as sp

import symgrad as sg
from symgrad.compiler import check
from symgrad.compiler.codegen import plan_spec
from symgrad.compiler.config import CodegenConfig
from symgrad.errors import BudgetError
from symgrad.library.activations import gelu


@sg.loss
def focal_written(yhat, y, gamma=2.0):
    """The focal loss as users write it (docs/sklearn.md)."""
    p = 1 / (1 + sp.exp(-yhat))
    return -(y * (1 - p) ** gamma * sp.log(p) + (1 - y) * p**gamma * sp.log(1 - p))


@sg.activation
def exp_ratio(x):
    """A hand-written exponential ratio (sigmoid squared)."""
    return sp.exp(2 * x) / (sp.exp(x) + 1) ** 2


SPECS = (focal_written, exp_ratio, gelu)


def _source() -> str:
    sp.core.cache.clear_cache()
    return sg.compile(*SPECS).__source__


def test_output_is_the_same_bytes_with_busy_processes_on_the_machine():
    start = time.perf_counter()
    quiet = _source()
    spin = "while True: pass"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        loaded = _source()
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert loaded == quiet
    assert time.perf_counter() - start < 60


def test_a_check_over_its_time_limit_is_an_error_not_a_pass():
    config = CodegenConfig(check_s=1e-3)
    with pytest.raises(BudgetError, match="check") as info:
        plan_spec(gelu, config=config)
    assert info.value.stage == "check"


def test_the_check_budget_counts_work_not_time():
    """Safe mode's budget is a count of reference evaluations: with none left a wrong module
    goes unchecked, with the default one it is caught, the same on any machine."""
    x = sp.Symbol("x", real=True)
    wrong = sg.compile(sg.Spec("exp_ratio", "activation", (x,), (), sp.exp(x)), safe=False)
    assert check.check_module(exp_ratio, wrong, reference=check.Reference(exp_ratio, 0.0)) == {}
    found = check.check_module(exp_ratio, wrong, reference=check.Reference(exp_ratio))
    assert set(found) == {"exp_ratio", "exp_ratio_grad", "exp_ratio_hess"}
    spent = [check.Reference(exp_ratio, 500.0) for _ in range(2)]
    for ref in spent:
        check.check_module(exp_ratio, wrong, reference=ref)
    assert spent[0].work.left == spent[1].work.left < 500.0
