"""Fuzz the compiler with random user-style specs: every accepted spec compiles (safe mode on),
its emitted functions run, and none is less accurate than the plain formula.

The reference is a 50+ digit mpmath evaluation of sympy's own derivative of the unrewritten
expression (symgrad.compiler.check); the bar is the same formula evaluated naively in float64.
Random points are added to safe mode's fixed ones. CI runs ``SYMGRAD_FUZZ_EXAMPLES`` (default
120) specs; ``pytest -m fuzz`` runs the slow mode (default 2000). See docs/fuzzing.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from fuzz_grammar import random_spec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.compiler import check
from symgrad.compiler.spec import Spec, validate
from symgrad.errors import BudgetError, SpecError

X, W, A, Y = sp.symbols("x w a y", real=True)
ROOT = Path(__file__).resolve().parents[2]


class _HypothesisDraw:
    def __init__(self, data) -> None:
        self.data = data

    def choice(self, options):
        return self.data.draw(st.sampled_from(list(options)))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


def _fuzz_one(data) -> None:
    try:
        spec = random_spec(_HypothesisDraw(data))
    except SpecError:
        assume(False)
    start = time.perf_counter()
    try:
        module = sg.compile(spec)  # safe mode: raises SafeModeError on any disagreement
    except BudgetError:  # bounded, never a hang: allowed, but rare (counted in docs)
        return
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"{sp.sstr(spec.expr)} took {elapsed:.1f} s"
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    xs = (*rng.normal(0, 4, 4), *rng.choice([-1, 1], 2) * 10 ** rng.uniform(-3, 2.7, 2))
    fails = check.check_module(spec, module, pts=check.points(spec, xs))
    assert not fails, f"{sp.sstr(spec.expr)}: {next(iter(fails.values()))}"
    arrays = [np.zeros((0,)), np.float64(0.5), np.ones((2, 3))]
    with np.errstate(all="ignore"):  # ones may be outside the spec's domain (log(-1))
        for arr in arrays:  # any shape: empty, 0-d, 2-d
            getattr(module, spec.name + "_grad")(*([arr] * len(spec.inputs)))


_N = int(os.environ.get("SYMGRAD_FUZZ_EXAMPLES", "120"))
_SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@settings(max_examples=_N, **_SETTINGS)
@given(st.data())
def test_random_specs_are_never_worse_than_the_plain_formula(data):
    _fuzz_one(data)


@pytest.mark.fuzz
@settings(
    max_examples=int(os.environ.get("SYMGRAD_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
)
@given(st.data())
def test_fuzz_slow_mode(data):
    _fuzz_one(data)


def _spec(name, role, expr, hyper=()):
    inputs = {"activation": (X,), "regularizer": (W,), "loss": (X, Y)}[role]
    return validate(Spec(name, role, inputs, tuple(hyper), expr))


#: Shrunk examples of every failure class found (issue 12 and this fuzzer), with the extra
#: points where each went wrong.
REGRESSIONS = [
    # Piecewise whose condition holds a Piecewise / an ITE: TypeError casting to bool
    ("pw_in_cond", "activation", sp.Piecewise((X, sp.Piecewise((X, X > 0), (-X, True)) > 1), (2 * X, True)), (), ()),
    ("ite_cond", "activation", sp.Piecewise((X, sp.ITE(X > 0, X < 2, X < -1)), (0, True)), (), ()),
    # hyper-parameters only in a condition: NameError t0 in _hess
    ("hyper_cond", "regularizer", sp.exp(sp.atan(sp.exp(sp.Piecewise((W, A < 1), (-1, True))))), ((A, 0.5),), ()),
    ("hyper_cond2", "activation", sp.Piecewise((X**2, X > A), (sp.exp(X), True)), ((A, 0.5),), ()),
    # NaN (now: overflow) where the plain formula is finite
    ("atan_tanh", "regularizer", sp.log(sp.exp(sp.atan(W)) + 1) + sp.log(sp.tanh(1 / (1 + sp.cosh(W) ** -4)) + 2), (), (-300.0,)),
    # rewrites less accurate than the formula they replaced
    ("tanh_sq", "regularizer", sp.tanh(W**2), (), (5.9, 6.0, 6.1)),
    ("sig_comp", "activation", 1 / ((1 + sp.exp(-X)) * (1 + sp.exp(-1 / (1 + sp.exp(-X))))), (), (6.0, 30.0)),
    ("sqrt_softplus", "activation", sp.sqrt(sp.log(sp.exp(X) + 1) ** 2 + 1), (), (-300.0,)),
    # Min/Max as mask times an overflowing branch: NaN gradient for x >= 710
    ("min_exp", "activation", sp.Min(1, sp.exp(X)), (), (710.0, 750.0)),
    ("min_log", "activation", sp.Min(X, sp.log(X + 1)), (), ()),
    # a sigmoid of a constant lowered to step(2), which constant folding could not evaluate
    ("const_sigmoid", "activation", sp.Rational(3, 4) * sp.sinh(sp.Piecewise((1 / (sp.exp(-1) + 1), X > 1), (sp.Rational(3, 2), True))), (), ()),
    # 1 / b**1.5 overflowing where b**-1.5 underflows
    ("neg_power", "regularizer", sp.Min(sp.Piecewise((1, W > -1), (W, True)) / (1 + sp.exp(-W)) ** sp.Rational(3, 2), W), (), (-700.0,)),
    # generation that took 35-40 s
    ("slow_a", "activation", sp.log(1 - 1 / (1 + 1 / (2 + (1 + sp.exp(-X)) ** -10))), (), ()),
    ("slow_b", "activation", sp.exp(-1 / sp.sqrt(1 + sp.exp(-2 / (sp.log(sp.cosh(X)) ** 2 + 1) ** 2))), (), ()),
    # a stabilizing rule failing inside sympy (polynomial division; a clamp making a
    # comparison non-real): the plain form is emitted instead of an internal error
    ("poly_div", "regularizer", (sp.log(sp.log(sp.exp(W) + 1) ** 2 / 4 + 1) + sp.Rational(9, 4)) * sp.Abs(W + sp.Piecewise((W, W + sp.Rational(3, 4) >= 0), (sp.Rational(3, 2), True))), (), ()),
    ("clamp_sqrt", "activation", sp.Piecewise((sp.Piecewise((sp.cosh(X), A <= X + 1), (sp.Max(1, X), sp.Rational(1, 2) <= sp.sqrt(X)), (0.75, True)), X < -sp.Rational(1, 2)), (0.75 * sp.Abs(sp.log(X)), A >= X), (1, True)), ((A, 0.5),), ()),
    # plain float64 finite (by luck of evaluation order) where the rewritten form was inf/inf
    ("log_sinh", "regularizer", sp.log(sp.sinh(W) ** 2 + 1), (), (700.0,)),
]  # fmt: skip


@pytest.mark.parametrize("case", REGRESSIONS, ids=[c[0] for c in REGRESSIONS])
def test_regressions(case):
    name, role, expr, hyper, extra = case
    spec = _spec(name, role, expr, hyper)
    start = time.perf_counter()
    module = sg.compile(spec)
    assert time.perf_counter() - start < 30
    fails = check.check_module(spec, module, pts=check.points(spec, check.POINTS + extra))
    assert not fails, str(next(iter(fails.values())))
    with np.errstate(all="ignore"):
        getattr(module, f"{name}_grad")(*([np.zeros((2, 0))] * len(spec.inputs)))


def test_check_catches_a_wrong_function():
    """Safe mode's check is not vacuous: a function off by one part in 1e9 fails it."""
    spec = _spec("probe", "activation", sp.tanh(X))
    module = sg.compile(spec)
    good = module.probe_grad

    class Wrong:
        probe = module.probe
        probe_hess = module.probe_hess

        @staticmethod
        def probe_grad(x):
            return good(x) * (1 + 1e-9)

    fails = check.check_module(spec, Wrong)
    assert set(fails) == {"probe_grad"}


@pytest.mark.parametrize(
    "expr",
    [
        sp.Function("f")(X),  # undefined function
        sp.gamma(X),
        sp.zeta(X),
        sp.floor(X) * X,
        sp.Mod(X, 2),
        sp.LambertW(X),
        X + sp.I,
        sp.sqrt(-2) * X,
        X + sp.Symbol("z", real=True),  # free symbol
    ],
    ids=["undefined", "gamma", "zeta", "floor", "mod", "lambertw", "complex", "sqrt_neg", "free"],
)
def test_bad_expressions_are_one_line_spec_errors(expr):
    with pytest.raises(SpecError) as info:
        sg.compile(_spec("bad", "activation", expr))
    assert "\n" not in str(info.value) and "'bad'" in str(info.value)


def test_piecewise_without_true_branch_is_a_spec_error():
    expr = sp.Piecewise((X, X > 0), (-X, X < -1))
    with pytest.raises(SpecError, match="Piecewise"):
        sg.compile(_spec("partial", "activation", expr))


def _chain(depth: int) -> sp.Expr:
    e = X
    steps = [sp.tanh, lambda u: sp.log(1 + sp.exp(u)), lambda u: 1 / (1 + sp.exp(-u)), sp.sin]
    for i in range(depth):
        e = steps[i % 4](e)
    return e


def _poly(depth: int) -> sp.Expr:
    e = X
    for _ in range(depth):
        e = e**2 / 2 + e / 3
    return e


@pytest.mark.parametrize("build", [_chain, _poly], ids=["mixed_chain", "polynomial"])
def test_depth_40_is_bounded(build):
    """Depth 40 generates, safe mode on, within its budgets (before: 254 s for the chain, over
    15 GB for the polynomial; then a BudgetError). tests/compiler/test_depth.py checks the
    derivatives of such compositions against mpmath."""
    start = time.perf_counter()
    spec = _spec(f"deep_{build.__name__[1:]}", "activation", build(40))
    module = sg.compile(spec)
    assert callable(getattr(module, f"deep_{build.__name__[1:]}_hess"))
    assert time.perf_counter() - start < 60


LUCKY = '''\
import sympy as sp
import symgrad as sg


@sg.loss
def lucky(yhat, y, a=0.5):
    """A sum that cancels below its rounding level at yhat = -6 (docs/fuzzing.md)."""
    branch = sp.Piecewise((sp.cosh(sp.log(sp.exp(sp.Min(0.75, a)) + 1)), yhat >= 1), (yhat, True))
    return (-yhat + branch + sp.exp(-(yhat**2))) ** sp.Rational(3, 2)
'''


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SYMGRAD_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "symgrad", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_safe_mode_disagreement_is_exit_123_and_nothing_written(tmp_path):
    (tmp_path / "lucky.py").write_text(LUCKY)
    proc = _cli("generate", "lucky.py", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 123, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: spec 'lucky'"), proc.stderr
    assert "expected" in lines[0] and "please report" in lines[0]
    assert not (tmp_path / "out").exists()
    fast = _cli("generate", "--fast", "lucky.py", "-o", "out", cwd=tmp_path)
    assert fast.returncode == 0, fast.stderr
    assert (tmp_path / "out" / "lucky.py").exists()


def test_unsupported_function_is_exit_2(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import sympy as sp\nimport symgrad as sg\n\n\n@sg.activation\n"
        "def g(x):\n    return sp.gamma(x)\n"
    )
    proc = _cli("generate", "bad.py", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "gamma" in proc.stderr
    assert not (tmp_path / "out").exists()
