"""Exact rewrites that keep emitted code finite: canonical primitives before differentiating,
stable forms after, and the lowering of primitives into expressions numpy evaluates safely.

The order matters and follows Theano's lesson: differentiate the plain (smooth) form, then
stabilize the result. Only identities are applied, never approximations.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.numpy_nodes import logaddexp

from symgrad.compiler.config import DEFAULT
from symgrad.compiler.primitives import (
    N_CLASSES,
    Abs,
    axis_max,
    axis_sum,
    logsumexp,
    ncdf,
    ordered_sum,
    sigmoid,
    sign,
    softplus,
    step,
    where,
    xdivy,
    xlogy,
)
from symgrad.compiler.tails import factor_tails
from symgrad.compiler.tails import one_minus_sigmoid as _one_minus_sigmoid
from symgrad.compiler.traverse import (
    bottom_up,
    expanded_terms,
    is_zero,
    replace_types,
    tree_size,
)

# ---------------------------------------------------------------- before differentiating


def _exp_offset(add: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (c, w) when ``add`` is c + b exp(u) = c (1 + exp(-w)) with numbers c, b > 0;
    b exp(u) may also carry positive factors whose logs are exact (``_exact_log``: sigmoid
    powers, powers of such sums): 1/(1 + exp(-x) sigmoid(v)) is sigmoid(x + softplus(-v)),
    finite in both tails (its second derivative was inf at x = -700, fuzz seed 15025, as a
    quotient of exp(-x) powers; (exp(x) + 1) exp(-x - 2) at seed 17006 likewise)."""
    if not (add.is_Add and len(add.args) == 2):
        return None
    for c, other in (add.args, add.args[::-1]):
        b, rest = other.as_coeff_Mul()
        if not (c.is_Number and c.is_positive and b.is_positive):
            continue
        factors = sp.Mul.make_args(rest)
        exps = [f for f in factors if isinstance(f, sp.exp)]
        if len(exps) != 1:
            continue
        logs = [_exact_log(f) for f in factors if f is not exps[0]]
        if None not in logs:
            u = exps[0].args[0] + sp.Add(*logs)
            return c, -u - sp.log(b / c) if b != c else -u
    return None


def _exact_log(f: sp.Expr) -> sp.Expr | None:
    """Return log(f) for a factor A**m with a real number m and A = sigmoid(v) (log A =
    -softplus(-v)) or A = c + b exp(u) = c (1 + exp(-w)) (log A = log c + softplus(-w)), or
    for a positive constant (1/(1 + log(cosh(2))**2)), else None."""
    if f.is_number:
        value = f.evalf(30)  # (sympy cannot tell the sign of sigmoid(2) symbolically)
        return sp.log(f) if value.is_Number and value > 0 else None
    base, m = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
    if not (m.is_number and m.is_real):
        return None
    if isinstance(base, sigmoid):
        return -m * softplus(-base.args[0])
    found = _exp_offset(base)
    if found is None:
        return None
    c, w = found
    return m * (sp.log(c) + softplus(-w))


def _sigmoid_power(e: sp.Expr) -> sp.Expr | None:
    """``(c + b exp(u))**-k -> c**-k sigmoid(-u - log(b/c))**k`` for k > 0 or symbolic (a
    hyper-parameter's power): 1/(1 + exp(-u)), (1 + exp(-u))**-2, 1/(2 + exp(-u)) and
    (1 + exp(-u))**-gamma are sigmoid powers, finite in both tails."""
    if not e.is_Pow or e.exp.is_nonnegative:
        return None
    found = _exp_offset(e.base)
    if found is None:
        return None
    c, w = found
    return c**e.exp * sigmoid(w) ** -e.exp


def _sigmoid_factor(f: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (v, k) for a factor sigmoid(v)**k (k = 1 for sigmoid(v) itself)."""
    if isinstance(f, sigmoid):
        return f.args[0], sp.S.One
    if f.is_Pow and isinstance(f.base, sigmoid):
        return f.base.args[0], f.exp
    return None


def _multiple(a: sp.Expr, w: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (m, d) with a = m w + d, m free of w's symbols and d a number (2x = 2 * x,
    gamma x = gamma * x, x + log 2 = x + log 2), else None."""
    m = a / w
    if not is_zero(m) and not m.free_symbols & w.free_symbols:
        return m, sp.S.Zero
    # a = m w + d for a number m: m is the ratio of the terms holding symbols (2 Max(0, x) + 4
    # = 2 (Max(0, x) + 2 + c) - 2c, as sympy's derivative leaves a sigmoid's exp factor)
    wa = [t for t in sp.Add.make_args(sp.expand(w)) if not t.is_number]
    aa = [t for t in sp.Add.make_args(sp.expand(a)) if not t.is_number]
    if len(wa) != len(aa) or not wa:
        return None
    m = aa[0] / wa[0]
    if not m.is_number or m == 0:
        return None
    d = sp.expand(a - m * w)
    return (m, d) if d.is_number else None


def _exp_times_sigmoid(e: sp.Expr) -> sp.Expr | None:
    """``exp(m w) sigmoid(-w)**k -> sigmoid(w)**m sigmoid(-w)**(k - m)`` (an exact identity:
    sigmoid(w) / sigmoid(-w) = exp(w)): exp(u) / (1 + exp(u)) and exp(2x) / (exp(x) + 1)**2
    are sigmoid(u) and sigmoid(x)**2, which never overflow. Where k - m or m is negative the
    new form grows exactly as fast as the old one in each tail, so it is never worse; not for
    a number |m| < 1, where sigmoid(w) under- or overflows first (exp(-|x|) sigmoid(2|x|), the
    sech form, was sqrt(sigmoid(-2|x|)) sqrt(sigmoid(2|x|)): 0 beyond |x| = 373)."""
    if not e.is_Mul:
        return None
    for ex in (a for a in e.args if isinstance(a, sp.exp)):
        for f in e.args:
            found = _sigmoid_factor(f)
            if found is None:
                continue
            v, k = found
            w = -v
            mm = _multiple(ex.args[0], w)
            if mm is None:
                continue
            m, d = mm
            if m.is_number and abs(m) < 1:
                continue  # sigmoid(w) underflows before exp(m w) does (|m| < 1): not that
            rest = [a for a in e.args if a is not ex and a is not f]
            return sp.Mul(*rest) * sp.exp(d) * sigmoid(w) ** m * sigmoid(v) ** (k - m)
    return None


def _exp_polynomial_quotient(e: sp.Expr) -> sp.Expr | None:
    """``P(exp(u)) / Q(exp(u)) -> (P/g)(exp(u)) / (Q/g)(exp(u))`` for the common factor g of
    two polynomials in t = exp(u) (``(exp(2x) - 1)/(exp(x) - 1) = exp(x) + 1``): the factor
    cancels near its root (both sums round to a few ulps of 0) and its derivatives cancel
    again; the quotient without it does not. The removable point (x = 0) gets its limit."""
    if not e.is_Mul:
        return None
    dens = [f for f in e.args if f.is_Pow and f.exp.is_negative and f.base.is_Add]
    nums = [f for f in e.args if f.is_Add]
    if len(dens) != 1 or len(nums) != 1:
        return None
    found = _in_powers_of_exp(sp.Tuple(nums[0], dens[0].base))
    if found is None:
        return None
    (num, den), t, u = found
    if not (num.is_polynomial(t) and den.is_polynomial(t)):
        return None
    g = sp.gcd(num, den)
    if not g.has(t):
        return None
    rest = [f for f in e.args if f is not dens[0] and f is not nums[0]]
    quotient = sp.cancel(num / g) * sp.cancel(den / g) ** dens[0].exp
    return sp.Mul(*rest) * quotient.xreplace({t: sp.exp(u)})


def _canonical_rule(e: sp.Expr) -> sp.Expr:
    out = _sigmoid_power(e) or _exp_polynomial_quotient(e)
    if out is not None:
        return out
    out = _log_scaled_softplus(e) or _linear_plus_log_cosh(e)
    if out is not None:
        return out
    out = _exp_times_sigmoid(e)
    if out is not None:
        return out
    out = _one_minus_sigmoid(e)
    return e if out is None else out


def _linear_plus_log_cosh(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum: ``c u + c log(cosh(u)) -> c L(u)`` and ``c log(cosh(u)) - c u -> c L(-u)``
    for a number c, with L(v) = log((1 + exp(2v)) / 2): ``log1p(expm1(2v) / 2)`` for v < 1/2,
    ``softplus(2v) - log 2`` above. The written sum cancels to the last digits where log cosh
    is about -u (``-0.75 w - 0.75 log(cosh(w))`` at w = -30: 22.5 - 22.5 + 0.52), and its
    derivative ``1 + tanh(u)`` rounds to 0 from u = -19 on."""
    if not e.is_Add:
        return None
    for term in e.args:
        c, f = term.as_coeff_Mul()
        if not (isinstance(f, sp.log) and isinstance(f.args[0], sp.cosh)):
            continue
        u = f.args[0].args[0]
        others = [a for a in e.args if a is not term]
        for side in (1, -1):
            linear = [t for t in sp.Add.make_args(sp.expand(side * c * u)) if t.free_symbols]
            if linear and all(t in others for t in linear):
                v = side * u
                small = log1p(expm1(2 * sp.Min(v, sp.S.Half)) / 2)
                form = sp.Piecewise((small, v < sp.S.Half), (softplus(2 * v) - sp.log(2), True))
                return sp.Add(*others) - side * c * u + c * form
    return None


def _log_scaled_softplus(e: sp.Expr) -> sp.Expr | None:
    """``log(a + b exp(u)) -> log(a) + softplus(u + log(b/a))`` for numbers a, b > 0 (a = b = 1
    is plain softplus): the written form overflows exp(u) where the value is about u, e.g.
    ``log(0.5625 exp(2 exp(x)) + 1)`` is inf at x = 6, where it is 806.3."""
    if not (isinstance(e, sp.log) and e.args[0].is_Add and len(e.args[0].args) == 2):
        return None
    a, rest = e.args[0].as_coeff_Add()
    b, power = rest.as_coeff_Mul()
    if not (isinstance(power, sp.exp) and a.is_positive and b.is_positive):
        return None
    return sp.log(a) + softplus(power.args[0] + sp.log(b / a))


def canonicalize(expr: sp.Expr, smooth: bool = True) -> sp.Expr:
    """Recognise plain spellings of smooth primitives (sigmoid, softplus) in a spec.

    Abs and sign become real-argument versions: every intermediate value of a spec is real,
    which sympy cannot prove for, say, |log x|, and would otherwise differentiate through re/im.
    With ``smooth=False`` only that is done.
    """
    expr = replace_types(replace_types(expr, {sp.Abs: Abs}), {sp.sign: sign})
    return bottom_up(expr, _canonical_rule) if smooth else expr


# ---------------------------------------------------------------- after differentiating


def _cancel_xdivy(e: sp.Expr) -> sp.Expr:
    """xdivy(a, b) * b -> a: the derivative of xlogy(a, b(z)) times b's own derivative."""
    if not e.is_Mul:
        return e
    args = list(e.args)
    for q in [a for a in args if isinstance(a, xdivy)]:
        num, den = q.args
        if den in args:
            args.remove(q)
            args.remove(den)
            return _cancel_xdivy(sp.Mul(num, *args))
    return e


def _per_class(e: sp.Expr, elementwise: frozenset) -> bool:
    """Tell whether ``e`` varies along the class axis: an array input outside any reduction."""
    if isinstance(e, axis_sum | axis_max | logsumexp):
        return False
    if e.is_Symbol:
        return e in elementwise
    return any(_per_class(a, elementwise) for a in e.args)


def _axis_sum_linear(e: sp.Expr, elementwise: frozenset) -> sp.Expr:
    """Split sums and pull per-sample factors out of axis_sum, so gradients read as p - y."""
    if not isinstance(e, axis_sum):
        return e
    arg = sp.expand(e.args[0], power_exp=False, power_base=False, log=False)
    terms = sp.Add.make_args(arg)
    out = []
    for term in terms:
        inner, outer = [], []
        for f in sp.Mul.make_args(term):
            (inner if _per_class(f, elementwise) else outer).append(f)
        if inner:
            out.append(sp.Mul(*outer) * axis_sum(sp.Mul(*inner)))
        else:
            out.append(sp.Mul(*outer) * N_CLASSES)
    return sp.Add(*out)


def _hyperbolic_degree(term: sp.Expr, u: sp.Expr) -> sp.Expr:
    """Return the total power of sinh(u) and cosh(u) in the product ``term`` (0 if none)."""
    powers = term.as_powers_dict()
    return powers.get(sp.sinh(u), sp.S.Zero) + powers.get(sp.cosh(u), sp.S.Zero)


def _spread_sech(e: sp.Expr, powers: dict) -> sp.Expr | None:
    """``cosh(u)**k * (A + B + ...) -> cosh(u)**(k + j) * (A cosh(u)**-j + B cosh(u)**-j ...)``
    for k < 0, where every term carries sinh(u) and cosh(u) to a whole power >= j > 0: each
    term's quotient is then a tanh form (_hyperbolic), where the sum itself overflows on its
    way to a finite result (sqrt(cosh(w)**2 + 1)'' = (sinh**2 + cosh**2 - ...)/cosh ... NaN at
    w = 700)."""
    for base, k in powers.items():
        if not (isinstance(base, sp.cosh) and k.is_Rational and k < 0):
            continue
        u = base.args[0]
        for f in e.args:
            if not f.is_Add:
                continue
            degrees = [_hyperbolic_degree(t, u) for t in f.args]
            if not all(d.is_Integer and d > 0 for d in degrees):
                continue
            j = min(-k, *degrees)
            terms = sp.Add(*(_hyperbolic(t * base**-j) for t in f.args))
            return _hyperbolic(e / f / base**-j * terms)
    return None


def _hyperbolic_sum_power(e: sp.Expr) -> sp.Expr | None:
    """``(a sinh(u) + b cosh(u) + c)**p -> cosh(u)**p (a tanh(u) + b + c/cosh(u))**p`` for
    p < 0 (cosh > 0, so for any p): the powers of cosh then merge with the product's, where
    the sinh/cosh rules reach them (1/(sinh(x) + erf(2))'' = 2 cosh(x)**2/(sinh(x) + c)**3 -
    ... was -inf at -700, where it is -6.2e-306)."""
    base, p = e.base, e.exp
    if not (base.is_Add and p.is_number and p.is_negative):
        return None
    us = set()
    for term in base.args:
        k, rest = term.as_coeff_Mul()
        if isinstance(rest, sp.sinh | sp.cosh):
            us.add(rest.args[0])
        elif not rest.is_number:
            return None
    if len(us) != 1:
        return None
    u = us.pop()
    scaled = base.xreplace({sp.sinh(u): sp.tanh(u), sp.cosh(u): sp.S.One})
    constant = sp.Add(*(t for t in base.args if t.is_number))
    scaled = scaled - constant + constant / sp.cosh(u)
    return sp.cosh(u) ** p * scaled**p


def _hyperbolic(e: sp.Expr) -> sp.Expr:
    """sinh(u)**m / cosh(u)**k -> tanh(u)**min(m, k) * ..., and cosh(u)**m / sinh(u)**k ->
    tanh(u)**-min(m, k) * ... (for a fractional k, tanh(u)**m * cosh(u)**(m - k)): tanh never
    overflows, sinh and cosh do."""
    if e.is_Pow:
        return _hyperbolic_sum_power(e) or e
    if not e.is_Mul:
        return e
    powers = e.as_powers_dict()
    spread = _spread_sech(e, powers)
    if spread is not None:
        return spread
    for base, k in powers.items():
        if isinstance(base, sp.cosh) and k.is_Rational and not k.is_Integer and k < 0:
            # sinh(u)**m * cosh(u)**k with a fractional k (the derivatives of sqrt(cosh u)):
            # tanh(u)**m * cosh(u)**(m + k), sinh's whole power gone (m an integer: tanh**m
            # is real for u < 0 as sinh**m is)
            u = base.args[0]
            m = powers.get(sp.sinh(u), 0)
            if m and m.is_Integer and m > 0:
                rest = e / (sp.sinh(u) ** m * base**k)
                return _hyperbolic(rest * sp.tanh(u) ** m * sp.cosh(u) ** (m + k))
        if isinstance(base, sp.cosh | sp.sinh) and k.is_Integer and k < 0:
            u = base.args[0]
            other = sp.sinh(u) if isinstance(base, sp.cosh) else sp.cosh(u)
            m = powers.get(other, 0)
            if m and m.is_Integer and m > 0:
                j = min(m, -k)
                rest = e / (other**j * base**-j)
                ratio = sp.tanh(u) if isinstance(base, sp.cosh) else 1 / sp.tanh(u)
                return _hyperbolic(rest * ratio**j)
    return e


def split_axis_sums(expr: sp.Expr, elementwise: frozenset) -> sp.Expr:
    """Apply axis_sum's linearity everywhere: sum(c*y*z) -> c*sum(y*z), sum(a + b) -> ..."""
    return bottom_up(expr, lambda e: _axis_sum_linear(e, elementwise))


#: Above this many operations, tidy() no longer tries expanding (every built-in's gradient is
#: far below it; deep compositions are far above and would grow exponentially).
EXPAND_LIMIT = DEFAULT.expand_limit


#: ... and above this many nodes written out as a tree, it only applies the memoized rules.
TIDY_NODES = 4000


def tidy(expr: sp.Expr, elementwise: frozenset = frozenset()) -> sp.Expr:
    """Cancel, expand and collect a derived expression; keep the variant with fewest operations."""
    expr = bottom_up(bottom_up(expr, _cancel_xdivy), _hyperbolic)
    if tree_size(expr, TIDY_NODES + 1) > TIDY_NODES:
        # powsimp and count_ops walk the tree, exponential in a composition's depth
        return bottom_up(expr, lambda e: _axis_sum_linear(e, elementwise)) if elementwise else expr
    expr = sp.powsimp(expr, combine="exp")
    if elementwise:
        expr = bottom_up(expr, lambda e: _axis_sum_linear(e, elementwise))
    if sp.count_ops(expr) > EXPAND_LIMIT:
        return expr  # expanding a product of n sums makes 2**n terms: keep the factored form
    if expanded_terms(expr) > DEFAULT.expand_terms:
        return expr  # (a + b)**10 / products of sums: the expansion would be huge and slow
    candidates = [expr]
    expanded = sp.expand(expr, power_exp=False, power_base=False, log=False)
    expanded = bottom_up(expanded, _cancel_xdivy)
    candidates.append(expanded)
    candidates.append(sp.factor_terms(expanded))
    return min(candidates, key=sp.count_ops)


def _exp_erf_offset(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum: ``c exp(u) - c -> c expm1(u)``; ``c erf(u) + c -> 2c ncdf(sqrt(2) u)``;
    ``c erf(u) - c -> -c erfc(u)`` (the first term that matches, in argument order)."""
    if not e.is_Add:
        return None
    args = list(e.args)
    for a in args:
        coeff, rest = a.as_coeff_Mul()
        if isinstance(rest, sp.exp) and -coeff in args:
            args.remove(a)
            args.remove(-coeff)
            return sp.Add(*args) + coeff * expm1(rest.args[0])
        if isinstance(rest, sp.erf) and coeff in args:
            args.remove(a)
            args.remove(coeff)
            return sp.Add(*args) + 2 * coeff * ncdf(sp.sqrt(2) * rest.args[0])
        if isinstance(rest, sp.erf) and -coeff in args:
            args.remove(a)
            args.remove(-coeff)
            return sp.Add(*args) - coeff * sp.erfc(rest.args[0])
    return None


def _simpler(difference: sp.Expr, than: sp.Expr) -> bool:
    """Tell whether ``difference`` (of two nearly equal operands) is a number or smaller than
    ``than``: only then does writing it out remove the cancellation."""
    return not is_zero(difference) and (
        difference.is_number or sp.count_ops(difference) < sp.count_ops(than)
    )


_ROOT_POWERS = (sp.S.Half, -sp.S.Half, sp.S.NegativeOne)


def _powered(term: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """Return (k, A, p) for a term k * A**p with p in 1/2, -1/2, -1, else None."""
    k, rest = term.as_coeff_Mul()
    if rest.is_Pow and rest.exp in _ROOT_POWERS and not rest.base.is_Number:
        return k, rest.base, rest.exp
    return None


def _conjugate(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum, where A - B is simpler than A (sqrt(x + 1) - sqrt(x), sqrt(1 + u**2) - 1,
    1/(x + 1) - 1/x), a difference of nearly equal powers becomes one that does not cancel:
    ``k sqrt(A) - k sqrt(B) -> k (A - B) / (sqrt(A) + sqrt(B))`` (a number c is sqrt(c**2)),
    ``k / sqrt(A) - k / sqrt(B) -> k (B - A) / (sqrt(A) sqrt(B) (sqrt(A) + sqrt(B)))`` and
    ``k / A - k / B -> k (B - A) / (A B)``."""
    if not e.is_Add or len(e.args) > 8:
        return None
    powered = [(a, _powered(a)) for a in e.args]
    powered = [(a, f) for a, f in powered if f is not None]
    numbers = [a for a in e.args if a.is_Number]
    for i, (a, (k, base_a, p)) in enumerate(powered):
        pairs = [(b, f[1]) for b, f in powered[i + 1 :] if f[0] == -k and f[2] == p]
        if p == sp.S.Half:  # k sqrt(A) + c with c = -k sqrt(c**2 / k**2)
            pairs += [(c, (c / k) ** 2) for c in numbers if (c / -k).is_positive]
        for b, base_b in pairs:
            d = sp.expand(base_a - base_b)
            if not _simpler(d, base_a):
                continue
            if p == sp.S.Half:
                new = k * d / (sp.sqrt(base_a) + sp.sqrt(base_b))
            elif p == -sp.S.Half:
                ra, rb = sp.sqrt(base_a), sp.sqrt(base_b)
                new = -k * d / (ra * rb * (ra + rb))
            else:
                new = -k * d / (base_a * base_b)
            rest = [t for t in e.args if t is not a and t is not b]
            return sp.Add(*rest) + new
    return None


#: Sums of rational functions larger than this (count_ops) are left to the other rules.
RATIONAL_OPS = 60


def _rational_sum(e: sp.Expr) -> sp.Expr | None:
    """A sum of rational functions of one symbol z whose numerator over the common
    denominator has lower degree than its terms' (1/(x + 1) - 2/x + 1/(x - 1) =
    2 / ((x + 1) x (x - 1)); the derivatives of log((1 - x)/(1 + x))): the terms cancel, the
    factored quotient does not. A regime split by |z|: beyond FAR_FRACTIONS every polynomial
    factor is divided by its leading power of z (2 x**-3 (1 - 1/x)**-1 (1 + 1/x)**-1), so no
    product of factors overflows before the quotient underflows."""
    if not (e.is_Add or e.is_Mul) or len(e.free_symbols) != 1:
        return None
    if sp.count_ops(e) > RATIONAL_OPS:
        return None
    (z,) = e.free_symbols
    if e.is_rational_function(z):
        return _factored_quotient(e, z)
    found = _in_powers_of_exp(e)  # the same in t = exp(u): exp(x)/(exp(x) - 1)'
    if found is None:
        return None
    et, t, u = found
    out = _factored_quotient(et, t) if et.is_rational_function(t) else None
    return None if out is None else out.xreplace({t: sp.exp(u)})


def _in_powers_of_exp(e: sp.Basic) -> tuple[sp.Basic, sp.Dummy, sp.Expr] | None:
    """Return (e with each exp(k u) written t**k, t, u) for whole k (|k| <= 8), where u is
    the argument of smallest coefficient and t a new dummy, or None (no exp, or one whose
    argument is not a whole multiple of u, or u's symbols outside the exps)."""
    exps = list(e.atoms(sp.exp))
    if not exps:
        return None
    u = min(
        (a.args[0] for a in exps),
        key=lambda a: (abs(a.as_coeff_Mul()[0]), sp.default_sort_key(a)),
    )
    t = sp.Dummy("t")
    powers = {}
    for a in exps:
        k = a.args[0] / u
        if not (k.is_Integer and 0 < abs(k) <= 8):
            return None
        powers[a] = t**k
    out = e.xreplace(powers)
    return None if out.has(*u.free_symbols) else (out, t, u)


def _factored_quotient(e: sp.Expr, z: sp.Symbol) -> sp.Expr | None:
    """_rational_sum for an ``e`` known to be a rational function of ``z``."""
    num, den = sp.cancel(sp.together(e)).as_numer_denom()
    if not den.has(z) or is_zero(num):
        return None
    num, den = sp.factor(num), sp.factor(den)
    # the factored quotient is taken where the sum cancels (its numerator's degree drops) or
    # where it is far smaller (log((1 - x)/(1 + x))'' is -4x / ((x - 1)**2 (x + 1)**2))
    if 2 * sp.count_ops(num / den) > sp.count_ops(e):
        if e.is_Mul:  # a product holding such a sum: the whole product, factored
            sums = [f.base if f.is_Pow else f for f in e.args]
            if not any(f.is_Add and _cancelling_sum(f, z) for f in sums):
                return None
        elif not _cancelling_sum(e, z):
            return None
    near = num / den
    # far from 0: each polynomial factor over its leading power of z, one power of z left
    far = sp.S.One
    power = 0
    for f in (*sp.Mul.make_args(num), *(1 / g for g in sp.Mul.make_args(den))):
        base, m = (f.base, f.exp) if f.is_Pow and f.exp.is_Integer else (f, sp.S.One)
        d = sp.degree(base, z) if base.has(z) else 0
        power += d * m
        far *= sp.expand(base * z**-d) ** m
    return sp.Piecewise((far * z**power, sp.Abs(z) > FAR_FRACTIONS), (near, True))


def _is_size_split(e: sp.Expr) -> bool:
    """Tell whether ``e`` is _rational_sum's regime split (its branches are final)."""
    return (
        isinstance(e, sp.Piecewise)
        and isinstance(e.args[0][1], sp.StrictGreaterThan)
        and e.args[0][1].rhs == FAR_FRACTIONS
    )


def _cancelling_sum(e: sp.Add, z: sp.Symbol) -> bool:
    """Tell whether a sum of rational functions of ``z`` has a numerator, over the common
    denominator, of lower degree than its terms': the terms cancel."""
    if not any(t.as_numer_denom()[1].has(z) for t in e.args):
        return False
    num, den = sp.cancel(sp.together(e)).as_numer_denom()
    if not den.has(z) or is_zero(num):
        return False
    parts = [sp.cancel(t * den) for t in e.args]
    if not all(p.is_polynomial(z) for p in parts):
        return False
    return sp.degree(num, z) < max(sp.degree(p, z) for p in parts)


#: Beyond this |z|, _rational_sum divides each polynomial by its leading power of z
#: (1 - 1/z has no cancellation there; near a pole it would).
FAR_FRACTIONS = 2**20


def _trig_hyperbolic_offsets(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum: ``c - c cos(u) -> 2c sin(u/2)**2``, ``c exp(u) - c exp(-u) -> 2c sinh(u)``
    and ``c exp(u) + c exp(-u) - 2c -> 4c sinh(u/2)**2``: each difference cancels near u = 0,
    the product form keeps every digit."""
    if not e.is_Add:
        return None
    args = list(e.args)
    numbers = [a for a in args if a.is_Number]
    for a in args:
        c, rest = a.as_coeff_Mul()
        if isinstance(rest, sp.cos) and -c in numbers:
            others = [t for t in args if t is not a and t != -c]
            return sp.Add(*others) - 2 * c * sp.sin(rest.args[0] / 2) ** 2
        if isinstance(rest, sp.exp):
            u = rest.args[0]
            mirror = [t for t in args if t is not a and t.as_coeff_Mul() == (c, sp.exp(-u))]
            anti = [t for t in args if t is not a and t.as_coeff_Mul() == (-c, sp.exp(-u))]
            if mirror and -2 * c in numbers:
                others = [t for t in args if t not in (a, mirror[0], -2 * c)]
                return sp.Add(*others) + 4 * c * sp.sinh(u / 2) ** 2
            if anti and u.could_extract_minus_sign() is False:
                others = [t for t in args if t not in (a, anti[0])]
                return sp.Add(*others) + 2 * c * sp.sinh(u)
    return None


def _power_offset(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum, ``k A**n - k -> -k (1 - A) (1 + A + ... + A**(n - 1))`` for a whole
    n in 2..8 where 1 - A is simpler than A (Tukey's 1 - (1 - w)**3 = w (1 + (1 - w) +
    (1 - w)**2)): the difference cancels where A is near 1, the product does not."""
    if not e.is_Add or len(e.args) > 8:
        return None
    for term in e.args:
        k, rest = term.as_coeff_Mul()
        if not (rest.is_Pow and rest.base.is_Add and rest.exp.is_Integer):
            continue
        n = int(rest.exp)
        if not 2 <= n <= 8 or -k not in e.args:
            continue
        base = rest.base
        d = sp.expand(1 - base)
        if not _simpler(d, base):
            continue
        others = [a for a in e.args if a is not term and a != -k]
        return sp.Add(*others) - k * d * sp.Add(*(base**i for i in range(n)))
    return None


def _log_difference(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum: ``c log(A) - c log(B) -> c log1p((A - B) / B)`` where A - B is simpler
    than A (log(x + 1) - log(x) = log1p(1/x)): the two logs cancel for A near B."""
    if not e.is_Add or len(e.args) > 8:
        return None
    logs = [(a, *a.as_coeff_Mul()) for a in e.args]
    logs = [
        (a, c, r.args[0] if isinstance(r, sp.log) else 1 + r.args[0])
        for a, c, r in logs
        if isinstance(r, sp.log | log1p)
    ]
    for i, (a, c, base_a) in enumerate(logs):
        for b, cb, base_b in logs[i + 1 :]:
            if cb != -c:
                continue
            if c.is_negative:  # log1p((A - B) / B) with A the positive term's: log1p(1/x)
                a, c, base_a, b, cb, base_b = b, cb, base_b, a, c, base_a
            d = sp.expand(base_a - base_b)
            if not _simpler(d, base_a):
                continue
            rest = [t for t in e.args if t is not a and t is not b]
            return sp.Add(*rest) + c * log1p(d / base_b)
    return None


def _xlogx_term(term: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (k, A) for a term ``k A log(A)`` (k a number, A not a number; ``log(A)`` may
    already be ``log1p(A - 1)``: children are stabilized first), else None."""
    k, rest = term.as_coeff_Mul()
    factors = sp.Mul.make_args(rest)
    if len(factors) != 2:
        return None
    for f, g in (factors, factors[::-1]):
        if f.is_Number or not isinstance(g, sp.log | log1p):
            continue
        c, f = f.as_content_primitive()  # sympy spreads 3 (u + 1) to 3 u + 3
        arg = g.args[0] if isinstance(g, sp.log) else 1 + g.args[0]  # (1 + u) log1p(u)
        if is_zero(sp.expand(arg - f)):
            return k * c, f
    return None


def _xlogx_difference(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum: ``k A log(A) - k B log(B) -> k (D log(A) + B log1p(D / B))`` with
    D = A - B simpler than A (``(x + 1) log(x + 1) - x log(x) = log(x + 1) + x log1p(1/x)``):
    the two products are nearly equal where A is near B, and cancel to 28 bits' loss at
    large x, while each term of the right side is as large as the result or smaller."""
    if not e.is_Add or len(e.args) > 8:
        return None
    found = [(a, _xlogx_term(a)) for a in e.args]
    found = [(a, f) for a, f in found if f is not None]
    for i, (a, (k, base_a)) in enumerate(found):
        for b, (kb, base_b) in found[i + 1 :]:
            if kb != -k:
                continue
            if k.is_negative:  # the positive term's argument is A
                a, b, k, base_a, base_b = b, a, kb, base_b, base_a
            d = sp.expand(base_a - base_b)
            if not _simpler(d, base_a):
                continue
            rest = [t for t in e.args if t is not a and t is not b]
            return sp.Add(*rest) + k * (d * sp.log(base_a) + base_b * log1p(d / base_b))
    return None


def _log_ratio(e: sp.Expr) -> sp.Expr | None:
    """``log(A / B) -> log1p((A - B) / B)`` for sums A, B where A - B is simpler than A
    (log((1 - x)/(1 + x)) = log1p(-2x/(1 + x))): the ratio is near 1 where it cancels."""
    if not (isinstance(e, sp.log) and e.args[0].is_Mul):
        return None
    num, den = e.args[0].as_numer_denom()
    if not (num.is_Add and den.is_Add):
        return None
    d = sp.expand(num - den)
    fewer = len(sp.Add.make_args(d)) < len(num.args)
    return log1p(d / den) if not is_zero(d) and (fewer or _simpler(d, num)) else None


def _log_product(e: sp.Expr) -> sp.Expr | None:
    """``log(R sigmoid(u)**k exp(v)**m) -> log(R) + k log(sigmoid(u)) + m v`` for R >= 0 and
    real powers: log(sigmoid(u)) has a tail-exact form (-softplus(-u)), the product underflows
    to 0 (log(|x|**(3/2) sigmoid(x)**(3/2)) was -inf at -700, where it is -1040.2)."""
    if not (isinstance(e, sp.log) and e.args[0].is_Mul):
        return None
    split, rest = [], []
    for f in e.args[0].args:
        base, p = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
        if isinstance(base, sigmoid | sp.exp) and p.is_real:
            split.append(p * sp.log(base))
        else:
            rest.append(f)
    if not split or not sp.Mul(*rest).is_extended_nonnegative:
        return None
    return sp.log(sp.Mul(*rest)) + sp.Add(*split)


def _log_sigmoid(e: sp.Expr) -> sp.Expr | None:
    """``log(sigmoid(u)) -> -softplus(-u)``."""
    if isinstance(e, sp.log) and isinstance(e.args[0], sigmoid):
        return -softplus(-e.args[0].args[0])
    return None


def _log_cosh(e: sp.Expr) -> sp.Expr | None:
    """``log(cosh(u)) -> log1p(2 sinh(|u|/2)**2)`` for |u| < 2 (cosh(u) - 1 = 2 sinh(u/2)**2
    keeps every digit near 0, where logaddexp(u, -u) - log 2 cancels), else
    ``logaddexp(u, -u) - log 2`` (sinh(u/2)**2 overflows from |u| = 1420)."""
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.cosh):
        u = e.args[0].args[0]
        near = log1p(2 * sp.sinh(sp.Abs(u) / 2) ** 2)
        return sp.Piecewise((near, sp.Abs(u) < 2), (logaddexp(u, -u) - sp.log(2), True))
    return None


def _log_tanh(e: sp.Expr) -> sp.Expr | None:
    """``log(tanh(u)) -> log(-expm1(-2u)) - softplus(-2u)``: tanh(u) rounds to 1 from
    u = 19 on, its log to 0 instead of -2 exp(-2u)."""
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.tanh):
        u = e.args[0].args[0]
        return sp.log(-expm1(-2 * u)) - softplus(-2 * u)
    return None


def _log_one_plus(e: sp.Expr) -> sp.Expr | None:
    """``log(1 + u) -> log1p(u)``."""
    if isinstance(e, sp.log) and e.args[0].is_Add and sp.S.One in e.args[0].args:
        return log1p(e.args[0] - 1)
    return None


def _log_erf(e: sp.Expr) -> sp.Expr | None:
    """``log(erf(u)) -> log1p(-erfc(u))`` for u >= 1, ``log(erf(u))`` below: erf(u) rounds to
    1 from u = 6 on, and its log to 0 instead of -erfc(u) (a quotient by it was inf); below 1,
    1 - erfc(u) would cancel where erf(u) is small."""
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.erf):
        u = e.args[0].args[0]
        if isinstance(u, sp.Min) and sp.S.One in u.args:
            return None  # (the branch below 1 this rule wrote)
        return sp.Piecewise((log1p(-sp.erfc(u)), u >= 1), (sp.log(sp.erf(sp.Min(u, 1))), True))
    return None


def _xlogy_sigmoid(e: sp.Expr) -> sp.Expr | None:
    """``xlogy(a, sigmoid(u)) -> -a softplus(-u)``."""
    if isinstance(e, xlogy) and isinstance(e.args[1], sigmoid):
        return -e.args[0] * softplus(-e.args[1].args[0])
    return None


def _xlogy_positive(e: sp.Expr) -> sp.Expr | None:
    """``xlogy(a, b) -> a log(b)`` where ``b`` (softplus, exp) is positive."""
    if isinstance(e, xlogy) and isinstance(e.args[1], softplus | sp.exp):
        return e.args[0] * sp.log(e.args[1])
    return None


def _sech_power(e: sp.Expr) -> sp.Expr | None:
    """``cosh(u)**-k`` (sech(u)^k) in a form finite and exact in the tails, where cosh
    overflows on its way to a result that underflows gracefully:
    ``cosh(u)**-2 -> 4 sigmoid(2u) sigmoid(-2u)`` (1 - tanh^2 rounds to 0 there), and any other
    ``k > 0``: ``(2 exp(-|u|) / (1 + exp(-2|u|)))**k``, which is sech(u)^k."""
    if not (e.is_Pow and isinstance(e.base, sp.cosh) and e.exp.is_Integer and e.exp < 0):
        return None
    u = e.base.args[0]
    if e.exp == -2:
        return 4 * sigmoid(2 * u) * sigmoid(-2 * u)
    a = sp.Abs(u)
    return (2 * sp.exp(-a) / (1 + sp.exp(-2 * a))) ** (-e.exp)


def _csch_power(e: sp.Expr) -> sp.Expr | None:
    """``sinh(u)**-k -> (2 sign(u) e^-|u| / -expm1(-2|u|))**k``, csch(u)^k: sinh overflows
    on its way to a result that underflows gracefully; expm1 keeps it exact near 0."""
    if not (e.is_Pow and isinstance(e.base, sp.sinh) and e.exp.is_Integer and e.exp < 0):
        return None
    u = e.base.args[0]
    a = sp.Abs(u)
    return (2 * sp.sign(u) * sp.exp(-a) / -expm1(-2 * a)) ** (-e.exp)


#: Below these sizes f(u)/u rounds to 1 in float64: sinh(u)/u = 1 + u**2/6 + ..., atan,
#: tanh and asinh alike (odd, so f(u)/u = f(|u|)/|u|); log1p(u)/u = 1 - u/2 + ... (for u >= 0).
#: The clamp keeps the ratio's 0/0 out of the emitted code, and its parts far from underflow.
_VANISHING = {
    sp.sinh: sp.Float("1e-8"),
    sp.atan: sp.Float("1e-8"),
    sp.tanh: sp.Float("1e-8"),
    sp.asinh: sp.Float("1e-8"),
    log1p: sp.Float("1e-16"),
}
_UNIT_FUNCTIONS = (sigmoid, sp.tanh, sp.erf, sp.sin, sp.cos)


def _unit_bounded(u: sp.Expr) -> bool:
    """Tell whether |u| <= 1 is known from its form: sigmoid, tanh, erf, sin, cos, exp of a
    non-positive argument, and products and positive powers of those (numbers in [-1, 1])."""
    if u.is_number:
        return bool(abs(u) <= 1)
    if isinstance(u, _UNIT_FUNCTIONS):
        return True
    if isinstance(u, sp.exp):
        return bool(u.args[0].is_nonpositive)
    if u.is_Pow:
        return bool(u.exp.is_positive) and _unit_bounded(u.base)
    if u.is_Mul:
        return all(_unit_bounded(a) for a in u.args)
    return False


def _vanishing_ratio(f: sp.Expr) -> sp.Expr | None:
    """Return f(u)/u as f(w)/w with w = max(|u|, small) (_VANISHING), for |u| <= 1 known
    (_unit_bounded; log1p's u also >= 0), else None; never for a u already clamped."""
    small = _VANISHING.get(type(f))
    if small is None:
        return None
    u = f.args[0]
    if not _unit_bounded(u) or (isinstance(u, sp.Max) and small in u.args):
        return None
    if isinstance(f, log1p):
        if not u.is_nonnegative:
            return None
        w = sp.Max(u, small)
    else:
        w = sp.Max(u if u.is_nonnegative else _abs(u), small)
    return f.func(w) / w


def _spread_exp(e: sp.Expr) -> sp.Expr | None:
    """``exp(a) (exp(b) A + exp(c) B + ...) -> exp(a + b) A + exp(a + c) B + ...`` where every
    term of the sum carries an exponential: the sum overflows (or underflows) on its way to a
    finite product (sinh(exp(-x**2))**(-1/2)'' is a sum of exp(x**2) terms times
    exp(-x**2/2): inf at x = 30, where it is 2.4e198); one exponential per term does not."""
    if not e.is_Mul:
        return None
    exps = [f for f in e.args if isinstance(f, sp.exp)]
    if len(exps) != 1:
        return None
    a = exps[0].args[0]
    sums = [f for f in e.args if f.is_Add and len(f.args) <= _SPREAD_TERMS]
    for f in sums:
        merged = [_merges(a, t) for t in f.args]
        if None not in merged and any(merged):
            rest = sp.Mul(*(g for g in e.args if g is not f and g is not exps[0]))
            return rest * sp.Add(*(_times_exp(t, a) for t in f.args))
    return None


def _merge_exps(e: sp.Expr) -> sp.Expr | None:
    """``exp(a) exp(b) -> exp(a + b)`` in a product (sympy keeps them apart) where the
    exponents merge (``_exponents_merge``: they cancel, at least in part): one factor can
    overflow where the product is finite (1/sinh(exp(-exp(-x)))' holds exp(2 exp(-x)) exp(-x
    - exp(-x)): inf * 0 at x = -7, where it is exp(x + exp(-x)), 1e177 at x = -6). exp(a + b)
    is as accurate: the rounding of a + b is an error of eps max(|a|, |b|) in the exponent,
    the condition number each factor has already."""
    if not e.is_Mul:
        return None
    exps = [f for f in e.args if isinstance(f, sp.exp)]
    for i, f in enumerate(exps):
        for g in exps[i + 1 :]:
            if _exponents_merge(f.args[0], g.args[0]):
                rest = [h for h in e.args if h is not f and h is not g]
                return sp.Mul(*rest) * sp.exp(f.args[0] + g.args[0])
    return None


def _exponents_merge(a: sp.Expr, b: sp.Expr) -> bool:
    """Tell whether exp(a) and exp(b) merge: a + b is no larger than a or b (x**2 and
    -x**2/2 merge to x**2/2; softmax's x - logsumexp(x) and another exponent do not, and
    merging those only grows the exponent)."""
    return sp.count_ops(a + b) <= max(sp.count_ops(a), sp.count_ops(b))


def _times_exp(term: sp.Expr, a: sp.Expr) -> sp.Expr:
    """Return ``term`` exp(a) with exp(a) merged into ``term``'s first exp factor (sympy
    keeps exp(a) exp(b) apart)."""
    factors = list(sp.Mul.make_args(term))
    i = next(i for i, g in enumerate(factors) if isinstance(g, sp.exp))
    factors[i] = sp.exp(factors[i].args[0] + a)
    return sp.Mul(*factors)


def _merges(a: sp.Expr, term: sp.Expr) -> bool | None:
    """Tell whether ``term``'s factor exp(b) merges with exp(a) (``_exponents_merge``); None
    where ``term`` holds no exp."""
    for g in sp.Mul.make_args(term):
        if isinstance(g, sp.exp):
            return _exponents_merge(a, g.args[0])
    return None


#: _spread_exp distributes over sums of at most this many terms (each term one product more).
_SPREAD_TERMS = 8


def _factor_powers(e: sp.Expr) -> dict[sp.Expr, sp.Expr]:
    """Return {base: power} of the factors of ``e`` (as_powers_dict reads exp(a) as E**a)."""
    powers: dict[sp.Expr, sp.Expr] = {}
    for factor in e.args if e.is_Mul else (e,):
        base, p = (factor.base, factor.exp) if factor.is_Pow else (factor, sp.S.One)
        powers[base] = powers.get(base, sp.S.Zero) + p
    return powers


def _power_of(u: sp.Expr, powers: dict[sp.Expr, sp.Expr]) -> sp.Expr | None:
    """Return j where the factors ``powers`` hold u**j (exp(2a) is exp(a)**2: sympy merges
    exp(a)**p with it), 0 if none; None unless u = b**k with a number k > 0."""
    b, k = (u.base, u.exp) if u.is_Pow else (u, sp.S.One)
    if not (k.is_number and k.is_positive):
        return None
    if not isinstance(u, sp.exp):
        return powers.get(b, sp.S.Zero) / k
    multiples = (q * b.args[0] / u.args[0] for b, q in powers.items() if isinstance(b, sp.exp))
    return sp.Add(*(m for m in multiples if m.is_number))


def _small_argument_power(e: sp.Expr) -> sp.Expr | None:
    """``f(u)**p * b**j -> u**p (f(u)/u)**p * b**j`` in a product, for p < 0, u = b**k (k,
    j > 0) and f(0) = 0 with f(u)/u bounded near 0 (_vanishing_ratio): u's powers then merge
    (sinh(s)**(-5/4) s = s**(-1/4) (sinh(s)/s)**(-5/4)), where f(u)**p overflows for a tiny u
    although the product is finite (s = sigmoid(-700), s = exp(-x**2) at x = 30). With no
    such b (j = 0) only for u = exp(a) or sigmoid(a), whose powers are formed without u
    (exp(p a)): sinh(exp(-x**2))**(-1/2) is exp(x**2/2) (sinh(w)/w)**(-1/2), finite at 30."""
    if not (e.is_Mul or e.is_Pow):
        return None
    powers = _factor_powers(e)
    for f, p in powers.items():
        found = _softplus_ratio(f, p, powers) or _mergeable_ratio(f, p, powers)
        if found is not None:
            u, ratio = found
            return e / f**p * u**p * ratio**p
    return None


#: Below this, softplus(v)/sigmoid(v) = (1 + e**-v) log1p(e**v) = 1 + e**v/2 + ... rounds to 1.
_SOFTPLUS_FLOOR = -40


def _softplus_ratio(f: sp.Expr, p: sp.Expr, powers: dict) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (sigmoid(w), softplus(v)/sigmoid(v)) with v = max(w, -40) for f = softplus(w)
    with p < 0 in a product that holds sigmoid(w)**j, j > 0, else None: softplus(w) is
    sigmoid(w) times a ratio in [1, max(w, 1) + 1), so their powers merge (sqrt(softplus(w))''
    holds sigmoid(w)**2 / softplus(w)**(3/2): 0 * inf at w = -700, where it is 2.5e-153)."""
    if not (isinstance(f, softplus) and p.is_number and p.is_negative):
        return None
    w = f.args[0]
    j = powers.get(sigmoid(w), sp.S.Zero)
    if not (j.is_number and j.is_positive) or (isinstance(w, sp.Max) and _SOFTPLUS_FLOOR in w.args):
        return None
    v = sp.Max(w, _SOFTPLUS_FLOOR)
    return sigmoid(w), softplus(v) / sigmoid(v)


def _mergeable_ratio(f: sp.Expr, p: sp.Expr, powers: dict) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (u, f(u)/u) (_vanishing_ratio) where _small_argument_power rewrites f(u)**p
    among the factors ``powers``, else None."""
    if f.is_Atom or not (p.is_number and p.is_negative):
        return None
    ratio = _vanishing_ratio(f)
    j = None if ratio is None else _power_of(f.args[0], powers)
    if j is None or not j.is_number:
        return None
    if j.is_positive or (j.is_zero and isinstance(f.args[0], sp.exp | sigmoid)):
        return f.args[0], ratio
    return None


#: _gaussian_tail clamps u where exp(k u**2) is below exp(-GAUSSIAN_EXPONENT): there the
#: product (a polynomial of degree <= 8 with modest coefficients times it) rounds to 0 anyway.
GAUSSIAN_EXPONENT = 800
_GAUSSIAN_DEGREE = 8


def _gaussian_tail(e: sp.Expr) -> sp.Expr | None:
    """``P(u) exp(k u**2)`` (k < 0, P a polynomial of degree <= 8) with u clipped to
    +-sqrt(800/|k|): beyond that the product is below 1e-300 and rounds to 0, while u**2 in
    P overflows from |u| = 1e154 and makes inf * 0 = NaN (the GELU's second derivative)."""
    if not e.is_Mul:
        return None
    gauss = [f for f in e.args if isinstance(f, sp.exp)]
    if len(gauss) != 1:
        return None
    k, w = gauss[0].args[0].as_coeff_Mul()
    if not (k.is_negative and w.is_Pow and w.exp == 2) or isinstance(w.base, sp.Min):
        return None
    u = w.base
    if _unit_bounded(u):  # |u| <= 1: nothing overflows, and a clamp would hide u's form
        return None  # (erf(sigmoid(w))'' is a polynomial in sigmoid(w) that tails factors)
    z = sp.Dummy("z")
    degree = 0
    for f in e.args:
        if f is gauss[0] or f.is_number:
            continue
        p = f.xreplace({u: z})
        if p.free_symbols != {z} or not p.is_polynomial(z):
            return None
        degree += sp.degree(p, z)
        if degree > _GAUSSIAN_DEGREE or sum(abs(c) for c in sp.Poly(p, z).coeffs()) > 1e6:
            return None
    if degree < 2:  # u exp(k u**2) is u * 0 = 0 in the tail: nothing overflows
        return None
    bound = sp.sqrt(GAUSSIAN_EXPONENT / -k)
    return e.xreplace({u: sp.Min(sp.Max(u, -bound), bound)})


def _heaviside(e: sp.Expr) -> sp.Expr | None:
    """``Heaviside(u) -> Piecewise((1, u > 0), (0, True))``: PyTorch's convention, step'(0) = 0,
    relu'(0) = 0."""
    if isinstance(e, sp.Heaviside):
        return sp.Piecewise((1, e.args[0] > 0), (0, True))
    return None


def _dirac_delta(e: sp.Expr) -> sp.Expr | None:
    """``DiracDelta(u) -> 0`` (the derivative of the step convention above, away from 0)."""
    if isinstance(e, sp.DiracDelta):
        return sp.S.Zero
    return None


# The stability rewrites, tried in order on each node after _canonical_rule; the first that
# matches wins. Each takes a node and returns its replacement, or None when it does not apply.
_STABLE_RULES = (
    _merge_exps,
    _small_argument_power,
    _spread_exp,
    _one_minus_sigmoid,
    _exp_erf_offset,
    _trig_hyperbolic_offsets,
    _power_offset,
    _conjugate,
    _log_difference,
    _xlogx_difference,
    _log_ratio,
    _log_product,
    _log_sigmoid,
    _log_cosh,
    _log_tanh,
    _log_one_plus,
    _log_erf,
    _gaussian_tail,
    _xlogy_sigmoid,
    _xlogy_positive,
)
# tried in order after _hyperbolic, when none of _STABLE_RULES matched
_LOWERABLE_RULES = (_heaviside, _dirac_delta)
_TAIL_RULES = (_sech_power, _csch_power, *_LOWERABLE_RULES)


def _first_match(rules, e: sp.Expr) -> sp.Expr | None:
    """Return the result of the first rule in ``rules`` that applies to ``e``, else None."""
    for rule in rules:
        out = rule(e)
        if out is not None:
            return out
    return None


def _stable_rule(e: sp.Expr) -> sp.Expr:
    e = _canonical_rule(e)
    out = _first_match(_STABLE_RULES, e)
    if out is not None:
        return out
    e = _hyperbolic(e)
    if e.is_Mul:  # the cosh power _hyperbolic leaves (sinh/cosh^2 -> tanh * cosh^-1)
        args = tuple(_sech_power(a) or _csch_power(a) or a for a in e.args)
        if args != e.args:  # rebuilding an unchanged 2*(a + b) would distribute it
            e = sp.Mul(*args)
    out = _first_match(_TAIL_RULES, e)
    return e if out is None else out


def _lowerable_rule(e: sp.Expr) -> sp.Expr:
    out = _first_match(_LOWERABLE_RULES, e)
    return e if out is None else out


def lowerable(expr: sp.Expr) -> sp.Expr:
    """Apply only the conventions every emitted form needs (Heaviside, DiracDelta), no rewrite."""
    return bottom_up(expr, _lowerable_rule)


_UNSAFE = (sp.exp, sp.log, sp.cosh, sp.sinh, expm1, log1p)


def _unsafe(e: sp.Expr) -> bool:
    if e.has(*_UNSAFE):
        return True
    return any(p.exp.is_negative or not p.exp.is_integer for p in e.atoms(sp.Pow))


def _clamp_branches(e: sp.Expr) -> sp.Expr:
    """Evaluate each branch of a Piecewise only on its own side of a simple condition.

    np.where evaluates every branch everywhere, so ``where(x > 0, x, expm1(x))`` overflows at
    x = 1000 in the branch it throws away. Substituting ``min(x, 0)`` inside the second branch
    changes nothing where that branch is chosen and keeps it finite everywhere else.
    """
    if not isinstance(e, sp.Piecewise) or len(e.args) < 2:
        return e
    (first, cond), rest = e.args[0], e.args[1:]
    if (
        not isinstance(cond, sp.core.relational.Relational)
        or cond.rhs.free_symbols & cond.lhs.free_symbols
    ):
        return e
    lhs, rhs = cond.lhs, cond.rhs
    if isinstance(cond, sp.Gt | sp.Ge):
        inside, outside = sp.Max(lhs, rhs), sp.Min(lhs, rhs)
    elif isinstance(cond, sp.Lt | sp.Le):
        inside, outside = sp.Min(lhs, rhs), sp.Max(lhs, rhs)
    else:
        return e
    if lhs.is_Atom and not lhs.is_Symbol:
        return e
    tail = sp.Piecewise(*rest) if rest[-1][1] is not sp.true or len(rest) > 1 else rest[0][0]
    new_first = _clamped(first, lhs, inside)
    new_tail = _clamped(tail, lhs, outside)
    return sp.Piecewise((new_first, cond), (new_tail, True))


def _clamped(branch: sp.Expr, lhs: sp.Expr, bound: sp.Expr) -> sp.Expr:
    """Return ``branch`` with ``lhs`` clamped to ``bound`` where it holds an unsafe function,
    else as it is: also where the clamp makes a condition inside it compare a non-real
    value (``log(yhat) <= -1`` with yhat clamped to at most -2 is no comparison; sympy raises
    TypeError, and fuzz seed 19118 stopped with it)."""
    if not _unsafe(branch):
        return branch
    try:
        return branch.xreplace({lhs: bound})
    except TypeError:
        return branch


def _abs_arg(e: sp.Expr) -> sp.Expr | None:
    return e.args[0] if isinstance(e, Abs | sp.Abs) else None


def _saturate(e: sp.Expr) -> sp.Expr:
    """Piecewise((k u, |u| < c), (k c sign(u), True)) -> k clip(u, -c, c): one pass, no where."""
    if not isinstance(e, sp.Piecewise) or len(e.args) != 2 or e.args[1][1] is not sp.true:
        return e
    (a, cond), (b, _) = e.args
    if isinstance(cond, sp.StrictLessThan | sp.LessThan):
        v, c = _abs_arg(cond.lhs), cond.rhs
    elif isinstance(cond, sp.StrictGreaterThan | sp.GreaterThan):
        v, c = _abs_arg(cond.rhs), cond.lhs
    else:
        return e
    if v is None or c.free_symbols & v.free_symbols:
        return e
    k = sp.cancel(a / v)
    if k.free_symbols & v.free_symbols:
        return e
    if not is_zero(sp.expand(b - k * c * sign(v))):
        return e
    return k * sp.Min(sp.Max(v, -c), c)


# ---------------------------------------------------------------- positive quadratics


def _quadratic(q: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """Return (a, u, c) for ``q = a (1 + (c u)**2)`` (q = a + b u**2 with numbers a, b > 0),
    else None. A base that is a Min is the scaled form's own ``1 + t**2``: never again. A
    quadratic in sinh(w) with a > b is read as one in cosh(w), (a - b) + b cosh(w)**2, so
    that cosh scales it and the sinh/cosh rules reach its powers (atan(sinh(x)/2)'' was -inf
    at 700: sinh(x)**2 / max(|sinh(x)|, 2)**3 overflowed)."""
    if not (q.is_Add and len(q.args) == 2):
        return None
    a, other = q.args if q.args[0].is_Number else q.args[::-1]
    if not (a.is_Number and a.is_positive):
        return None
    b, w = other.as_coeff_Mul()
    if not (b.is_positive and w.is_Pow and w.exp == 2) or isinstance(w.base, sp.Min):
        return None
    if isinstance(w.base, sp.sinh):
        if a == b:  # (a cosh(w)**2: _sinh_pythagoras's)
            return None
        if a > b:
            return a - b, sp.cosh(w.base.args[0]), sp.sqrt(b / (a - b))
    return a, w.base, sp.sqrt(b / a)


def _sinh_pythagoras(e: sp.Expr) -> sp.Expr | None:
    """``k + k sinh(w)**2 -> k cosh(w)**2`` (a sum of exactly those two terms): the powers of
    cosh then merge with the cosh and sinh factors around them ((sinh(x)**2 + 1)**-4'' was
    NaN at 700)."""
    if not (e.is_Add and len(e.args) == 2):
        return None
    k, other = e.args if e.args[0].is_Number else e.args[::-1]
    kb, w = other.as_coeff_Mul()
    if k.is_Number and k == kb and k.is_positive and w.is_Pow and w.exp == 2:
        if isinstance(w.base, sp.sinh):
            return k * sp.cosh(w.base.args[0]) ** 2
    return None


def _unscaled(a: sp.Expr, u: sp.Expr, c: sp.Expr) -> bool:
    """Tell whether a (1 + (c u)**2) needs no scaling: |c u| <= 1 is known (c <= 1 and u
    _unit_bounded), so nothing overflows, and the plain form leaves u where the rules for a
    small argument reach it (log(1 + sigmoid(x)**2)'s derivatives at x = -300: the scaled
    log1p(min(s, 1/max(s, 1))**2) had hidden the s**2 they divide by)."""
    return bool(c <= 1) and _unit_bounded(u)


def _scales(v: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Return (m, t, r) for v: m = max(|v|, 1), t = min(|v|, 1/m) <= 1 and r = v/m =
    clip(v, -1, 1), so that 1 + v**2 = m**2 (1 + t**2) and v = r m with nothing squared
    beyond 1 but m (r is a clip, not v/m, so that sympy does not distribute its powers)."""
    if isinstance(v, sp.cosh):  # (v >= 1: m = v, t = 1/v, r = 1, and sinh/cosh rules apply)
        return v, 1 / v, sp.S.One
    av = _abs(v)
    m = sp.Max(av, 1)
    return m, sp.Min(av, 1 / m), sp.Min(sp.Max(v, -1), 1)


#: cosh(w) >= 1 scales a + b cosh(w)**2 itself for c = sqrt(b/a) down to this: then
#: t = 1/(c cosh) <= 1/c stays small (a quadratic in sinh, read as one in cosh, has c < 1).
_COSH_SCALE_C = sp.Rational(1, 8)


def _scales_of(u: sp.Expr, c: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Return (big, t, rho) for v = c u, in u's units so that c u is never formed (it
    overflows for c > 1 although the result need not): big = max(|u|, 1/c) (m = c big),
    t = c min(|u|, c**-2 / big) (as in _scales) and rho = clip(u, -1/c, 1/c) (r = c rho)."""
    if isinstance(u, sp.cosh) and c.is_number and c >= _COSH_SCALE_C:
        # (u >= 1 >= 1/c: big = u, t = 1/(c u), rho = 1/c, so that sinh/cosh rules apply to
        # the derivatives: sinh(x)**2 / max(1, cosh(x))**8 overflowed to NaN at 700)
        return u, 1 / (c * u), 1 / c
    au = _abs(u)
    big = sp.Max(au, 1 / c)
    return big, c * sp.Min(au, c**-2 / big), sp.Min(sp.Max(u, -1 / c), 1 / c)


def _quadratic_product(e: sp.Expr) -> sp.Expr | None:
    """``u**k * prod (a_i (1 + (c u)**2))**p_i -> prod a_i**p_i rho**k (c big)**(k + 2P)
    (1 + t**2)**P`` with P = sum p_i and (big, t, rho) = _scales_of(u, c), for powers p_i
    that are not positive integers: u**2 overflows beyond |u| = 1e154 (x / (1 + x**2/4) is 0
    there instead of 4/x), the scaled form only where the product itself does."""
    factors = e.args if e.is_Mul else (e,)
    groups: dict[tuple, list] = {}
    for f in factors:
        base, p = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
        found = _quadratic(base)
        if found is None or not p.is_number or (p.is_Integer and p > 0) or _unscaled(*found):
            continue
        a, u, c = found
        groups.setdefault((u, c), []).append((f, a, p))
    if not groups:
        return None
    (u, c), qs = min(groups.items(), key=lambda item: sp.default_sort_key(item[0][0]))
    k, rest = sp.S.Zero, []
    used = {f for f, _, _ in qs}
    for f in factors:
        if f in used:
            continue
        base, p = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
        if base == u and p.is_Integer:
            k += p
        elif base == -u and p.is_Integer:  # (-x - 1)**2, as sympy writes a derivative's
            k += p
            rest.append(sp.S.NegativeOne**p)
        else:
            rest.append(f)
    big_p = sp.Add(*(p for _, _, p in qs))
    big, t, rho = _scales_of(u, c)
    j = k + 2 * big_p
    scaled = sp.Mul(*(a**p for _, a, p in qs)) * rho**k * c**j * big**j
    return sp.Mul(*rest) * scaled * (1 + t**2) ** big_p


def _quadratic_log(e: sp.Expr) -> sp.Expr | None:
    """``log(a (1 + v**2)) -> log(a) + 2 log(m) + log1p(t**2)`` for a >= 1 (every term >= 0,
    so nothing cancels): exact near 0 and finite beyond |v| = 1e154 (v = c u itself
    overflows beyond |u| = 1.8e308 / c for c > 1; log(c) + log(big) would cancel at big = 1/c)."""
    if not isinstance(e, sp.log):
        return None
    found = _quadratic(e.args[0])
    if found is None or found[0] < 1 or _unscaled(*found):
        return None
    a, u, c = found
    m, t, _ = _scales(c * u)
    return sp.log(a) + 2 * sp.log(m) + log1p(t**2)


def _quadratic_root_offset(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum, ``k sqrt(a (1 + v**2)) - k sqrt(a) -> k sqrt(a) m r**2 / (sqrt(1 + t**2)
    + 1/m)`` (= k sqrt(a) v**2 / (sqrt(1 + v**2) + 1), with m = c big and r = c rho from
    _scales_of): no cancellation near 0, no overflow of v**2 in the tails (pseudo-Huber)."""
    if not e.is_Add:
        return None
    for term in e.args:
        k, rest = term.as_coeff_Mul()
        if not (rest.is_Pow and rest.exp == sp.S.Half):
            continue
        found = _quadratic(rest.base)
        if found is None:
            continue
        a, u, c = found
        offset = -k * sp.sqrt(a)
        if offset not in e.args:
            continue
        big, t, rho = _scales_of(u, c)
        others = [x for x in e.args if x is not term and x != offset]
        root = sp.sqrt(1 + t**2) + c**-1 / big
        return sp.Add(*others) + k * sp.sqrt(a) * c**3 * big * rho**2 / root
    return None


def _common_denominator(e: sp.Expr) -> sp.Expr | None:
    """Inside a sum, ``c + k P / D -> (c D + k P) / D`` where c D + k P expands to something
    simpler than D (1 - x**2/(x**2 + 4) = 4/(x**2 + 4)): the two terms cancel where D is
    large, the quotient does not."""
    if not e.is_Add or len(e.args) > 8:
        return None
    numbers = [a for a in e.args if a.is_Number]
    if not numbers:
        return None
    c = numbers[0]
    for term in e.args:
        if not term.is_Mul:
            continue
        dens = [f for f in term.args if f.is_Pow and f.exp == -1 and f.base.is_Add]
        if len(dens) != 1:
            continue
        den = dens[0].base
        num = sp.expand(c * den + term * den)
        if not _simpler(num, den):
            continue
        others = [x for x in e.args if x is not term and x is not c]
        return sp.Add(*others) + num / den
    return None


def _quadratic_rule(e: sp.Expr) -> sp.Expr | None:
    return (
        _sinh_pythagoras(e)
        or _rational_sum(e)
        or _common_denominator(e)
        or _quadratic_root_offset(e)
        or _quadratic_log(e)
        or (_quadratic_product(e) if e.is_Mul or e.is_Pow else None)
    )


def scale_quadratics(expr: sp.Expr) -> sp.Expr:
    """Rewrite ``a + b u**2`` (a, b > 0) wherever u**2 would overflow although the result is
    finite: top-down, so a sum or product is rewritten before its parts (1 - x**2/(x**2 + 4)
    becomes 4/(x**2 + 4) before either term is scaled)."""
    cache: dict[sp.Basic, sp.Basic] = {}

    def visit(node: sp.Basic) -> sp.Basic:
        done = cache.get(node)
        if done is not None:
            return done
        out = node
        if node.args and not node.is_Atom:
            for _ in range(4):  # a rule's result may match another rule at the same node
                new = _quadratic_rule(out)
                if new is None or new == out:
                    break
                out = new
            if _is_size_split(out):  # _rational_sum's factored forms are final
                cache[node] = out
                return out
            if out.args and not out.is_Atom:
                args = tuple(visit(a) for a in out.args)
                if args != out.args:
                    out = out.func(*args)
        cache[node] = out
        return out

    return visit(expr)


def stabilize(expr: sp.Expr) -> sp.Expr:
    """Rewrite a derived expression into forms that stay finite wherever its value is finite."""
    expr = scale_quadratics(expr)
    previous = None
    while previous != expr:
        previous = expr
        # sinh/cosh quotients first, while their cosh powers are whole (the stable rules
        # below turn cosh**-k into exponentials, children before parents)
        expr = bottom_up(expr, _hyperbolic)
        expr = bottom_up(expr, _stable_rule)
        expr = bottom_up(expr, factor_tails)
    return bottom_up(bottom_up(expr, _clamp_branches), _saturate)


# ---------------------------------------------------------------- lowering to numpy-ready forms


def _abs(u: sp.Expr) -> sp.Expr:
    """|u| with the sign canonicalized (|-u| = |u|, so CSE shares exp(-|u|)) but not simplified:
    sympy's Abs.eval on a deep argument is expensive."""
    return sp.Abs(-u if u.could_extract_minus_sign() else u, evaluate=False)


def _sigmoid_pairs(e: sp.Expr) -> sp.Expr:
    """sigmoid(u) sigmoid(-u) = t / (1 + t)**2 with t = exp(-|u|): the logistic density."""
    if not e.is_Mul:
        return e
    powers = e.as_powers_dict()
    for base, k in powers.items():
        if isinstance(base, sigmoid) and k.is_Integer and k > 0:
            u = base.args[0]
            j = powers.get(sigmoid(-u), 0)
            if j and j.is_Integer and j > 0:
                m = min(k, j)
                t = sp.exp(-_abs(u))
                rest = e / (sigmoid(u) ** m * sigmoid(-u) ** m)
                return _sigmoid_pairs(rest) * (t / (1 + t) ** 2) ** m
    return e


def _lone_sigmoid(term: sp.Expr) -> tuple[sp.Expr, int, sp.Expr] | None:
    """Return (u, +-1, c) for a term c * sigmoid(+-u), u's sign canonical, c holding no other
    sigmoid factor; None for any other term."""
    factors = sp.Mul.make_args(term)
    found = [f for f in factors if isinstance(f, sigmoid)]
    if len(found) != 1:
        return None
    arg = found[0].args[0]
    flipped = arg.could_extract_minus_sign()
    rest = sp.Mul(*(f for f in factors if f is not found[0]))
    return -arg if flipped else arg, -1 if flipped else 1, rest


def _exact(q: sp.Expr) -> bool:
    """Tell whether ``q`` is evaluated without rounding: a symbol or its negation."""
    return q.is_Symbol or (-q).is_Symbol


def _sigmoid_sums(e: sp.Expr) -> sp.Expr:
    """P sigmoid(u) + Q sigmoid(-u) = where(u >= 0, P - D a, Q + D a), D = P - Q, with
    a = sigmoid(-|u|) = t / (1 + t), t = exp(-|u|): the small one of the pair, so the sum
    cancels no further than the function itself (the exact tail: y = 1 gives -a, not
    (1 - y) - (1 - a)). For a number D and an exact Q (an input or its negation; the pair is
    symmetric in u, so either side may be Q) the select is arithmetic with K = step(u):
    (Q + D K) + D (1 - 2K) a, summed in that order; at K = 1, Q + D rounds once, as P does.
    It shares t, step(u) and 1 + t with the density sigmoid(u) sigmoid(-u) = a / (1 + t),
    and takes about half the passes of lowering each sigmoid on its own. A factor common to
    P and Q (1/n) stays outside."""
    if not e.is_Add:
        return e
    sides: dict[sp.Expr, tuple[list, list]] = {}
    for term in e.args:
        found = _lone_sigmoid(term)
        if found is not None:
            u, s, coeff = found
            sides.setdefault(u, ([], []))[0 if s > 0 else 1].append((term, coeff))
    for u, (plus, minus) in sorted(sides.items(), key=lambda kv: sp.default_sort_key(kv[0])):
        if not plus or not minus:
            continue
        factor_sets = [{f for f in sp.Mul.make_args(c) if not f.is_Number} for _, c in plus + minus]
        common = set.intersection(*factor_sets)

        def strip(coeffs, common=common):
            return sp.Add(
                *(sp.Mul(*(f for f in sp.Mul.make_args(c) if f not in common)) for c in coeffs)
            )

        p, q = strip(c for _, c in plus), strip(c for _, c in minus)
        d = p - q
        if not d.is_Number or is_zero(d):
            continue
        if not _exact(q):
            if not _exact(p):
                continue
            u, p, q, d = -u, q, p, -d
        k = step(u)
        t = sp.exp(-_abs(u))
        pair = ordered_sum(q + d * k, d * (1 - 2 * k) * t / (1 + t))
        used = {term for term, _ in plus + minus}
        rest = [term for term in e.args if term not in used]
        return _sigmoid_sums(sp.Add(*rest, sp.Mul(*sorted(common, key=sp.default_sort_key)) * pair))
    return e


def _lower_rule(e: sp.Expr) -> sp.Expr:
    if isinstance(e, sigmoid):
        # max(t, u >= 0) / (1 + t) with t = exp(-|u|) is 1/(1+t) for u >= 0 and t/(1+t)
        # otherwise: never overflows, keeps relative precision in the tail, shares t with
        # softplus, and needs no np.where (a data-dependent select costs several passes).
        u = e.args[0]
        t = sp.exp(-_abs(u))
        return sp.Max(t, step(u), evaluate=False) / (1 + t)
    if isinstance(e, softplus):
        u = e.args[0]  # np.logaddexp(0, u), spelled so it shares exp(-|u|) with sigmoid(u)
        return sp.Max(u, 0, evaluate=False) + log1p(sp.exp(-_abs(u)))
    if isinstance(e, logsumexp):
        u = e.args[0]
        m = axis_max(u)
        return m + sp.log(axis_sum(sp.exp(u - m)))
    if isinstance(e, xlogy):  # 0 log 0 = 0: log of 1 where a == 0
        a, b = e.args
        return a * sp.log(where(sp.Eq(a, 0), 1, b))
    if isinstance(e, xdivy):
        a, b = e.args
        return a / where(sp.Eq(a, 0), 1, b)
    return e


def _select_products(e: sp.Basic) -> sp.Basic:
    """rest * Piecewise((a, c), (b, True)) -> Piecewise((rest a, c), (rest b, True)) when
    ``rest`` may overflow: a mask times an infinite discarded branch is NaN (0 * inf), a
    select is not. Boolean conditions built from ITE become plain And/Or/Not."""
    if isinstance(e, sp.ITE):
        return e.to_nnf()
    if not e.is_Mul:
        return e
    args = list(e.args)
    pw = next((f for f in args if isinstance(f, sp.Piecewise)), None)
    if pw is None:
        return e
    args.remove(pw)
    rest = sp.Mul(*args)
    if not _unsafe(rest):
        return e
    return sp.Piecewise(*((_select_products(rest * v), c) for v, c in pw.args), evaluate=False)


def lower_primitives(expr: sp.Expr, distribute: bool = True) -> sp.Expr:
    """Replace symgrad primitives by overflow-free expressions the printer knows.

    ``distribute=False`` keeps products of a Piecewise as they are (the plain formula's
    association: exp(u) * sinh(v) / (exp(u) + 2) overflows where sinh(v) * (exp(u) / ...)
    does not), for the ``ordered`` level that evaluates as the plain formula does."""
    if distribute:
        expr = bottom_up(expr, _select_products)
    expr = bottom_up(expr, _sigmoid_pairs)
    if distribute:  # the ordered level keeps every sum as written
        expr = bottom_up(expr, _sigmoid_sums)
    return bottom_up(expr, _lower_rule)
