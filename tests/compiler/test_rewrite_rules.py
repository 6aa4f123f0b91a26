"""Each stability rewrite rule of symgrad.compiler.rewrite on its own: it rewrites the node it
names, leaves others alone (None), and keeps the value."""

import math

import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.numpy_nodes import logaddexp

from symgrad.compiler import rewrite
from symgrad.compiler.primitives import ncdf, sigmoid, softplus, xlogy

u = sp.Symbol("u", real=True)
a = sp.Symbol("a", real=True)
SMALL = sp.Float("1e-8")


def W(v):  # noqa: N802 - the clamp _small_argument_power writes: max(|v|, 1e-8)
    return sp.Max(sp.Abs(v), SMALL)


CASES = [
    (rewrite._one_minus_sigmoid, 1 - sigmoid(u), sigmoid(-u)),
    (rewrite._exp_erf_offset, 3 * sp.exp(u) - 3, 3 * expm1(u)),
    (rewrite._exp_erf_offset, 1 + sp.erf(u), 2 * ncdf(sp.sqrt(2) * u)),
    (rewrite._exp_erf_offset, 1 - sp.erf(u), sp.erfc(u)),
    (rewrite._log_sigmoid, sp.log(sigmoid(u)), -softplus(-u)),
    (
        rewrite._log_cosh,
        sp.log(sp.cosh(u)),
        sp.Piecewise(
            (log1p(2 * sp.sinh(sp.Abs(u) / 2) ** 2), sp.Abs(u) < 2),
            (logaddexp(u, -u) - sp.log(2), True),
        ),
    ),
    (rewrite._power_offset, 2 - 2 * (1 - u**2) ** 3, 2 * u**2 * (1 + (1 - u**2) + (1 - u**2) ** 2)),
    (rewrite._log_one_plus, sp.log(1 + u**2), log1p(u**2)),
    (rewrite._sinh_pythagoras, 2 + 2 * sp.sinh(u) ** 2, 2 * sp.cosh(u) ** 2),
    (
        rewrite._log_erf,
        sp.log(sp.erf(u)),
        sp.Piecewise((log1p(-sp.erfc(u)), u >= 1), (sp.log(sp.erf(sp.Min(u, 1))), True)),
    ),
    (
        rewrite._xlogx_difference,
        (u + 2) * sp.log(u + 2) - u * sp.log(u) - 1,
        2 * sp.log(u + 2) + u * log1p(2 / u) - 1,
    ),
    (
        rewrite._xlogx_difference,
        3 * (1 + u) * log1p(u) - 3 * u * sp.log(u),
        3 * sp.log(u + 1) + 3 * u * log1p(1 / u),
    ),
    (rewrite._xlogy_sigmoid, xlogy(a, sigmoid(u)), -a * softplus(-u)),
    (rewrite._xlogy_positive, xlogy(a, softplus(u)), a * sp.log(softplus(u))),
    (rewrite._sech_power, sp.cosh(u) ** -2, 4 * sigmoid(2 * u) * sigmoid(-2 * u)),
    (rewrite._heaviside, sp.Heaviside(u), sp.Piecewise((1, u > 0), (0, True))),
    (rewrite._dirac_delta, sp.DiracDelta(u), sp.S.Zero),
    (
        rewrite._small_argument_power,
        sp.sinh(sigmoid(u)) ** sp.Rational(-5, 4) * sigmoid(u),
        sigmoid(u) ** sp.Rational(-1, 4)
        * (sp.sinh(W(sigmoid(u))) / W(sigmoid(u))) ** sp.Rational(-5, 4),
    ),
    (
        rewrite._small_argument_power,
        log1p(sigmoid(u) ** 2) ** -3 * sigmoid(u) ** 4,
        (
            log1p(sp.Max(sigmoid(u) ** 2, sp.Float("1e-16")))
            / sp.Max(sigmoid(u) ** 2, sp.Float("1e-16"))
        )
        ** -3
        / sigmoid(u) ** 2,
    ),
    (
        rewrite._small_argument_power,
        sp.atan(sp.exp(-(u**2))) ** -2 * sp.exp(-2 * u**2),
        (sp.atan(W(sp.exp(-(u**2)))) / W(sp.exp(-(u**2)))) ** -2,
    ),
    (
        rewrite._log_product,
        sp.log(u**2 * sigmoid(u) ** 3 * sp.exp(a)),
        sp.log(u**2) + 3 * sp.log(sigmoid(u)) + a,
    ),
    (rewrite._spread_exp, sp.exp(-u) * (a * sp.exp(u) + sp.exp(2 * u)), a + sp.exp(u)),
]


@pytest.mark.parametrize(
    ("rule", "before", "after"), CASES, ids=lambda v: getattr(v, "__name__", "")
)
def test_rule_rewrites_its_node(rule, before, after):
    assert rule(before) == after


@pytest.mark.parametrize(
    ("rule", "before", "after"), CASES, ids=lambda v: getattr(v, "__name__", "")
)
def test_rule_keeps_the_value(rule, before, after):
    if before.has(sp.DiracDelta):
        return  # a distribution: the rule is the derivative convention, not an identity
    env = {u: 0.3, a: 1.7}
    got = float(sp.N(after.subs(env).rewrite(sp.exp).doit()))
    want = float(sp.N(before.subs(env).rewrite(sp.exp).doit()))
    assert math.isclose(got, want, rel_tol=1e-12)


@pytest.mark.parametrize("rule", sorted({c[0] for c in CASES}, key=lambda r: r.__name__))
def test_rule_leaves_other_nodes_alone(rule):
    assert rule(u**3 + sp.sin(u)) is None
    assert rule(sp.log(u)) is None


def test_stable_rule_applies_the_rules_in_order():
    assert rewrite._stable_rule(sp.Heaviside(u)) == sp.Piecewise((1, u > 0), (0, True))
    assert rewrite._stable_rule(sp.log(sigmoid(u))) == -softplus(-u)
    assert rewrite._stable_rule(u**3) == u**3


def test_small_argument_power_needs_a_bounded_argument_and_a_power_to_merge():
    """f(u)**p -> u**p (f(u)/u)**p only for |u| <= 1 known, and only where u's power merges:
    with another power of u in the product, or for u = exp(a) or sigmoid(a) alone."""
    assert rewrite._small_argument_power(sp.sinh(u) ** sp.Rational(-1, 2) * u) is None
    assert rewrite._small_argument_power(sp.tanh(sp.sin(u)) ** -1) is None
    assert rewrite._small_argument_power(sp.sinh(sigmoid(u)) * sigmoid(u)) is None  # p > 0
    alone = rewrite._small_argument_power(sp.sinh(sp.exp(-(u**2))) ** sp.Rational(-1, 2))
    ratio = sp.sinh(W(sp.exp(-(u**2)))) / W(sp.exp(-(u**2)))
    assert alone == sp.exp(u**2 / 2) * ratio ** sp.Rational(-1, 2)
    clamped = sp.sinh(W(sigmoid(u))) ** -2 * W(sigmoid(u)) ** 2  # its own result: no loop
    assert rewrite._small_argument_power(clamped) is None


def test_sech_is_spread_over_a_sum_of_hyperbolic_terms():
    """cosh(u)**-1 (sinh(u)**2 + cosh(u)**2) -> sinh(u) tanh(u) + cosh(u): each quotient is a
    tanh form, where the sum itself overflows at u = 700 (sqrt(cosh(w)**2 + 1)'')."""
    spread = rewrite._hyperbolic((sp.sinh(u) ** 2 + sp.cosh(u) ** 2) / sp.cosh(u))
    assert spread == sp.sinh(u) * sp.tanh(u) + sp.cosh(u)
    kept = (sp.sinh(u) ** 2 + 1) / sp.cosh(u)  # a term without sinh or cosh: left as it is
    assert rewrite._hyperbolic(kept) == kept


def test_bounded_quadratics_are_not_scaled():
    """a (1 + (c u)**2) with |c u| <= 1 known cannot overflow: log(1 + sigmoid(u)**2) stays
    log1p's argument, where the rules for a small argument reach it."""
    assert rewrite._quadratic_log(sp.log(1 + sigmoid(u) ** 2)) is None
    assert rewrite._quadratic_product((1 + sp.tanh(u) ** 2) ** sp.Rational(-1, 2)) is None
    assert rewrite._quadratic_log(sp.log(1 + u**2)) is not None
    assert rewrite._quadratic_log(sp.log(1 + 4 * sigmoid(u) ** 2)) is not None  # c = 2


def test_powers_of_hyperbolic_sums_are_scaled_by_cosh():
    """(a sinh(u) + b cosh(u) + c)**p -> cosh(u)**p (a tanh(u) + b + c/cosh(u))**p for p < 0,
    so cosh's powers merge with the product's; not for p > 0 or two arguments."""
    got = rewrite._hyperbolic_sum_power((2 * sp.sinh(u) + 3) ** -3)
    assert got == sp.cosh(u) ** -3 * (2 * sp.tanh(u) + 3 / sp.cosh(u)) ** -3
    assert rewrite._hyperbolic_sum_power((sp.sinh(u) + 3) ** 2) is None
    assert rewrite._hyperbolic_sum_power((sp.sinh(u) + sp.cosh(a)) ** -1) is None
    assert rewrite._hyperbolic_sum_power((sp.sinh(u) + a) ** -1) is None
    quotient = rewrite.bottom_up(2 * sp.cosh(u) ** 2 / (sp.sinh(u) + 3) ** 3, rewrite._hyperbolic)
    assert quotient == 2 / (sp.cosh(u) * (sp.tanh(u) + 3 / sp.cosh(u)) ** 3)


def test_sech_keeps_its_range():
    """1/cosh(u) is 2 exp(-|u|) sigmoid(2|u|), not sqrt(sigmoid(-2|u|) sigmoid(2|u|)): the
    square root's sigmoid(-2|u|) underflows beyond |u| = 373, where sech(u) is still 1e-162
    (_exp_times_sigmoid leaves exp(m w) alone for a number |m| < 1)."""
    assert rewrite.stabilize(1 / sp.cosh(u)) == 2 * sp.exp(-sp.Abs(u)) * sigmoid(2 * sp.Abs(u))
    assert rewrite._exp_times_sigmoid(sp.exp(-u) * sigmoid(2 * u)) is None
    assert rewrite._exp_times_sigmoid(sp.exp(2 * u) * sigmoid(-u) ** 2) == sigmoid(u) ** 2


def test_softplus_powers_merge_with_sigmoid_powers():
    """softplus(w)**p sigmoid(w)**j (p < 0 < j) -> sigmoid(w)**(j + p) (softplus(v)/sigmoid(v))**p
    with v = max(w, -40), where the ratio is 1 + e**v/2 ... (exact to rounding); none alone."""
    got = rewrite._small_argument_power(sigmoid(u) ** 2 * softplus(u) ** sp.Rational(-3, 2))
    v = sp.Max(u, -40)
    assert got == sp.sqrt(sigmoid(u)) * (softplus(v) / sigmoid(v)) ** sp.Rational(-3, 2)
    assert rewrite._small_argument_power(softplus(u) ** -2) is None
    assert rewrite._small_argument_power(softplus(v) ** -2 * sigmoid(v)) is None  # its own


def test_a_linear_rest_is_written_by_its_values_in_the_tails():
    """factor_tails writes a rest a s + b (s = sigmoid(u)) as q(1) s + q(0) sigmoid(-u): a and b
    may be far larger than a + b (1/softplus(w)**(3/2) at -700) and cancel."""
    from symgrad.compiler.tails import factor_tails

    big = 1 / a
    e = sigmoid(u) * sigmoid(-u) * ((big + 1) * sigmoid(u) - big)
    assert factor_tails(e) == -sigmoid(u) * sigmoid(-u) * (big * sigmoid(-u) - sigmoid(u))


def test_log_product_needs_a_nonnegative_rest():
    assert rewrite._log_product(sp.log(u * sigmoid(u))) is None  # u may be negative
    assert rewrite._log_product(sp.log(u**2 * a)) is None  # no sigmoid or exp to split off


def test_quadratic_product_merges_the_mirrored_base():
    """(-u - 1)**2 (1 + (u + 1)**2)**(-3/2) is scaled like (u + 1)**2 (...)**(-3/2): the power
    of u + 1 merges with the scale's, so nothing overflows before the division."""
    q = (1 + (u + 1) ** 2) ** sp.Rational(-3, 2)
    assert rewrite._quadratic_product((-u - 1) ** 2 * q) == rewrite._quadratic_product(
        (u + 1) ** 2 * q
    )
    assert rewrite._quadratic_product((-u - 1) ** 3 * q) == -rewrite._quadratic_product(
        (u + 1) ** 3 * q
    )


def test_spread_exp_only_where_exponents_merge():
    """exp(a) is spread over a sum only where some term's exponent merges with a (x**2 and
    -x**2/2); softmax-like exponents that do not merge are left alone (spreading them only
    grew class-axis derivatives past the rewrite budget)."""
    spread = rewrite._spread_exp(sp.exp(-(u**2) / 2) * (u * sp.exp(u**2) + sp.exp(-(a**2))))
    assert spread == u * sp.exp(u**2 / 2) + sp.exp(-(a**2) - u**2 / 2)
    assert rewrite._spread_exp(sp.exp(u - a**2) * (sp.exp(a * u) + sp.exp(2 * a))) is None
    assert rewrite._spread_exp(sp.exp(-u) * (sp.exp(u) + a)) is None  # a term without exp
