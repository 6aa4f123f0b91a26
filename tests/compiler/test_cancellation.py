"""Textbook cancellations (Hamming, ch. 3) are rewritten before they cancel: 2 sinh,
1 - cos = 2 sin^2(u/2), conjugates of root differences, a common denominator for 1/(x + 1) -
1/x, log1p for a difference of logs. Each is checked against the mpmath reference where the
formula as written loses most of its digits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.compiler import check
from symgrad.compiler.rewrite import stabilize

x = sp.Symbol("x", real=True)

CASES = [
    ("sinh2", sp.exp(x) - sp.exp(-x), [1e-9, 1e-5, -3e-7], 2 * sp.sinh(x)),
    ("exp2", sp.exp(x) - 2 + sp.exp(-x), [1e-9, 1e-5, -3e-7], 4 * sp.sinh(x / 2) ** 2),
    ("one_minus_cos", 1 - sp.cos(x), [1e-9, 1e-5, -3e-7], 2 * sp.sin(x / 2) ** 2),
    (
        "root_diff",
        sp.sqrt(x + 1) - sp.sqrt(x),
        [1e8, 1e12, 3e15],
        1 / (sp.sqrt(x) + sp.sqrt(x + 1)),
    ),
    (
        "frac_diff",
        1 / (x + 1) - 1 / x,
        [1e8, 1e12, -3e15, 1e155],
        sp.Piecewise((-1 / (x**2 * (1 + 1 / x)), sp.Abs(x) > 2**20), (-1 / (x * (x + 1)), True)),
    ),
    ("log_diff", sp.log(x + 1) - sp.log(x), [1e8, 1e12, 3e15], None),
    ("pseudo_huber", 4 * (sp.sqrt(1 + (x / 2) ** 2) - 1), [1e-9, 1e-5, -3e-7], None),
]


@pytest.mark.parametrize(("name", "expr", "xs", "form"), CASES, ids=[c[0] for c in CASES])
def test_cancellations_are_rewritten_and_exact(name, expr, xs, form):
    if form is not None:
        assert stabilize(expr) == form
    spec = sg.Spec(name, "activation", (x,), (), expr)
    k = sg.compile(spec)
    ref = check.Reference(spec)
    got = getattr(k, name)(np.array(xs))
    for v, g in zip(xs, got, strict=True):
        exact, _ = check._enough_digits(ref.exact("value"), (v,))
        assert g == pytest.approx(float(exact), rel=4e-16, abs=0), (name, v)


def test_root_difference_derivative_keeps_its_digits():
    """The stabilizer runs on the derivative too: 1/(2 sqrt(x + 1)) - 1/(2 sqrt(x))."""
    spec = sg.Spec("root_diff", "activation", (x,), (), sp.sqrt(x + 1) - sp.sqrt(x))
    k = sg.compile(spec)
    ref = check.Reference(spec)
    xs = [1e6, 1e10, 1e14]
    got = k.root_diff_grad(np.array(xs))
    for v, g in zip(xs, got, strict=True):
        exact, _ = check._enough_digits(ref.exact("grad"), (v,))
        assert g == pytest.approx(float(exact), rel=1e-15, abs=0)


def test_no_verified_level_is_searched_further():
    """1/x - 1/tan(x): at 1e-4 no level reproduces the plain formula's rounding of the second
    derivative; safe mode once refused the spec (exit 123), then warned and emitted the most
    accurate finite form; now the search (compiler/search.py) finds a series near 0 that
    verifies, so there is no warning and the second derivative is right at 1e-4."""
    spec = sg.Spec("invcot", "activation", (x,), (), 1 / x - 1 / sp.tan(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error", sg.errors.AccuracyWarning)
        k = sg.compile(spec)
    ref = check.Reference(spec)
    exact, _ = check._enough_digits(ref.exact("hess"), (1e-4,))
    assert k.invcot_hess(np.array([1e-4]))[0] == pytest.approx(float(exact), rel=1e-14, abs=0)
    for v in (0.5, 1.5, -2.0):
        exact, _ = check._enough_digits(ref.exact("value"), (v,))
        assert k.invcot(np.array([v]))[0] == pytest.approx(float(exact), rel=1e-14)
