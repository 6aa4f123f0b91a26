"""Each printer rule gives the exact string expected, and the string evaluates to the right number."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy import special

from symgrad.compiler.primitives import axis_sum, sigmoid, softplus
from symgrad.compiler.printer import SymgradPrinter, unsupported_functions
from symgrad.compiler.rewrite import lower_primitives

x, y = sp.symbols("x y", real=True)


@pytest.mark.parametrize(
    "expr,text",
    [
        (x**2, "(x*x)"),
        (x**-1, "(1/x)"),
        (x**-2, "(1/(x*x))"),
        (1 / (x + y) ** 2, "(1/(x + y)**2)"),
        ((x + y) ** 2, "((x + y)**2)"),
        (axis_sum(x * y), "np.einsum('...i,...i->...', x, y)[..., None]"),
        (sp.sqrt(x), "np.sqrt(x)"),
        (x ** sp.Rational(-1, 2), "(1/np.sqrt(x))"),
        (x**y, "x**y"),
        (sp.Max(x, 0), "np.maximum(0, x)"),
        (sp.Min(x, y, 0), "np.minimum(np.minimum(0, x), y)"),
        (sp.Piecewise((x, x > 0), (y, True)), "np.where(x > 0, x, y)"),
        (
            sp.Piecewise((x, x > 0), (y, x < -1), (0, True)),
            "np.where(x > 0, x, np.where(x < -1, y, 0))",
        ),
        (sp.Abs(x), "np.abs(x)"),
        (sp.acosh(x), "np.arccosh(x)"),
        (axis_sum(x), "np.sum(x, axis=-1, keepdims=True)"),
        (sp.Float(0.1), "0.1"),
        (sp.Rational(1, 3) * x, "(1/3)*x"),
    ],
)
def test_exact_strings(expr, text):
    assert SymgradPrinter().doprint(expr) == text


def test_negative_power_inside_a_product_keeps_precedence():
    text = SymgradPrinter().doprint(y * x**-2)
    assert eval(text, {"np": np, "x": 2.0, "y": 3.0}) == pytest.approx(0.75)


def test_stable_primitives_evaluate_without_warnings():
    printer = SymgradPrinter()
    s = printer.doprint(lower_primitives(sigmoid(x)))
    sp_text = printer.doprint(lower_primitives(softplus(x)))
    z = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        got = eval(s, {"np": np, "x": z})
        soft = eval(sp_text, {"np": np, "x": z})
    np.testing.assert_allclose(got, special.expit(z), rtol=1e-15)
    np.testing.assert_allclose(soft, np.logaddexp(0, z), rtol=1e-15)


def test_unsupported_functions_are_listed_sorted():
    assert unsupported_functions(sp.besselj(0, x) + sp.gamma(x) + sp.exp(x)) == ["besselj", "gamma"]
    assert unsupported_functions(sp.Integral(x, x)) == ["Integral"]


def test_logistic_density_is_printed_with_cosh_unless_exp_is_shared():
    """sigmoid(u) sigmoid(-u) alone becomes 1/(2 + 2 cosh u) (three numpy passes); next to
    sigmoid(u), which needs t = exp(-|u|) anyway, it keeps the t / (1 + t)**2 form."""
    from symgrad.compiler.lower import cosh_densities
    from symgrad.compiler.primitives import cosh_

    density = lower_primitives(sigmoid(x) * sigmoid(-x))
    (alone,) = cosh_densities([density])
    assert alone == sp.S.Half / (1 + cosh_(x))
    shared = [density, lower_primitives(sigmoid(x))]
    assert cosh_densities(shared) == shared
    z = np.array([-1000.0, -100.0, -1.0, 0.0, 2.0, 1000.0])
    text = SymgradPrinter().doprint(alone)
    with np.errstate(over="ignore"):
        got = eval(text, {"np": np, "x": z})
    np.testing.assert_allclose(got, special.expit(z) * special.expit(-z), rtol=4e-16, atol=0)


@pytest.mark.parametrize("op", ["=", "+=", "-=", "*=", "/=", "**=", "//="])
def test_a_long_assignment_wraps_into_a_statement_that_parses(op):
    """Long statements are wrapped in parentheses after their head: an augmented assignment
    keeps ``value0 +=`` outside them (``(value0 += ...)`` does not parse)."""
    import ast

    from symgrad.compiler.emitted import wrap_code

    line = f"    value0 {op} " + " + ".join(f"np.float64(t{i}) * 2" for i in range(20))
    lines = wrap_code(line, 60)
    assert len(lines) > 2 and lines[0] == f"    value0 {op} ("
    ast.parse("\n".join(x[4:] for x in lines))


def test_a_hyper_parameter_term_too_long_for_one_line_compiles():
    """Fuzz seed 15127: a loss whose hyper-parameter-only term is added once per element
    (``value0 += ...``) on a line long enough to wrap; the module did not parse."""
    import symgrad as sg

    yhat, y, a = (sp.Symbol(n, real=True) for n in ("yhat", "y", "a"))
    spec = sg.Spec("wrapped", "loss", (yhat, y), ((a, 0.5),), yhat + sp.sqrt(1 + (a**2 + 1) ** -2))
    k = sg.compile(spec)
    got = k.wrapped(np.array([0.0, 1.0, 2.0]), np.zeros(3))
    np.testing.assert_allclose(got, 1.0 + np.sqrt(1 + 1.25**-2), rtol=1e-14)
