"""A sigmoid pair P sigmoid(u) + Q sigmoid(-u) and the passes it costs: the lowering rule
(rewrite._sigmoid_sums), the quotient and sign it shares (lower.share_quotients,
lower.signs_from_steps), the in-place spellings (a float step, step(-u) as u <= 0, a multiply by
a scalar that is 1 skipped), and what they give on the boosting kernel: exact tails, 11 passes."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sympy as sp

import symgrad.losses as L
from symgrad.compiler import rewrite
from symgrad.compiler.inplace import InplaceBuilder, allocate, render
from symgrad.compiler.lower import share_quotients, signs_from_steps
from symgrad.compiler.primitives import ordered_sum, sigmoid, step
from symgrad.compiler.printer import SymgradPrinter

u = sp.Symbol("u", real=True)
y = sp.Symbol("y", real=True)
c = sp.Symbol("c", real=True)
T = sp.exp(-sp.Abs(u))


def _pair(q, d, v):
    k = step(v)
    return ordered_sum(q + d * k, d * (1 - 2 * k) * T / (1 + T))


PAIRS = [
    # BCE with logits: Q = -y is exact, D = 1
    ((1 - y) * sigmoid(u) - y * sigmoid(-u), _pair(-y, 1, u)),
    # the exact coefficient is on sigmoid(u): the pair is taken in -u
    (-y * sigmoid(u) + (1 - y) * sigmoid(-u), _pair(-y, 1, -u)),
    # a factor common to both sides (1/n) stays outside; D = 2
    (c * (2 - y) * sigmoid(u) - c * y * sigmoid(-u), c * _pair(-y, 2, u)),
    # other terms of the sum are kept
    (3 + (1 - y) * sigmoid(u) - y * sigmoid(-u), 3 + _pair(-y, 1, u)),
]
KEPT = [
    y * sigmoid(u) + y**2 * sigmoid(-u),  # D = y - y**2 is not a number
    (2 - y) * sigmoid(u) + (1 - y) * sigmoid(-u),  # neither side is exact
    (1 - y) * sigmoid(u),  # no pair
]


@pytest.mark.parametrize(("before", "after"), PAIRS)
def test_pair_lowers_to_an_arithmetic_select(before, after):
    assert rewrite._sigmoid_sums(before) == after


@pytest.mark.parametrize("before", KEPT)
def test_other_sums_are_left_alone(before):
    assert rewrite._sigmoid_sums(before) == before


@pytest.mark.parametrize(("before", "_"), PAIRS)
@pytest.mark.parametrize("at", [-30.0, -0.7, 0.0, 0.4, 3.0, 30.0])
def test_pair_keeps_the_value(before, _, at):
    lowered = rewrite.lower_primitives(before)
    env = {u: at, y: 0.3, c: 1.7}
    plain = lambda e: float(e.xreplace(env).rewrite(sp.exp).evalf(30))  # noqa: E731
    exact = plain(before)
    got = float(
        lowered.replace(ordered_sum, sp.Add)
        .replace(step, lambda v: sp.S.One if float(v.xreplace(env)) >= 0 else sp.S.Zero)
        .xreplace(env)
        .evalf(30)
    )
    assert got == pytest.approx(exact, rel=1e-14, abs=1e-300)


def test_the_ordered_level_keeps_the_pair_as_written():
    e = (1 - y) * sigmoid(u) - y * sigmoid(-u)
    assert not rewrite.lower_primitives(e, distribute=False).has(ordered_sum)


def _symbols(n: int) -> list[sp.Symbol]:
    return [sp.Symbol(f"t{i}", real=True) for i in range(n)]


def test_a_quotient_two_products_divide_by_gets_its_own_temporary():
    t0, t1, t2 = _symbols(3)
    s = sp.Symbol("s", real=True)
    replacements = [(t0, sp.exp(-sp.Abs(u))), (t1, t0 + 1)]
    got = share_quotients(replacements, [s * t0 / t1, t0 / t1**2])
    assert got == ([(t0, sp.exp(-sp.Abs(u))), (t1, t0 + 1), (t2, t0 / t1)], [s * t2, t2 / t1])


def test_a_quotient_one_product_uses_is_left_alone():
    t0, t1 = _symbols(2)
    replacements = [(t0, sp.exp(-sp.Abs(u))), (t1, t0 + 1)]
    outputs = [t0 / t1**2, t1 * u]
    assert share_quotients(replacements, outputs) == (replacements, outputs)


def test_minus_abs_takes_the_sign_computed_anyway():
    sign = 1 - 2 * step(u)
    assert signs_from_steps([sp.exp(-sp.Abs(u)), sign]) == [sp.exp(u * sign), sign]
    assert signs_from_steps([sp.exp(-2 * sp.Abs(u)), sign]) == [sp.exp(2 * u * sign), sign]
    assert signs_from_steps([sp.exp(-sp.Abs(u))]) == [sp.exp(-sp.Abs(u))]  # no sign to share


def _body(expr: sp.Expr, scalars: frozenset = frozenset(), defaults: dict | None = None):
    printer = SymgradPrinter(scalars=scalars)
    builder = InplaceBuilder(printer, frozenset({"u"}), defaults)
    result = builder.value(expr)
    names, _ = allocate(builder.program, [result])
    return render(builder.program, names, {})


def test_step_is_compared_into_a_float_and_a_negated_one_without_negating():
    assert _body(step(u)) == ["np.greater_equal(u, 0, out=b0)"]
    assert _body(step(-u)) == ["np.less_equal(u, 0, out=b0)"]


def test_a_multiply_by_a_scalar_that_is_one_by_default_is_skipped_in_place():
    a = sp.Symbol("a", real=True)
    body = _body(a * sp.exp(u), frozenset({a}), {a: 1.0})
    assert body == ["np.exp(u, out=b0)", "if a != 1:", "    np.multiply(b0, a, out=b0)"]
    # at another default the multiply always runs
    body = _body(a * sp.exp(u), frozenset({a}), {a: 2.0})
    assert body == ["np.exp(u, out=b0)", "np.multiply(b0, a, out=b0)"]


def _ufunc_lines(fn) -> list[str]:
    """Return the ufunc statements ``fn`` always runs (not those under an ``if``)."""
    lines = inspect.getsource(fn).split('"""')[-1].splitlines()
    out, guarded = [], False
    for line in lines:
        text = line.strip()
        if text.startswith("if "):
            guarded = True
            continue
        if guarded and line.startswith(" " * 8):
            continue
        guarded = False
        if text.startswith("np."):
            out.append(text)
    return out


def test_the_boosting_kernel_takes_eleven_passes():
    lines = _ufunc_lines(L.binary_cross_entropy_with_logits_grad_hess)
    assert len(lines) <= 11, lines
    assert not any("np.negative(yhat" in line or "np.abs(" in line for line in lines)


@pytest.mark.parametrize("z", [30.0, 100.0, 700.0, 745.0])
def test_the_boosting_gradient_keeps_the_tail_for_hard_labels(z):
    tail = np.exp(-z) / (1 + np.exp(-z))  # sigmoid(-z), to the last bit
    grad, hess = L.binary_cross_entropy_with_logits_grad_hess(
        np.array([z, -z]), np.array([1.0, 0.0]), count=1
    )
    assert grad[0] == -tail and grad[1] == tail
    np.testing.assert_allclose(hess, [tail / (1 + np.exp(-z))] * 2, rtol=1e-15)


def test_the_boosting_gradient_at_signed_zeros_and_nan():
    z = np.array([0.0, -0.0, 0.0, -0.0, np.nan])
    t = np.array([0.0, 0.0, 1.0, 0.3, 1.0])
    grad, hess = L.binary_cross_entropy_with_logits_grad_hess(z, t, count=1)
    np.testing.assert_array_equal(grad[:3], 0.5 - t[:3])  # hard labels: exact
    assert grad[3] == pytest.approx(0.2, rel=1e-15)  # (1 - 0.3) - 0.5, rounded once more
    np.testing.assert_array_equal(hess[:4], 0.25)
    assert np.isnan(grad[4]) and np.isnan(hess[4])


def test_count_one_skips_the_mean_and_agrees_with_the_mean():
    rng = np.random.default_rng(0)
    z, t = rng.normal(scale=4, size=1000), rng.random(1000)
    g1, h1 = L.binary_cross_entropy_with_logits_grad_hess(z, t, count=1)
    g, h = L.binary_cross_entropy_with_logits_grad_hess(z, t)
    np.testing.assert_allclose(g * 1000, g1, rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(h * 1000, h1, rtol=1e-15, atol=1e-300)
