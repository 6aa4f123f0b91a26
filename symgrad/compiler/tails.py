"""Factor derivative polynomials in sigmoid(u) or tanh(u) so they keep relative precision.

Derivatives of a sigmoid come out as polynomials in s = sigmoid(u): sigmoid'' is
2s^3 - 3s^2 + s, which cancels to 0 once s rounds to 1 (u > 37) although the true value is
about e^-u, and loses 7 digits near u = 0. Every such derivative carries the factor s(1 - s):
dividing it out and writing the rest in tanh(u/2) = 2s - 1 gives s(1 - s)(1 - 2s)
= -sigmoid(u) sigmoid(-u) tanh(u/2), which the lowering turns into t/(1 + t)^2 with
t = exp(-|u|): exact in both tails. Likewise 1 - tanh(v)^2 = 4 sigmoid(2v) sigmoid(-2v).
Only exact identities are used.
"""

from __future__ import annotations

import sympy as sp

from symgrad.compiler.primitives import sigmoid
from symgrad.compiler.traverse import expanded_terms, is_zero

#: Larger nodes are left alone (every built-in's derivative is far below; deep compositions
#: are far above, where expanding in s would grow without bound).
SIZE_LIMIT = 80
#: ... and so are nodes whose polynomial form would have more terms than this
TERMS_LIMIT = 64

_S = sp.Dummy("s")
_T = sp.Dummy("tau")


def _arguments(e: sp.Expr, kind: type) -> list[sp.Expr]:
    """Return the arguments u (sign-normalized, one per +-u, smallest first) of the ``kind``
    nodes that are factors of ``e``'s terms (of a sum, or of the sums in a product).

    Only those factors are looked at (not whole subtrees), so the rule costs O(terms) on the
    many nodes it does not apply to.
    """
    args = set()
    terms = e.args if e.is_Add else [t for f in e.args for t in sp.Add.make_args(f)]
    for term in terms:
        for f in sp.Mul.make_args(term):
            base = f.base if f.is_Pow else f
            if isinstance(base, kind):
                u = base.args[0]
                args.add(-u if u.could_extract_minus_sign() else u)
    return sorted(args, key=lambda u: (sp.count_ops(u), sp.default_sort_key(u)))


def _nested_arguments(e: sp.Expr) -> list[sp.Expr]:
    """Return the sigmoid arguments u of ``_arguments`` whose polynomial ``_sigmoid_rule``
    tries: the one argument, or, of several, each that every other holds as sigmoid(+-u)
    (sigmoid(w) beside sigmoid(sigmoid(w)), from softplus(sigmoid(w))'': the outer ones are
    coefficients of a polynomial in sigmoid(w)); unrelated arguments (mish's x and
    2 softplus(x)) are left as they were."""
    args = _arguments(e, sigmoid)
    if len(args) <= 1:
        return args
    return [
        u for u in args if all(o.has(sigmoid(u)) or o.has(sigmoid(-u)) for o in args if o is not u)
    ]


def _single_argument(e: sp.Expr, kind: type) -> sp.Expr | None:
    """Return u if the ``kind`` nodes that are factors of ``e``'s terms are all kind(+-u)."""
    args = _arguments(e, kind)
    return args[0] if len(args) == 1 else None


#: A float polynomial's value at a root is taken as 0 below this many float64 epsilons of
#: its largest coefficient (sympy's own rounding of products of Floats: 0.25 * 0.7**2 and
#: 0.35 * 0.7 leave 1e-17 x where the sigmoid's factor s(1 - s) makes p(1) exactly 0).
_FLOAT_ROOT_ULPS = 64


def _numbers(e: sp.Expr) -> list[sp.Expr]:
    """Return the numeric coefficients of ``e``'s terms."""
    return [t.as_coeff_Mul()[0] for t in sp.Add.make_args(sp.expand(e))]


def _vanishes(value: sp.Expr, p: sp.Poly) -> bool:
    """Tell whether ``value`` (p at a point) is 0: exactly, or, where p holds Floats, to
    within their rounding (``_FLOAT_ROOT_ULPS``)."""
    value = sp.expand(value)
    if is_zero(value):
        return True
    if not value.has(sp.Float) or value.free_symbols - p.free_symbols:
        return False
    scale = max((abs(c) for coeff in p.coeffs() for c in _numbers(coeff)), default=0)
    tolerance = _FLOAT_ROOT_ULPS * 2.0**-52 * scale
    return all(c.is_Number and abs(c) <= tolerance for c in _numbers(value))


def _roots(p: sp.Poly, root: sp.Expr) -> tuple[sp.Poly, int]:
    """Divide ``p`` by (x - root) as often as it is exact; return the quotient and the count."""
    count = 0
    factor = sp.Poly(p.gen - root, p.gen)
    while p.degree() > 0 and _vanishes(p.eval(root), p):
        p = sp.quo(p, factor)
        count += 1
    return p, count


def _poly(
    e: sp.Expr, node: sp.Expr, symbol: sp.Dummy, other: sp.Expr, also: dict | None = None
) -> tuple[sp.Poly, dict, sp.Expr] | None:
    """Return ``e`` as a polynomial of degree >= 2 in ``symbol`` (standing for ``node``, with
    ``node``'s mirror image written as ``other``, and the nodes of ``also`` as they map) over
    a power of ``symbol`` (a Laurent polynomial: tanh(v) - 1/tanh(v) is
    (tanh(v)^2 - 1) / tanh(v)), the map that restores its frozen exponentials, and that
    denominator; or None.

    Each exp(...) is a frozen symbol while the polynomial is built: Poly expands its
    coefficients, and exp(-(a - b)**2) would come back as exp(-a**2)*exp(2*a*b)*exp(-b**2),
    which overflows to inf * 0 = NaN where the original is a plain small number."""
    if sp.count_ops(e) > SIZE_LIMIT:
        return None  # expanding a deep composition's polynomial would blow it up
    mapping = {node: symbol, node.func(-node.args[0]): other, **(also or {})}
    expr = e.xreplace(mapping)
    # the same kind of node of another argument (sigmoid(sigmoid(w)) beside sigmoid(w)) is a
    # coefficient: frozen, as p(1) = 0 for every value of it divides p by (s - 1) all the same
    others = {f: sp.Dummy() for f in e.atoms(node.func) if f not in mapping}
    expr = expr.xreplace({f.xreplace(mapping): d for f, d in others.items()})
    if expanded_terms(expr) > TERMS_LIMIT:
        return None  # Poly would multiply out (1 + T**2)**-8 first: slow, and no tail to win
    # (one holding the symbol stays: then this is no polynomial, and Poly says so)
    frozen = {f: sp.Dummy() for f in expr.atoms(sp.exp) if not f.has(symbol)}
    expr = expr.xreplace(frozen)
    low = _lowest_power(expr, symbol)
    if low is None:
        return None
    den = symbol**-low if low < 0 or not low.is_Integer else sp.S.One
    try:
        p = sp.Poly(expr if den == 1 else sp.expand(expr * den), symbol)
    except sp.PolynomialError:
        found = _over_a_polynomial(expr, symbol)
        if found is None:
            return None
        p, den = found
    restore = {d: f for f, d in (*frozen.items(), *others.items())}
    return (p, restore, den) if p.degree() >= 2 else None


def _over_a_polynomial(expr: sp.Expr, symbol: sp.Dummy) -> tuple[sp.Poly, sp.Expr] | None:
    """Return ``expr`` as (numerator polynomial, denominator) in ``symbol`` where it is a sum
    of terms over integer powers of polynomials in it (``1/(1 + s**2)``: sqrt(1 +
    sigmoid(-2x)**2)'' sums 6 - 15 s + 9 s**2 + ... with such terms, and cancels at s = 1),
    else None. The denominator is the terms' common one, a product of those powers."""
    if not expr.is_Add:
        return None
    dens = set()
    for term in expr.args:
        for f in sp.Mul.make_args(term):
            base, power = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
            if power.is_Integer and power < 0 and base.has(symbol):
                if not base.is_polynomial(symbol):
                    return None
                dens.add(f)
    if not dens:
        return None
    num, den = sp.fraction(sp.together(expr))
    try:
        return sp.Poly(sp.expand(num), symbol), den
    except sp.PolynomialError:
        return None


def _lowest_power(expr: sp.Expr, symbol: sp.Dummy) -> sp.Rational | None:
    """Return the power of ``symbol`` to divide ``expr`` by so that every power of it left is a
    whole number: the lowest negative integer power (0 if none), or, when every power is a
    fraction of one class (tanh(x)**(5/2), tanh(x)**(1/2), tanh(x)**(-3/2): sqrt(tanh(x))'')
    the lowest of them; None when fractions of two classes, or a fraction and a whole power,
    are mixed."""
    powers = {p.exp for p in expr.atoms(sp.Pow) if p.base == symbol and p.exp.is_Rational}
    fractions = {e - sp.floor(e) for e in powers if not e.is_Integer}
    if not fractions:
        return min((e for e in powers if e.is_Integer), default=sp.S.Zero)
    whole = any(
        f == symbol or (f.is_Pow and f.base == symbol and f.exp.is_Integer)
        for term in sp.Add.make_args(sp.expand(expr, power_base=False, power_exp=False))
        for f in sp.Mul.make_args(term)
    )
    if len(fractions) > 1 or whole:
        return None
    return min(powers)


def one_minus_sigmoid(e: sp.Expr) -> sp.Expr | None:
    """``c - c sigmoid(u) -> c sigmoid(-u)`` inside a sum, for a number c (1 - sigmoid(u),
    sigmoid(u) - 1): the difference rounds to 0 where the sigmoid rounds to 1. The sigmoid's
    coefficient may itself be a sum holding -c, as derivatives leave it: ``(A - c) sigmoid(u)
    + c -> A sigmoid(u) + c sigmoid(-u)`` (focal loss's second derivative, A = 6 softplus(-u),
    c = 5, lost 190 ulps to 5 - 5 sigmoid(u) at u = 6.4)."""
    if not e.is_Add:
        return None
    args = list(e.args)
    constant = next((a for a in args if a.is_Number), None)
    if constant is None:
        return _factor_minus_sigmoid(args)
    for a in args:
        k, rest = a.as_coeff_Mul()
        if isinstance(rest, sigmoid) and k == -constant:
            args.remove(constant)
            args.remove(a)
            return sp.Add(*args) + constant * sigmoid(-rest.args[0])
    for a in args:
        split = _sigmoid_with_sum(a, -constant)
        if split is not None:
            s, remainder = split
            args.remove(constant)
            args.remove(a)
            return sp.Add(*args) + remainder * s + constant * sigmoid(-s.args[0])
    return _factor_minus_sigmoid(args)


def _factor_minus_sigmoid(args: list[sp.Expr]) -> sp.Expr | None:
    """``R sigmoid(u) - R -> -R sigmoid(-u)`` among the terms ``args`` of a sum, for any
    factor R (``x**(1/4) - x**(1/4) sigmoid(x)``, from the gradient of (x sigmoid(x))**(1/4),
    lost 100 ulps at x = 300), else None."""
    for a in args:
        sigmoids = [f for f in sp.Mul.make_args(a) if isinstance(f, sigmoid)]
        if len(sigmoids) != 1:
            continue
        r = a / sigmoids[0]
        if r.has(sigmoid) or -r not in args:
            continue
        rest = [t for t in args if t is not a]
        rest.remove(-r)
        return sp.Add(*rest) - r * sigmoid(-sigmoids[0].args[0])
    return None


def _sigmoid_with_sum(term: sp.Expr, number: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """Return (sigmoid(u), A) for a term ``(A + number) * sigmoid(u)`` (the sum a factor of
    the term, the sigmoid another, A not 0), else None."""
    factors = sp.Mul.make_args(term)
    sigmoids = [f for f in factors if isinstance(f, sigmoid)]
    sums = [f for f in factors if f.is_Add and number in f.args]
    if len(factors) != 2 or len(sigmoids) != 1 or len(sums) != 1:
        return None
    remainder = sums[0] - number
    return (sigmoids[0], remainder) if not is_zero(remainder) else None


def _sigmoid_rule(e: sp.Expr) -> sp.Expr:
    if not (e.is_Add or e.is_Mul):
        return e
    # each argument (the sigmoids of the others are coefficients), in either orientation: the
    # one with a root at s = 1, where 1 - s cancels in the tail (a polynomial in sigmoid(-x)
    # may also be one of far more terms in sigmoid(x))
    for u in (side * v for v in _nested_arguments(e) for side in (1, -1)):
        found = _poly(e, sigmoid(u), _S, 1 - _S)
        if found is None:
            continue
        p, restore, den = found
        q, zeros = _roots(p, sp.S.Zero)
        q, ones = _roots(q, sp.S.One)
        if ones:
            break
    else:
        return e
    if q.degree() > 0 and _vanishes(q.eval(sp.S.Half), q):
        # s = (1 + tau)/2 with tau = tanh(u/2) = 2s - 1, which is exact where 2s - 1 is not
        rest = sp.expand(q.as_expr().xreplace({_S: (1 + _T) / 2}), power_exp=False)
        rest = rest.xreplace({_T: sp.tanh(u / 2), **restore})
    elif q.degree() == 1:
        # q(1) s + q(0) (1 - s): each tail's value is one term, where a s + b cancels when its
        # coefficients are far larger than q(1) = a + b (sqrt(softplus(w))'' at -700: inf - inf)
        ends = (sp.expand(q.eval(sp.S.One)), sp.expand(q.eval(sp.S.Zero)))
        rest = _one_exact_end(*ends, u)
        rest = (ends[0] * sigmoid(u) + ends[1] * sigmoid(-u) if rest is None else rest).xreplace(
            restore
        )
    else:  # in tau, a rest that is not 0 at s = 1/2 would cancel in a tail (tau + 1 -> 0)
        rest = q.as_expr().xreplace({_S: sigmoid(u), **restore})
        # written in s, c - c s comes back where the stable rules had c sigmoid(-u)
        rest = one_minus_sigmoid(rest) or rest
    den = den.xreplace({_S: sigmoid(u)})
    return sigmoid(u) ** zeros * (-sigmoid(-u)) ** ones * rest / den


def _one_exact_end(at_one: sp.Expr, at_zero: sp.Expr, u: sp.Expr) -> sp.Expr | None:
    """Return ``a sigmoid(u) + b sigmoid(-u)`` (a = ``at_one``, b = ``at_zero``) as
    ``a + (b - a) sigmoid(-u)`` where a is a number and b - a is simpler than b (or mirrored,
    ``b + (a - b) sigmoid(u)``), else None. sigmoid(u) + sigmoid(-u) is exactly 1, which the
    two products only round to: swish's gradient ``(sigmoid(u) + (1 + u) sigmoid(-u))
    sigmoid(u)`` is ``(1 + u sigmoid(-u)) sigmoid(u)``, a product and a rounding fewer, and
    its end a stays exact where the sigmoid rounds to 1 (a number, so no tail of a
    coefficient can overflow against it)."""
    for a, b, s in ((at_one, at_zero, sigmoid(-u)), (at_zero, at_one, sigmoid(u))):
        if a.is_Number and a != 0:
            d = sp.expand(b - a)
            if sp.count_ops(d) < sp.count_ops(b):
                return a + d * s
    return None


def _tanh_rule(e: sp.Expr) -> sp.Expr:
    v = _single_argument(e, sp.tanh) if e.is_Add or e.is_Mul else None
    if v is None:
        return e
    # sigmoid(+-2v) = (1 +- tanh(v)) / 2: an earlier rewrite's sech^2 = 4 sigmoid(2v)
    # sigmoid(-2v) joins the polynomial, so a sum of it and 1 - tanh^2 still factors
    halves = {sigmoid(2 * v): (1 + _T) / 2, sigmoid(-2 * v): (1 - _T) / 2}
    found = _poly(e, sp.tanh(v), _T, -_T, halves)
    if found is None:
        return e
    p, restore, den = found
    q, ups = _roots(p, sp.S.One)
    q, downs = _roots(q, sp.S.NegativeOne)
    if not (ups and downs):
        # a lone 1 -+ tanh(v) is _one_plus_tanh's; factoring it out of a polynomial whose rest
        # does not vanish leaves the cancellation in the rest (gelu_tanh's gradient)
        return e
    # T - 1 = -2 sigmoid(-2v) and T + 1 = 2 sigmoid(2v), exact where 1 -+ tanh(v) rounds to 0
    rest = q.as_expr().xreplace({_T: sp.tanh(v), **restore})
    return (
        (-2 * sigmoid(-2 * v)) ** ups
        * (2 * sigmoid(2 * v)) ** downs
        * rest
        / den.xreplace({_T: sp.tanh(v)})
    )


def _one_plus_tanh(e: sp.Expr) -> sp.Expr:
    """k + k tanh(v) -> 2k sigmoid(2v) and k tanh(v) - k -> -2k sigmoid(-2v) inside a sum:
    1 + tanh(v) rounds to 0 for v < -19 although it is 2 e^(2v) there."""
    if not e.is_Add:
        return e
    args = list(e.args)
    for a in args:
        k, rest = a.as_coeff_Mul()
        if isinstance(rest, sp.tanh) and k.is_Number:
            v = rest.args[0]
            if k in args:
                args.remove(a)
                args.remove(k)
                return sp.Add(*args) + 2 * k * sigmoid(2 * v)
            if -k in args:
                args.remove(a)
                args.remove(-k)
                return sp.Add(*args) - 2 * k * sigmoid(-2 * v)
    return e


def factor_tails(e: sp.Expr) -> sp.Expr:
    """Rewrite one node (for bottom_up) when it is a polynomial in sigmoid(u) or tanh(v)
    with the factors s(1 - s) or 1 - tanh^2, or holds 1 +- tanh(v)."""
    return _one_plus_tanh(_tanh_rule(_sigmoid_rule(e)))
