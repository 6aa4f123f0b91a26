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
