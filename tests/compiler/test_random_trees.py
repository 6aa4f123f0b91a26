"""Random expression trees: the emitted gradient equals sympy's own derivative, evaluated by mpmath."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad as sg

X = sp.Symbol("x", real=True)

leaves = st.one_of(
    st.just(X),
    st.just(X),
    st.integers(1, 3).map(sp.Integer),
    st.sampled_from([sp.Rational(1, 2), sp.Rational(-3, 2), sp.Float(0.75)]),
)


def _extend(children):
    unary = st.tuples(st.sampled_from(["exp", "log", "sqrt", "tanh", "abs", "neg"]), children)
    binary = st.tuples(st.sampled_from(["+", "-", "*", "/"]), children, children)
    piece = st.tuples(st.just("pw"), children, children, st.sampled_from([-1, 0, 1]))
    return st.one_of(unary, binary, piece).map(_build)


def _build(node):
    op = node[0]
    if op == "exp":
        return sp.exp(node[1])
    if op == "log":
        return sp.log(node[1])
    if op == "sqrt":
        return sp.sqrt(node[1])
    if op == "tanh":
        return sp.tanh(node[1])
    if op == "abs":
        return sp.Abs(node[1])
    if op == "neg":
        return -node[1]
    if op == "pw":
        return sp.Piecewise((node[1], X > node[3]), (node[2], True))
    a, b = node[1], node[2]
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]


trees = st.recursive(leaves, _extend, max_leaves=10)


def _near_kink(expr: sp.Expr, value: float) -> bool:
    """Tell whether ``value`` is within 1e-6 of a point where ``expr`` is not smooth."""
    pts = [a.args[0] for a in expr.atoms(sp.Abs)]
    pts += [r.lhs - r.rhs for r in expr.atoms(sp.core.relational.Relational)]
    for u in pts:
        try:
            if abs(complex(u.evalf(30, subs={X: value}))) < 1e-6:
                return True
        except (TypeError, ValueError):
            return True
    return False


def _real_path(expr: sp.Expr, value: float) -> bool:
    """Tell whether every log and sqrt in ``expr`` gets a positive argument (no complex detour)."""
    args = [a.args[0] for a in expr.atoms(sp.log)]
    args += [p.base for p in expr.atoms(sp.Pow) if not p.exp.is_integer]
    for a in args:
        v = a.evalf(30, subs={X: value})
        if not v.is_extended_real or not v > 1e-12:
            return False
    return True


def _exact(expr: sp.Expr, value: float) -> float | None:
    out = expr.evalf(40, subs={X: sp.Float(value, 40)})
    if not out.is_number or not out.is_extended_real or not out.is_finite:
        return None
    f = float(out)
    return f if math.isfinite(f) else None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=trees, point=st.floats(-4, 4).filter(lambda v: abs(v) > 1e-3))
def test_emitted_gradient_matches_sympy_derivative(expr, point):
    assume(X in expr.free_symbols and not expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I))
    assume(not _near_kink(expr, point) and _real_path(expr, point))
    value = _exact(expr, point)
    slope = _exact(sp.diff(expr, X), point)
    assume(value is not None and slope is not None and abs(slope) < 1e12)

    spec = sg.activation(lambda x: expr.xreplace({X: x}), name="tree")
    kernels = sg.compile(spec)
    with np.errstate(all="ignore"):
        got_value = float(kernels.tree(np.array([point]))[0])
        got_slope = float(kernels.tree_grad(np.array([point]))[0])
    # float64 evaluation of an ill-conditioned tree cannot do better than its own rounding
    cond = max(1.0, abs(value), abs(slope))
    assert math.isclose(got_value, value, rel_tol=1e-9, abs_tol=1e-9 * cond), (expr, point)
    assert math.isclose(got_slope, slope, rel_tol=1e-7, abs_tol=1e-7 * cond), (
        expr,
        point,
        kernels.__source__,
    )
