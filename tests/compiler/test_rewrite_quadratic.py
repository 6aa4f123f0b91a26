"""Positive quadratics a + b u**2 (Cauchy, pseudo-Huber, 1/sqrt(1 + x**2)): their value and
derivatives stay exact near 0 and finite, within a few ulps, where u**2 would overflow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import log1p

import symgrad as sg
from symgrad.compiler import check, rewrite

x = sp.Symbol("x", real=True)

AWKWARD = [0.0, 1e-8, -1e-8, 0.5, -3.0, 30.0, -30.0, 300.0, -300.0, 700.0, -700.0]
AWKWARD += [1e154, -1e154, 3e157, 1e200, -1e300, 1e300, 1.7e308]

CASES = [
    ("cauchy", 2 * sp.log(1 + (x / 2) ** 2)),
    ("log_offset", sp.log(3 + x**2 / 5)),
    ("steep", 2 * x / (1 + 3 * x**2)),
    ("pseudo_huber", 4 * (sp.sqrt(1 + (x / 2) ** 2) - 1)),
    ("inv_root", 1 / sp.sqrt(1 + x**2)),
    ("ratio", x / (1 + x**2)),
    ("merged", (x**2 + 2) ** sp.Rational(-3, 2)),
]


def _ulps(got: float, exact: float) -> float:
    """Return the distance from ``got`` to ``exact`` in units of float64 spacing at ``exact``
    (the smallest subnormal where ``exact`` underflows)."""
    return abs(got - exact) / max(math.ulp(exact), 5e-324)


@pytest.mark.parametrize(("name", "expr"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("form", ["value", "grad", "hess"])
def test_quadratic_forms_are_exact_everywhere(name, expr, form):
    spec = sg.Spec(name, "activation", (x,), (), expr)
    k = sg.compile(spec)
    ref = check.Reference(spec)
    fn = getattr(k, name + {"value": "", "grad": "_grad", "hess": "_hess"}[form])
    for v in AWKWARD:
        exact, _ = check._enough_digits(ref.exact(form), (v,))
        if exact is None:  # an exact zero (4 (sqrt(1) - 1) at 0): sympy's evaluation
            exact = sp.N(ref.forms[form].subs(x, sp.Float(v, 30)), 40)
        want = float(exact)
        if not math.isfinite(want):
            continue
        with np.errstate(all="raise", under="ignore"):
            g = fn(np.array([v]))[0]
        assert math.isfinite(g), (name, form, v)
        assert _ulps(float(g), want) <= 8, (name, form, v, g, want)


def test_quadratic_is_recognised_in_either_order_and_scale():
    assert rewrite._quadratic(x**2 / 4 + 1) == (1, x, sp.S.Half)
    assert rewrite._quadratic(4 + x**2) == (4, x, sp.S.Half)
    assert rewrite._quadratic(1 - x**2) is None
    assert rewrite._quadratic(x**2 + x) is None
    assert rewrite._quadratic(1 + x**3) is None


def test_log_of_quadratic_is_log1p_near_zero_and_split_in_the_tail():
    m, t, _ = rewrite._scales(x / 2)
    assert rewrite._quadratic_log(sp.log(1 + x**2 / 4)) == 2 * sp.log(m) + log1p(t**2)
    assert rewrite._quadratic_log(sp.log(sp.Rational(1, 2) + x**2)) is None  # log(a) < 0


def test_common_denominator_removes_the_cancellation():
    assert rewrite._common_denominator(1 - x**2 / (x**2 + 4)) == 4 / (x**2 + 4)
    assert rewrite._common_denominator(1 - x / (x**2 + 4)) is None  # nothing simpler


def test_scaled_products_keep_one_power_of_the_scale():
    """x**3 / (1 + x**2)**2 is one power of max(|x|, 1), never its cube over its fourth."""
    big, t, rho = rewrite._scales_of(x, sp.S.One)
    assert rewrite._quadratic_product(x**3 / (1 + x**2) ** 2) == rho**3 * (1 + t**2) ** -2 / big
