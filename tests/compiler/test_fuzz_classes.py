"""Classes of random specs the independent fuzzer (benchmarks/fuzz_explore.py --contract)
found non-finite where the exact value is a finite double, one case per general rule: each
emitted function is compared with mpmath (safe mode's reference of the plain derivative) at
the point the fuzzer found and at the awkward points 0, +-1e-8, +-30, +-300, +-700."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.compiler import check

X = sp.Symbol("x", real=True)
AWKWARD = (0.0, 1e-8, -1e-8, 30.0, -30.0, 300.0, -300.0, 700.0, -700.0)
SUFFIX = {"value": "", "grad": "_grad", "hess": "_hess"}

#: (name, expression of x, the fuzzer's point): the rule each one needs
CASES = [
    # exp(a) exp(b) -> exp(a + b) in a product (rewrite._merge_exps): fuzz seed 15089's
    # gradient was exp(2 exp(-x)) exp(-x - exp(-x)), inf * 0 at x = -6 (true -6.5e177)
    ("merged_exps", 1 / sp.sinh(sp.exp(-sp.exp(-X))), -6.0),
    # 1/(1 + exp(-x) sigmoid(v)) is sigmoid(x + softplus(-v)) (rewrite._exp_offset): fuzz
    # seed 15025's second derivative was inf at x = -700 (true 1.97e-304)
    ("sigmoid_coefficient", 1 / (1 + sp.exp(-X) / (1 + sp.exp(-2 * sp.exp(-2 * X**2)))), -700.0),
    # ... and with a coefficient (exp(x) + 1) = 1/sigmoid(-x): fuzz seed 17006
    ("sum_coefficient", 1 / ((sp.exp(X) + 1) * sp.exp(-X + sp.erf(1) - 2) + 1), -700.0),
    # ... and with a constant coefficient, the exponent a Piecewise whose branches are
    # multiples of x plus constants (rewrite._multiple: exp(2 Max(1, x) + 4) sigmoid(-w)**3 is
    # a sigmoid product): fuzz seed 17060's second derivative was inf at x = 700 (1.4e-304)
    (
        "constant_coefficient",
        1 / (sp.exp(sp.Piecewise((X + 2, X >= 1), (X, True))) / (1 + sp.log(sp.cosh(2)) ** 2) + 1),
        700.0,
    ),
]


def _exact(ref: check.Reference, form: str, x: float) -> float | None:
    value, _ = check._enough_digits(ref.exact(form), (x,))
    return None if value is None else float(value)


@pytest.mark.parametrize("form", sorted(SUFFIX))
@pytest.mark.parametrize(("name", "expr", "found"), CASES, ids=[c[0] for c in CASES])
def test_finite_and_accurate_where_the_exact_value_is_finite(name, expr, found, form):
    spec = sg.Spec(name, "activation", (X,), (), expr)
    fn = getattr(sg.compile(spec), name + SUFFIX[form])
    ref = check.Reference(spec, math.inf)
    checked = 0
    for x in (found, *AWKWARD):
        exact = _exact(ref, form, x)
        if exact is None or not math.isfinite(exact):
            continue  # (not a finite double: nothing to promise)
        with np.errstate(all="ignore"):
            got = float(fn(np.array([x]))[0])
        assert math.isfinite(got), (name, form, x, got, exact)
        if abs(exact) < check.TINY:
            assert abs(got) < check.TINY, (name, form, x, got, exact)
        else:
            assert got == pytest.approx(exact, rel=1e-12), (name, form, x)
        checked += 1
    assert checked >= 5
