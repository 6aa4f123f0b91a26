"""Evaluate a sympy expression at one point, visiting each distinct node once (derivative
trees share subtrees: printing them for ``lambdify`` costs seconds, this costs milliseconds).

Two arithmetics: ``EXACT`` (mpmath at the current precision; a Piecewise evaluates only the
branch it takes) and ``NAIVE`` (float64 numpy scalars, each node as numpy would compute it,
every Piecewise branch evaluated as ``np.select`` does, so floating-point errors surface
exactly where the plain formula in float64 would raise them).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import mpmath
import numpy as np
import sympy as sp

from symgrad.compiler.primitives import (
    Abs,
    ncdf,
    printed_factors,
    sigmoid,
    sign,
    softplus,
    xdivy,
    xlogy,
)

#: Beyond this |u|, exp(u) is 0 or inf in float64; mpmath would spend seconds on it.
EXP_CAP = 1e5


class Undefined(ValueError):
    """The expression has no real value at this point (log of a negative, 0/0, ...)."""


class PrecisionLost(ArithmeticError):
    """A sum cancelled more digits than the working precision holds: retry with more."""


def _real(v):
    if isinstance(v, mpmath.mpc):
        raise Undefined("complex")
    return v


def _mp_exp(u):
    if u > EXP_CAP:
        return mpmath.inf
    if u < -EXP_CAP:
        return mpmath.mpf(0)
    return mpmath.exp(u)


def _mp_log(u):
    if u < 0:
        raise Undefined("log of a negative")
    return mpmath.log(u) if u != 0 else -mpmath.inf


def _mp_heaviside(u, h0=0.5):
    return mpmath.mpf(1) if u > 0 else (mpmath.mpf(0) if u < 0 else mpmath.mpf(h0))


def _mp_hyper(f: Callable) -> Callable:
    def g(u):
        if abs(u) > EXP_CAP:
            return f(mpmath.mpf(EXP_CAP) * mpmath.sign(u)) * mpmath.inf
        return f(u)

    return g


def _amplifying(f: Callable) -> Callable:
    """Record that ``f`` multiplies its argument's relative error by up to |u| (exp, cosh,
    sinh): any float64 evaluation of cosh(x**8) at x = -2 is off by ~300 ulp, however lucky
    the plain formula's rounding happens to be."""

    def g(u):
        EXACT.condition = max(EXACT.condition, float(min(abs(u), EXP_CAP)))
        return f(u)

    return g


def _log_amplifying(u):
    """log(u) multiplies u's relative error by 1 / |log u|: log(1 - 1/(1 + exp(-50))) at 50
    digits keeps 28 of them (recorded, so the reference checks its digits)."""
    value = _mp_log(u)
    if value != 0 and mpmath.isfinite(value):
        EXACT.condition = max(EXACT.condition, float(min(1 / abs(value), 1e300)))
    return value


_MP_FUNCS: dict[type, Callable] = {
    sp.exp: _amplifying(_mp_exp),
    sp.log: _log_amplifying,
    sp.sin: mpmath.sin,
    sp.cos: mpmath.cos,
    sp.tan: mpmath.tan,
    sp.atan: mpmath.atan,
    sp.asin: lambda u: _real(mpmath.asin(u)),
    sp.acos: lambda u: _real(mpmath.acos(u)),
    sp.sinh: _amplifying(_mp_hyper(mpmath.sinh)),
    sp.cosh: _amplifying(_mp_hyper(mpmath.cosh)),
    sp.tanh: mpmath.tanh,
    sp.asinh: mpmath.asinh,
    sp.acosh: lambda u: _real(mpmath.acosh(u)),
    sp.atanh: lambda u: _real(mpmath.atanh(u)),
    sp.erf: mpmath.erf,
    sp.erfc: mpmath.erfc,
    sp.Abs: mpmath.fabs,
    Abs: mpmath.fabs,
    sp.sign: mpmath.sign,
    sign: mpmath.sign,
    sp.Heaviside: _mp_heaviside,
    sp.DiracDelta: lambda *u: mpmath.mpf(0),
    sp.Max: lambda *a: max(a),
    sp.Min: lambda *a: min(a),
    sp.atan2: mpmath.atan2,
    sigmoid: lambda u: 1 / (1 + _mp_exp(-u)),
    softplus: lambda u: mpmath.log1p(_mp_exp(u)) if u < 40 else u + mpmath.log1p(_mp_exp(-u)),
    xlogy: lambda a, b: mpmath.mpf(0) if a == 0 else a * _mp_log(b),
    xdivy: lambda a, b: mpmath.mpf(0) if a == 0 else a / b,
    ncdf: lambda u: mpmath.ncdf(u),
}


def _np_erf(u):
    return np.float64(math.erf(float(u)))


def _np_erfc(u):
    return np.float64(math.erfc(float(u)))


def _np_heaviside(u, h0=0.5):
    return np.heaviside(u, np.float64(h0))


def _np_minmax(f: Callable) -> Callable:
    def g(*a):
        out = a[0]
        for b in a[1:]:
            out = f(out, b)
        return out

    return g


_NP_FUNCS: dict[type, Callable] = {
    sp.exp: np.exp,
    sp.log: np.log,
    sp.sin: np.sin,
    sp.cos: np.cos,
    sp.tan: np.tan,
    sp.atan: np.arctan,
    sp.asin: np.arcsin,
    sp.acos: np.arccos,
    sp.sinh: np.sinh,
    sp.cosh: np.cosh,
    sp.tanh: np.tanh,
    sp.asinh: np.arcsinh,
    sp.acosh: np.arccosh,
    sp.atanh: np.arctanh,
    sp.erf: _np_erf,
    sp.erfc: _np_erfc,
    sp.Abs: np.abs,
    Abs: np.abs,
    sp.sign: np.sign,
    sign: np.sign,
    sp.Heaviside: _np_heaviside,
    sp.DiracDelta: lambda *u: np.float64(0.0),
    sp.Max: _np_minmax(np.maximum),
    sp.Min: _np_minmax(np.minimum),
    sp.atan2: np.arctan2,
    sigmoid: lambda u: 1 / (1 + np.exp(-u)),
    softplus: lambda u: np.log(1 + np.exp(u)),
    xlogy: lambda a, b: a * np.log(b),
    xdivy: lambda a, b: a / b,
    ncdf: lambda u: (1 + _np_erf(u / np.sqrt(2.0))) / 2,
}

_RELATIONS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


class _Arithmetic:
    """How numbers, sums, products and powers are computed in one arithmetic."""

    funcs: dict[type, Callable]
    eager: bool  # evaluate every Piecewise branch (np.select) or only the one taken

    def number(self, n: sp.Expr):
        raise NotImplementedError

    def terms(self, node: sp.Expr) -> tuple:
        """Return the terms of a sum in the order this arithmetic adds them."""
        return node.args

    def add(self, values: list):
        out = values[0]
        for v in values[1:]:
            out = out + v
        return out

    def mul(self, values: list):
        out = values[0]
        for v in values[1:]:
            out = out * v
        return out

    def power(self, base, exp: sp.Expr, exp_value):
        raise NotImplementedError


class _Exact(_Arithmetic):
    funcs = _MP_FUNCS
    eager = False

    #: the largest sum(|terms|) / |sum| (or |u| of an exp/cosh/sinh) met since the last
    #: reset: how much any float64 evaluation may amplify rounding errors (the formula's own
    #: condition)
    condition = 1.0

    def add(self, values: list, leaves: bool = False):
        """Sum ``values`` exactly; ``leaves``: the terms are inputs and numbers (1 - y), so a
        sum of exactly 0 is exact, not a cancellation below the working precision."""
        out = mpmath.fsum(values)
        if leaves and out == 0:
            return out
        if len(values) > 1 and mpmath.isfinite(out):
            if out != 0:
                ratio = float(mpmath.fsum(abs(v) for v in values) / abs(out))
                self.condition = max(self.condition, ratio)
            big = max(abs(v) for v in values)
            # 1 + erf(-21) is 1e-197: at 50 digits it would be a confident, wrong 0
            ulp = mpmath.mpf(10) ** (25 - mpmath.mp.dps)
            if big != 0 and abs(out) <= big * ulp:
                raise PrecisionLost("cancellation")
            # 1 + exp(-300) at 50 digits drops the term log() would bring back: absorption
            small = min((abs(v) for v in values if v != 0), default=big)
            if small < abs(out) * ulp:
                raise PrecisionLost("absorption")
        return out

    def number(self, n: sp.Expr):
        if n.is_Integer:
            return mpmath.mpf(int(n))
        if n.is_Rational:
            return mpmath.mpf(int(n.p)) / int(n.q)
        return mpmath.mpf(str(n.evalf(mpmath.mp.dps + 5)))

    def power(self, base, exp, exp_value):
        if exp.is_Integer:
            if base == 0 and exp < 0:
                raise Undefined("division by zero")
            return base ** int(exp)
        if base < 0:
            raise Undefined("fractional power of a negative")
        if base == 0:
            if exp_value < 0:
                raise Undefined("division by zero")
            return mpmath.mpf(0)
        return mpmath.power(base, exp_value)


class _Naive(_Arithmetic):
    funcs = _NP_FUNCS
    eager = True

    def terms(self, node: sp.Expr) -> tuple:
        # left to right as sympy prints the sum (what lambdify's code does): a sum that
        # cancels below its rounding level is exact or not by this order alone
        return _printed_terms(node)

    def number(self, n: sp.Expr):
        return np.float64(float(n))

    def power(self, base, exp, exp_value):
        if exp == sp.S.Half:
            return np.sqrt(base)
        if exp.is_Integer:
            return np.power(base, np.float64(int(exp)))
        return np.power(base, exp_value)


@functools.lru_cache(maxsize=8192)
def _printed_terms(node: sp.Expr) -> tuple:
    return tuple(node.as_ordered_terms())


@functools.lru_cache(maxsize=8192)
def _printed_factors(node: sp.Expr) -> tuple:
    return printed_factors(node)


EXACT = _Exact()
NAIVE = _Naive()


def evaluate(expr: sp.Basic, env: dict, arith: _Arithmetic = EXACT):
    """Return ``expr`` at the point ``env`` (symbol -> value) in the arithmetic ``arith``.

    Raises Undefined (or a numpy FloatingPointError under ``np.errstate``) where the value
    does not exist; unknown functions fall back to sympy's own evalf.
    """
    memo: dict = dict(env)

    def visit(node):
        done = memo.get(node)
        if done is not None:
            return done
        out = _node(node, visit, arith)
        memo[node] = out
        return out

    return visit(expr)


def _node(node, visit, arith: _Arithmetic):
    if node.is_Number or node.is_NumberSymbol or node in (sp.E, sp.pi):
        return arith.number(node)
    if node is sp.true or node is sp.false:
        return bool(node)
    if node.is_Add:
        values = [visit(a) for a in arith.terms(node)]
        if arith is EXACT:
            return arith.add(values, all(_leaf(a) for a in node.args))
        return arith.add(values)
    if node.is_Mul:
        return _mul(node, visit, arith)
    if node.is_Pow:
        base, exp = node.args
        return arith.power(visit(base), exp, visit(exp))
    for types, evaluate in _BY_TYPE:
        if isinstance(node, types):
            return evaluate(node, visit, arith)
    fn = arith.funcs.get(type(node))
    if fn is not None:
        args = [visit(a) for a in node.args]
        if arith is EXACT:
            _check_log_of_one(node, args)
        return fn(*args)
    if node.is_Symbol:
        raise KeyError(f"no value for symbol {node}")
    return _evalf(node, visit, arith)


def _check_log_of_one(node: sp.Expr, args: list) -> None:
    """Raise PrecisionLost for log(a) where a computed ``a`` is exactly 1: log(cosh(1e-100))
    at 50 digits is a confident, wrong 0, the argument having absorbed everything log would
    bring back (a literal 1 is exact)."""
    if isinstance(node, sp.log) and args[0] == 1 and not node.args[0].is_number:
        raise PrecisionLost("absorption")


def _leaf(term: sp.Expr) -> bool:
    """Tell whether ``term`` is a symbol, a rational, or a rational times a symbol: exact at
    any working precision, as the float64 inputs are."""
    coeff, rest = term.as_coeff_Mul()
    return coeff.is_Rational and (rest.is_Symbol or rest == 1)


def _mul(node, visit, arith: _Arithmetic):
    if arith.eager:  # as lambdify prints it: -num[0]*num[1]*.../(den[0]*...), left to right
        negated, num, den = _printed_factors(node)
        out = arith.mul([visit(a) for a in num])
        if den:
            out = out / arith.mul([visit(a) for a in den])
        return -out if negated else out
    return arith.mul([visit(a) for a in node.args])


def _relational(node, visit, arith: _Arithmetic) -> bool:
    return bool(_RELATIONS[node.rel_op](visit(node.lhs), visit(node.rhs)))


def _and(node, visit, arith: _Arithmetic) -> bool:
    return all(visit(a) for a in node.args)


def _or(node, visit, arith: _Arithmetic) -> bool:
    return any(visit(a) for a in node.args)


def _not(node, visit, arith: _Arithmetic) -> bool:
    return not visit(node.args[0])


def _ite(node, visit, arith: _Arithmetic):
    c, a, b = node.args
    return visit(a) if visit(c) else visit(b)


def _piecewise(node, visit, arith: _Arithmetic):
    if arith.eager:
        values = [visit(v) for v, _ in node.args]
        for (_, c), v in zip(node.args, values, strict=True):
            if visit(c):
                return v
        return np.float64(np.nan)
    for v, c in node.args:
        if visit(c):
            return visit(v)
    raise Undefined("no Piecewise branch applies")


# How _node evaluates a conditional or logical node, tried in order: ``(node, visit, arith)``
_BY_TYPE = (
    (sp.Piecewise, _piecewise),
    (sp.core.relational.Relational, _relational),
    (sp.And, _and),
    (sp.Or, _or),
    (sp.Not, _not),
    (sp.ITE, _ite),
)


def _evalf(node, visit, arith: _Arithmetic):
    """Evaluate a function the tables do not know through sympy (slow, rare)."""
    args = [visit(a) for a in node.args]
    dps = mpmath.mp.dps if arith is EXACT else 17
    value = node.func(*(sp.Float(str(a), dps) for a in args)).evalf(dps)
    if not value.is_extended_real:
        raise Undefined(f"{node.func} has no real value here")
    return arith.number(value) if arith is NAIVE else mpmath.mpf(str(value))
