"""Beyond the rule table, a search: Herbie's loop (Panchekha et al., PLDI 2015) on the forms
safe mode lets through that still break the stronger contract (docs/fuzzing.md): within a few
ulps of the exact value times the condition number of the function itself.

Safe mode's floor is the plain formula, and the plain formula is often the very thing that
loses the digits ((1 - cos x)/x**2 near 0, both derivatives of it). For a function outside
that contract at safe mode's own points (exact values already computed there; the function's
condition number, ``check.Reference.condition``, is computed only where the error passes
a few ulps), or which no rewrite level verified, this module

1. samples the form at seeded points drawn over the float64 bit patterns of the input's
   domain (most are tiny or huge, as in the accuracy benchmark) and over 1e-3 .. 1e3, against
   safe mode's mpmath reference;
2. localizes the error: each subexpression's operator evaluated in float64 on its exactly
   computed (then rounded) arguments, against the exact result (Herbie's local error);
3. tries candidate forms: the stabilizing identities (``rewrite.stabilize``) on the localized
   subexpression brought over one denominator; a series expansion of the form near 0 and in
   the tails at +-infinity, truncated to as many terms as float64 needs in the region; and a
   regime split (a Piecewise) of the form between its series and itself, the number of terms
   (and with it the threshold, where the first dropped term is an ulp of the leading one)
   chosen by the sampled error among candidates;
4. keeps the candidate with the fewest bits of error at the sample points that also passes
   safe mode's check (and is better than the emitted form by ``MIN_GAIN`` bits).

Everything is bounded by counting work, never by a clock: ``SAMPLES`` points, series only of
values with at most ``SERIES_NODES`` distinct nodes, ``LOCALIZED`` subexpressions, ``VALIDATED``
safe-mode checks per function and reference evaluations charged to ``SearchWork``. The points
are drawn from a generator seeded by the spec's name, and every choice breaks ties by order,
so the emitted bytes do not depend on the machine, the load or the hash seed.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
import struct
import zlib
from collections.abc import Callable
from types import ModuleType

import mpmath
import numpy as np
import sympy as sp

from symgrad.compiler.check import (
    DIGITS,
    TINY,
    Reference,
    _enough_digits,
    breaks_contract,
    checked_functions,
)
from symgrad.compiler.config import CodegenConfig, budget
from symgrad.compiler.evaluate import EXACT, NAIVE, _node
from symgrad.compiler.kernel import STABLE, Derived, derive_kernel
from symgrad.compiler.primitives import Abs
from symgrad.compiler.rewrite import stabilize
from symgrad.compiler.spec import Spec
from symgrad.compiler.traverse import is_zero

#: A function is searched when some safe-mode point breaks the stronger contract
#: (``check.breaks_contract``) or, where the function's condition number is out of the
#: budget's reach, has more bits of error than this ...
TRIGGER_BITS = 10.0
#: ... and a candidate replaces it only when it has this many fewer bits (mean, sampled).
MIN_GAIN = 1.0
#: Points per search: drawn over float64 bit patterns, and log-uniformly over 1e-3 .. 1e3.
SAMPLES = 48
#: The most terms a truncated series keeps, and the order the value's series is taken to.
MAX_TERMS = 12
#: A spec's own series (near 0 and in the tails) is taken only of a value this small, and only
#: a subexpression this small is rewritten (distinct nodes): sympy's ``series``, ``together``
#: and ``cancel`` have no bound of their own, and on random specs of 20-40 nodes they ran for
#: minutes. Hamming's problems have 4-12 nodes.
SERIES_NODES = 14
#: A localized subexpression's series near 0 (Cauchy's formula: 128 complex evaluations of
#: each node) is taken up to this size.
SERIES_NODES_NEAR_0 = 40
#: Only specs this small (distinct nodes) are searched at all. A spec with other inputs or
#: hyper-parameters gets no series of its own, only of its localized subexpressions in x.
SEARCHED_NODES = 48
#: Subexpressions with the most local error that get candidates of their own.
LOCALIZED = 2
#: Forms with more distinct nodes than this are not localized (one exact pass per point).
LOCAL_NODES = 120
#: Candidates checked by safe mode per function, best sampled first.
VALIDATED = 3
#: Reference work of one spec's search, as safe mode's ``Work`` counts it.
SEARCH_WORK = 400_000.0
_EPS = 2.0**-53
_FORMS = ("value", "grad", "hess")


# ---------------------------------------------------------------- Herbie's metric


def ordinal(v: float) -> int:
    """Return the position of ``v`` on the ordered float64 line (-0.0 and 0.0 both 0)."""
    (bits,) = struct.unpack("<q", struct.pack("<d", v))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


def from_ordinal(i: int) -> float:
    """Return the float64 at position ``i`` of the ordered line."""
    bits = i if i >= 0 else (-i) | -0x8000000000000000
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def bits_of_error(got: float, exact: float) -> float:
    """Return log2(1 + doubles between ``got`` and ``exact``); 64 for a non-finite ``got``."""
    if not math.isfinite(got):
        return 64.0
    return math.log2(1 + abs(ordinal(got) - ordinal(exact)))


def _scored(got: float, exact: float) -> float:
    if abs(exact) < TINY and math.isfinite(got) and abs(got) < TINY:
        return 0.0
    return bits_of_error(got, exact)


# ---------------------------------------------------------------- points and exact values

_RANGE = {
    "positive": (5e-324, 1.7976931348623157e308),
    "nonnegative": (0.0, 1.7976931348623157e308),
    "unit": (0.0, 1.0),
    "open_unit": (5e-324, 0.9999999999999999),
}


def sample_points(spec, n: int = SAMPLES) -> list[tuple[float, ...]]:
    """Return ``n`` points seeded by the spec's name: the differentiated input's magnitude
    uniform over the float64 bit patterns of its domain (a third of them: most tiny or huge),
    log-uniform over 1e-3 .. 1e3 (a third) and over 1e-10 .. 1e30 (where tails begin), with
    the signs alternating in a signed domain; the other inputs cycle through safe mode's
    values."""
    from symgrad.compiler.check import OTHERS

    rng = np.random.default_rng(zlib.crc32(b"search:" + spec.name.encode()))
    domain = spec.domain(spec.wrt.name)
    low, high = _RANGE.get(domain, (0.0, 1.7976931348623157e308))
    signed = domain not in _RANGE
    xs = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            x = from_ordinal(int(rng.integers(ordinal(low), ordinal(high), endpoint=True)))
        else:
            x = float(10 ** (rng.uniform(-3, 3) if kind == 1 else rng.uniform(-10, 30)))
            x = min(max(x, low), high)
        xs.append(-x if signed and (i // 3) % 2 else x)
    others = len(spec.inputs) - 1
    return [(x, *(OTHERS[(i + k) % len(OTHERS)] for k in range(others))) for i, x in enumerate(xs)]


class SearchWork:
    """The search's own reference budget, counted as safe mode's ``Work`` counts it."""

    def __init__(self, ref: Reference, limit: float) -> None:
        self.ref = ref
        self.left = limit

    def charge(self, form: str, dps: int) -> bool:
        cost = self.ref.work.sizes[form] * dps / DIGITS
        if cost > self.left:
            return False
        self.left -= cost
        return True


def exact_at(ref: Reference, form: str, point, hyper, work: SearchWork) -> float | None:
    """Return the exact ``form`` at ``point`` rounded to float64 (None where it is not a finite
    double or the budget is spent), shared with safe mode's cache."""
    key = (form, point)
    cache = ref.exact_cache
    if key not in cache:
        value, condition = _enough_digits(
            ref.exact(form), (*point, *hyper), lambda dps: work.charge(form, dps)
        )
        if value is None:
            return None  # (not cached: safe mode may still afford it with its own budget)
        cache[key] = value
        cache[("condition", form, point)] = condition
    value = cache[key]
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------- scoring


def _naive_at(expr: sp.Expr, args, point) -> float:
    env = {s: np.float64(v) for s, v in zip(args, point, strict=True)}
    from symgrad.compiler.evaluate import evaluate

    with np.errstate(all="ignore"):
        try:
            return float(evaluate(expr, env, NAIVE))
        except (ArithmeticError, ValueError, TypeError, KeyError):
            return math.nan


def _mean_bits(values, exact) -> float:
    return sum(map(_scored, values, exact)) / len(exact)


def _expr_bits(expr: sp.Expr, args, pts, exact) -> float:
    return _mean_bits([_naive_at(expr, args, p) for p in pts], exact)


def _module_values(fn: Callable, spec, pts, output: int) -> list[float]:
    """Return output ``output`` of emitted ``fn`` at each point, one element at a time (a
    loss's mean of one element is its value there)."""
    from symgrad.compiler.check import _call

    out = []
    with np.errstate(all="ignore"):
        for p in pts:
            try:
                out.append(_call(fn, spec, p)[output])
            except (ArithmeticError, ValueError, TypeError):
                out.append(math.nan)
    return out


# ---------------------------------------------------------------- localization


def local_errors(expr: sp.Expr, args, pts) -> list[tuple[float, sp.Expr]]:
    """Return (summed local error in bits, node) of each compound node of ``expr``, largest
    first (ties in sympy's sort order): the node's operator applied in float64 to its
    arguments' exact values rounded to float64, against the exact result (Herbie's local
    error)."""
    totals: dict = {}
    for point in pts:
        with mpmath.workdps(DIGITS):
            memo: dict = {s: mpmath.mpf(v) for s, v in zip(args, point, strict=True)}

            def visit(node, memo=memo):
                if node not in memo:
                    memo[node] = _node(node, visit, EXACT)
                return memo[node]

            try:
                visit(expr)
            except Exception:  # noqa: BLE001 - an undefined point localizes nothing
                continue
        rounded = {}
        for node, value in memo.items():
            try:
                rounded[node] = np.float64(float(value)) if not isinstance(value, bool) else value
            except (TypeError, ValueError):
                rounded[node] = value
        for node in memo:
            if not isinstance(node, sp.Expr) or node.is_Atom or not node.args:
                continue
            exact = rounded[node]
            if isinstance(exact, bool) or not np.isfinite(exact):
                continue

            def operand(c, r=rounded):
                # (a printed product visits x**2 for x**-2: computed in float64 from there)
                return r[c] if c in r else _node(c, operand, NAIVE)

            with np.errstate(all="ignore"):
                try:
                    got = float(_node(node, operand, NAIVE))
                except Exception:  # noqa: BLE001
                    got = math.nan
            totals[node] = totals.get(node, 0.0) + _scored(got, float(exact))
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], sp.default_sort_key(kv[0])))
    return [(err, node) for node, err in ranked]


# ---------------------------------------------------------------- series and regimes


def _terms(series: sp.Expr, x: sp.Symbol) -> list[tuple[sp.Expr, sp.Expr]] | None:
    """Return (exponent, term) of a truncated series in ``x``, by rising exponent, or None
    where a term is not a number times a power of ``x`` (logs, symbols)."""
    out = []
    for term in sp.Add.make_args(sp.expand(series)):
        coeff, power = term.as_coeff_exponent(x)
        if not (coeff.is_number and coeff.is_real and power.is_Rational) or is_zero(coeff):
            return None
        out.append((power, term))
    out.sort(key=lambda t: (t[0], sp.default_sort_key(t[1])))
    return out


def _reach(terms, k: int, x: sp.Symbol) -> float | None:
    """Return the |x| up to which the first ``k`` of ``terms`` (rising exponents) are exact in
    float64: where the first term left out is an ulp of the leading one (None: exact)."""
    if k >= len(terms):
        return None
    (p0, t0), (pk, tk) = terms[0], terms[k]
    try:
        c0, ck = abs(float(t0.subs(x, 1))), abs(float(tk.subs(x, 1)))
    except (TypeError, ValueError):
        return None
    if c0 == 0 or ck == 0 or pk <= p0:
        return None
    return float((_EPS * c0 / ck) ** (1 / float(pk - p0)))


#: The tails' series variable: u = 1/x at +oo and -1/x at -oo (positive there).
_U = sp.Dummy("u", positive=True)


def _variable(x: sp.Symbol, at: str) -> tuple[sp.Symbol, sp.Expr]:
    """Return the series variable of region ``at`` and its value in ``x``."""
    if at == "0":
        return x, x
    return _U, (1 if at == "+oo" else -1) / x


#: Functions sympy expands in a bounded number of steps; a series is taken only of forms
#: built from these, nested at most ``SERIES_DEPTH`` deep (sympy's series of a sigmoid of an
#: exponential, or of a deep composition, can run for minutes: no count bounds it otherwise).
SERIES_FUNCTIONS = (sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.atan, sp.sinh, sp.cosh, sp.tanh)
SERIES_DEPTH = 1
#: Functions mpmath evaluates at complex points: near 0, where the coefficients come from
#: Cauchy's formula (counted work, any nesting), these may sit at any depth.
ANALYTIC_FUNCTIONS = (*SERIES_FUNCTIONS, sp.erf)


def _expandable(expr: sp.Expr, depth: int = 0) -> bool:
    """Tell whether ``expr`` is a rational/power combination of SERIES_FUNCTIONS applied to
    arguments with no function in them (at most SERIES_DEPTH functions deep)."""
    if expr.is_Atom:
        return True
    if isinstance(expr, sp.Function):
        if not isinstance(expr, SERIES_FUNCTIONS) or depth >= SERIES_DEPTH:
            return False
        return all(_expandable(a, depth + 1) for a in expr.args)
    if not (expr.is_Add or expr.is_Mul or expr.is_Pow):
        return False
    return all(_expandable(a, depth) for a in expr.args)


def _analytic(expr: sp.Expr) -> bool:
    """Tell whether ``expr`` is built of numbers, symbols, sums, products, powers and
    ``ANALYTIC_FUNCTIONS`` only (``_complex_at`` evaluates these; whether the form is analytic
    on the disc is what Cauchy's two circles then decide)."""
    seen: set = set()
    stack = [expr]
    while stack:  # (each distinct node once: a shared subtree is not walked again)
        a = stack.pop()
        if a in seen:
            continue
        seen.add(a)
        if not (a.is_Atom or a.is_Add or a.is_Mul or a.is_Pow or isinstance(a, ANALYTIC_FUNCTIONS)):
            return False
        stack.extend(a.args)
    return True


#: Taylor coefficients near 0 come from Cauchy's integral formula: the form evaluated in
#: complex arithmetic at ``CIRCLE_POINTS`` points on circles of radius ``RADII`` (trapezoid
#: rule, exact up to aliasing for a form analytic on the disc), each radius's coefficients
#: the same to ``AGREE`` relative beyond the sums' rounding (else the form is not analytic
#: there: no series). The work
#: is counted (points times nodes), never sympy's ``series``, which has no bound of its own.
CIRCLE_POINTS = 64
RADII = (0.25, 0.125)
AGREE = 1e-20
_SERIES_DPS = 60
#: The rounding of one coefficient's sum, relative to the largest value on the circle, and
#: the aliasing allowed between the two circles (a form analytic well beyond the larger).
_ROUNDING = mpmath.mpf(10) ** (10 - _SERIES_DPS)
_ALIASING = mpmath.mpf(10) ** -30


def _complex_at(expr: sp.Expr, x: sp.Symbol, z, memo: dict):
    """Return ``expr`` at complex ``z`` in mpmath (principal branches), for the forms
    ``_expandable`` admits; raise ``ValueError`` for anything else."""
    if expr in memo:
        return memo[expr]
    if expr == x:
        out = z
    elif expr.is_Number or expr.is_NumberSymbol:
        out = mpmath.mpf(str(sp.N(expr, _SERIES_DPS + 5)))
    elif expr.is_Add or expr.is_Mul:
        values = [_complex_at(a, x, z, memo) for a in expr.args]
        out = mpmath.fsum(values) if expr.is_Add else mpmath.fprod(values)
    elif expr.is_Pow:
        base = _complex_at(expr.base, x, z, memo)
        e = expr.exp
        out = base ** int(e) if e.is_Integer else mpmath.power(base, _complex_at(e, x, z, memo))
    elif isinstance(expr, ANALYTIC_FUNCTIONS):
        f = getattr(mpmath, type(expr).__name__)
        out = f(_complex_at(expr.args[0], x, z, memo))
    else:
        raise ValueError(f"no complex evaluation of {type(expr).__name__}")
    memo[expr] = out
    return out


def _taylor(expr: sp.Expr, x: sp.Symbol, order: int) -> sp.Expr | None:
    """Return the Laurent series of ``expr`` at 0 in ``x``, terms of exponent below
    ``order`` (poles of order up to 4), from Cauchy's formula on two circles, or None where
    the two disagree (not analytic on the disc) or the form cannot be evaluated there."""
    n = CIRCLE_POINTS
    ks = range(-4, order)
    found = []
    with mpmath.workdps(_SERIES_DPS):
        for r in RADII:
            try:
                values = []
                for j in range(n):
                    z = mpmath.mpf(r) * mpmath.expjpi(mpmath.mpf(2 * j) / n)
                    values.append(_complex_at(expr, x, z, {}))
            except (ValueError, ZeroDivisionError, ArithmeticError):
                return None
            if not all(mpmath.isfinite(v) for v in values):
                return None
            scale = max(abs(v) for v in values)
            coeffs = {}
            for k in ks:
                c = mpmath.fsum(
                    v * mpmath.expjpi(mpmath.mpf(-2 * j * k) / n) for j, v in enumerate(values)
                ) / (n * mpmath.mpf(r) ** k)
                coeffs[k] = (mpmath.re(c), mpmath.im(c), scale / mpmath.mpf(r) ** k)
            found.append(coeffs)
        terms = []
        for k in ks:
            (re1, im1, s1), (re2, _, s2) = (found[0][k], found[1][k])
            # (the larger circle's aliasing, relative to the values there, scaled by r**-k;
            # a form not analytic on the disc disagrees at order one)
            aliasing = _ALIASING * min(s1, s2)
            if abs(im1) > aliasing + AGREE * abs(re1) or abs(re1 - re2) > aliasing + AGREE * abs(
                re2
            ):
                return None  # (complex coefficient of a real form, or not analytic there)
            if abs(re2) <= _ROUNDING * max(s1, s2):
                continue  # a zero coefficient (odd or even forms), up to the sum's rounding
            terms.append(_number(re2) * x**k)
    return sp.Add(*terms) if terms else None


def _number(c) -> sp.Expr:
    """Return coefficient ``c`` as a small rational where it is one (1/6, -1/120: readable
    emitted code), else as a float64-exact Float."""
    frac = fractions.Fraction(mpmath.nstr(c, 40, min_fixed=-mpmath.inf, max_fixed=mpmath.inf))
    near = frac.limit_denominator(10**12)
    if abs(mpmath.mpf(near.numerator) / near.denominator - c) <= 1e-40 * max(1, abs(c)):
        return sp.Rational(near.numerator, near.denominator)
    return sp.Float(float(c), 17)


def _series(expr: sp.Expr, x: sp.Symbol, at: str, order: int) -> sp.Expr | None:
    """Return the series of ``expr`` near 0 (``at`` = "0", in x) or in the tail at +oo / -oo
    (in u = +-1/x > 0), truncated, or None where none is found (or is not asked: a form with
    other functions or deeper nesting than ``_expandable`` allows). Near 0 the coefficients
    are computed (``_taylor``: counted work); in a tail, only a form without functions is
    expanded, by sympy (algebraic Puiseux series, cheap at this size)."""
    if at == "0":
        return _taylor(expr, x, order) if _analytic(expr) else None
    if not _expandable(expr):
        return None
    if expr.atoms(sp.Function):
        # an asymptotic expansion of exp/log/trig at infinity is where sympy's series has no
        # bound (minutes on 10-node random specs); algebraic tails are cheap
        return None
    u, _ = _variable(x, at)
    try:
        e = expr.subs(x, (1 if at == "+oo" else -1) / u)
        return sp.series(e, u, 0, order).removeO()
    except Exception:  # noqa: BLE001 - sympy's series gives up on many forms: no candidate
        return None


def _region(x: sp.Symbol, at: str, reach: float) -> sp.Expr:
    t = sp.Float(reach, 17)
    if at == "0":
        return Abs(x) < t
    return x > 1 / t if at == "+oo" else x < -1 / t


def _tails(spec) -> tuple[str, ...]:
    return ("0", "+oo") if spec.domain(spec.wrt.name) in _RANGE else ("0", "+oo", "-oo")


class Series:
    """The value's series near 0 and in each tail (taken once per spec, to ``MAX_TERMS``
    terms and two more orders); a derivative's series is its term-by-term derivative
    (d/dx = -(+-1) u**2 d/du in a tail)."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.value: dict[str, sp.Expr | None] = {}

    def of(self, form: str, at: str) -> sp.Expr | None:
        x = self.spec.wrt
        if at not in self.value:
            # (near 0, to twice the order: an even or odd form's MAX_TERMS nonzero terms, and
            # its derivatives' after them; Cauchy's coefficients cost no more)
            order = 2 * MAX_TERMS + 3 if at == "0" else MAX_TERMS + 3
            self.value[at] = _series(self.spec.expr, x, at, order)
        s = self.value[at]
        if s is None:
            return None
        u, _ = _variable(x, at)
        sign = -1 if at == "+oo" else 1
        for _ in range(_FORMS.index(form)):
            s = sp.diff(s, u) if at == "0" else sign * u**2 * sp.diff(s, u)
        return sp.expand(s)


def _regimes(
    base, x, series: dict, args, pts, exact, *, cap: float = math.inf
) -> list[tuple[float, sp.Expr]]:
    """Return (sampled bits, form) of regime splits of ``base``: in each region (near 0, each
    tail) the series with the number of terms the sampled error prefers (fewest on a tie),
    up to where its first dropped term is an ulp (near 0, at most ``cap``), and ``base``
    elsewhere."""
    pieces: list = []
    scored = []
    best = _expr_bits(base, args, pts, exact)
    for at, s in series.items():
        u, value = _variable(x, at)
        terms = _terms(s, u) if s is not None else None
        if not terms:
            continue
        choice = None
        for k in range(1, min(MAX_TERMS, len(terms)) + 1):
            reach = _reach(terms, k, u)
            if reach is None or not math.isfinite(reach) or reach <= 0:
                continue
            if at == "0":
                reach = min(reach, cap)
            approx = sp.Add(*(t for _, t in terms[:k])).xreplace({u: value})
            cand = sp.Piecewise(*pieces, (approx, _region(x, at, reach)), (base, True))
            bits = _expr_bits(cand, args, pts, exact)
            if bits <= best + 1e-9:  # (a tie goes to more terms: a longer exact reach)
                best, choice = bits, (approx, _region(x, at, reach))
        if choice is not None:
            pieces.append(choice)
            form = sp.Piecewise(*pieces, (base, True))
            scored.append((best, form))
    return scored


# ---------------------------------------------------------------- candidates


def _size(expr: sp.Expr, limit: int = 1 << 30) -> int:
    """Return the number of distinct nodes of ``expr``, or ``limit + 1`` as soon as it is
    known to exceed ``limit`` (a deep spec's tree is not walked whole)."""
    seen: set = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if len(seen) > limit:
            return limit + 1
        stack.extend(node.args)
    return len(seen)


def _rewritten(node: sp.Expr) -> list[sp.Expr]:
    """Return ``node`` over one denominator (together, cancel), as it is and with the
    stabilizing identities applied to it (bounded in size)."""
    out = []
    if _size(node) > SERIES_NODES:
        return out
    for move in (sp.together, sp.cancel):
        try:
            moved = move(node)
            forms = (moved, stabilize(moved))
        except Exception:  # noqa: BLE001 - a form sympy cannot bring together: no candidate
            continue
        out.extend(new for new in forms if new != node and new not in out)
    return out


def candidates(spec, form: str, base: sp.Expr, series: Series, *, args, pts, exact):
    """Return (sampled bits, form) of every candidate for ``form``, best first."""
    x = spec.wrt
    found = [(_expr_bits(base, args, pts, exact), 0, base)]

    def add(expr):
        found.append((_expr_bits(expr, args, pts, exact), len(found), expr))

    whole = {at: series.of(form, at) for at in _tails(spec)}
    if _size(base) <= LOCAL_NODES:
        for _, node in local_errors(base, args, pts)[:LOCALIZED]:
            for new in _rewritten(node):
                add(base.xreplace({node: new}))
            if (
                node != base
                and _size(node, SERIES_NODES_NEAR_0) <= SERIES_NODES_NEAR_0
                and node.free_symbols == {x}
            ):
                plain, limit = _unclamped(node, x)
                near = {"0": _series(plain, x, "0", 2 * MAX_TERMS + 1)}
                exact_node = _node_exact(node, args, pts)
                for bits, split in _regimes(node, x, near, args, pts, exact_node, cap=limit):
                    del bits
                    add(base.xreplace({node: split}))
    # regime splits of the written form and of the best rewrite found: a tail's series
    # where its terms are exact, the form elsewhere
    rewrite = min(found, key=lambda t: (t[0], t[1]))[2]
    for start in (base, rewrite) if rewrite is not base else (base,):
        for bits, split in _regimes(start, x, whole, args, pts, exact):
            found.append((bits, len(found), split))
    found.sort(key=lambda t: (t[0], t[1]))
    return [(bits, expr) for bits, _, expr in found]


def _unclamped(node: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, float]:
    """Return ``node`` with the branch clamps ``Min(c, x)`` (c > 0) and ``Max(c, x)`` (c < 0)
    that ``rewrite._clamp_branches`` puts into a Piecewise branch replaced by x, and the
    |x| below which that changes nothing (the smallest |c|; inf where there is none): the
    clamped branch's series near 0 is the plain form's."""
    limit, plain = math.inf, {}
    for m in node.atoms(sp.Min, sp.Max):
        if len(m.args) != 2 or x not in m.args:
            continue
        (c,) = (a for a in m.args if a != x)
        if c.is_Number and (c > 0 if isinstance(m, sp.Min) else c < 0):
            plain[m] = x
            limit = min(limit, abs(float(c)))
    return node.xreplace(plain), limit


def _node_exact(node, args, pts) -> list[float]:
    """Return ``node`` at ``pts`` in mpmath, rounded to float64 (0.0 where it is undefined or
    not finite), with the reference's digits raised while a sum cancels (``_enough_digits``):
    at 50 digits, 1 - tanh(x)**2 - tanh(x)/x is 0 for |x| < 1e-25, where its series is what
    the search is looking for."""
    from symgrad.compiler.evaluate import evaluate

    def at(*values):
        return evaluate(node, dict(zip(args, values, strict=True)), EXACT)

    out = []
    for p in pts:
        try:
            value, _ = _enough_digits(at, tuple(map(mpmath.mpf, p)))
            v = math.nan if value is None else float(value)
        except Exception:  # noqa: BLE001
            v = math.nan
        out.append(v if math.isfinite(v) else 0.0)
    return out


# ---------------------------------------------------------------- the hook


#: Values of the differentiated input the trigger adds to safe mode's: a typical tiny and a
#: typical huge float64 (most bit patterns are one or the other).
EXTREMES = (1e-200, -1e-200, 1e20, -1e20, 1e200, -1e200)


def _extremes(spec) -> list[tuple[float, ...]]:
    from symgrad.compiler.check import points

    low, high = _RANGE.get(spec.domain(spec.wrt.name), (-math.inf, math.inf))
    return points(spec, [x for x in EXTREMES if low <= x <= high])[: len(EXTREMES)]


def needs_search(spec, module, ref: Reference, hyper, work: SearchWork) -> set[str]:
    """Return the forms of ``spec`` whose emitted function (in trial ``module``) has more than
    ``TRIGGER_BITS`` bits of error at a safe-mode point (whose exact values are known by now)
    or at one of ``EXTREMES`` (a few reference evaluations more per spec)."""
    from symgrad.compiler.check import points, random_points

    out = set()
    extremes = _extremes(spec)
    for form in _FORMS:
        if form in ref.forms:
            for p in extremes:
                exact_at(ref, form, p, hyper, work)
    pts = points(spec) + random_points(spec) + extremes
    for suffix, forms in checked_functions(spec, ref.forms):
        fn = getattr(module, spec.name + suffix, None)
        if fn is None:
            continue
        for i, form in enumerate(forms):
            if form in out or form not in _FORMS:
                continue
            known = [(p, ref.exact_cache.get((form, p))) for p in pts]
            known = [(p, float(e)) for p, e in known if e is not None]
            known = [
                (p, e) for p, e in known if math.isfinite(e) and not ref.near_switch((*p, *hyper))
            ]
            if not known:
                continue
            got = _module_values(fn, spec, [p for p, _ in known], i)
            if any(
                _breaks_contract(ref, form, p, hyper, g, e, work=work)
                for g, (p, e) in zip(got, known, strict=True)
            ):
                out.add(form)
    return out


def _breaks_contract(ref: Reference, form: str, point, hyper, got: float, exact: float, *, work):
    """Tell whether ``got`` is outside the stronger contract (``check.breaks_contract``, its
    condition number charged to the search's ``work``); where that number is out of the
    budget's reach, more than ``TRIGGER_BITS`` bits."""
    broken = breaks_contract(ref, form, point, hyper, got, exact, charge=work.charge)
    return _scored(got, exact) > TRIGGER_BITS if broken is None else broken


@dataclasses.dataclass
class _Search:
    """One spec's search: its reference, budget, and the current plans and failures."""

    spec: Spec
    ref: Reference
    work: SearchWork
    plans: dict
    failures: dict
    module: ModuleType
    derived: Derived
    check: Callable
    plan: Callable
    trial: Callable

    @property
    def hyper(self) -> list:
        return [v for _, v in self.spec.hyper]

    def functions(self, form: str) -> dict[str, int]:
        """Return each checked function returning ``form``: its name -> output index."""
        out = {}
        for suffix, forms in checked_functions(self.spec, self.ref.forms):
            if form in forms:
                out[self.spec.name + suffix] = forms.index(form)
        return out

    def measured(self, module, names: dict[str, int], pts, exact) -> float:
        """Return the worst mean bits of error of ``names`` in ``module`` at ``pts``."""
        return max(
            _mean_bits(_module_values(getattr(module, n), self.spec, pts, i), exact)
            for n, i in names.items()
        )

    def form(self, form: str, series) -> None:
        """Search one form; keep the best candidate that passes safe mode."""
        spec = self.spec
        pts, exact = [], []
        for p in sample_points(spec):
            e = exact_at(self.ref, form, p, self.hyper, self.work)
            if e is not None:
                pts.append(p)
                exact.append(e)
        base = getattr(self.derived, form)
        names = self.functions(form)
        if len(pts) < 4 or base is None or not names:
            return
        failing = any(n in self.failures for n in names)
        current = self.measured(self.module, names, pts, exact)
        args = [*spec.inputs, *(s for s, _ in spec.hyper)]
        full = [(*p, *self.hyper) for p in pts]
        ranked = candidates(spec, form, base, series, args=args, pts=full, exact=exact)
        for bits, expr in ranked[:VALIDATED]:
            if bits > current - MIN_GAIN and not failing:
                return
            derived = dataclasses.replace(self.derived, **{form: expr})
            lowered = self.plan(derived)
            mixed = {
                target: [
                    {q.name: q for q in lowered[target]}.get(p.name, p) if p.name in names else p
                    for p in pl
                ]
                for target, pl in self.plans.items()
            }
            if self.check(mixed, list(names)):
                continue  # (safe mode rejects it: the next candidate)
            module = self.trial(mixed["numpy"])
            if failing or self.measured(module, names, pts, exact) <= current - MIN_GAIN:
                self.plans, self.module, self.derived = mixed, module, derived
                for n in names:
                    self.failures.pop(n, None)
                return


def improve(  # noqa: PLR0913
    spec: Spec,
    plans: dict,
    failures: dict,
    ref: Reference,
    config: CodegenConfig,
    *,
    trial: Callable,
    check: Callable,
    plan: Callable,
) -> tuple[dict, dict]:
    """Return ``plans`` with each searched function replaced by the best candidate that passes
    safe mode, and the failures left. ``trial(plans)`` renders the numpy trial module,
    ``check(plans, names)`` is safe mode's check of those functions (its failures),
    ``plan(derived)`` lowers a Derived for every target."""
    if spec.class_axis or spec.role not in ("activation", "loss", "regularizer"):
        return plans, failures
    if _size(spec.expr, SEARCHED_NODES) > SEARCHED_NODES:
        # (a large spec keeps what the levels gave: localizing it costs more than it finds)
        return plans, failures
    hyper = [v for _, v in spec.hyper]
    module = trial(plans["numpy"])
    work = SearchWork(ref, SEARCH_WORK)
    forms = needs_search(spec, module, ref, hyper, work)
    for suffix, returned in checked_functions(spec, ref.forms):
        if spec.name + suffix in failures:
            forms.update(f for f in returned if f in _FORMS)
    if not forms:
        return plans, failures
    with budget("search", config.rewrite_s):
        derived = derive_kernel(spec, STABLE, config)
        state = _Search(spec, ref, work, plans, dict(failures), module, derived, check, plan, trial)
        alone = spec.expr.free_symbols == {spec.wrt}  # (a series in x with symbols is no help)
        series = Series(spec) if alone and _size(spec.expr) <= SERIES_NODES else _NoSeries()
        for form in sorted(forms, key=_FORMS.index):
            state.form(form, series)
    return state.plans, state.failures


class _NoSeries:
    def of(self, form: str, at: str) -> None:
        return None
