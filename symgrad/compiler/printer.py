"""Every rule that turns a lowered sympy expression into numpy source text lives here."""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence

from symgrad.compiler.primitives import (
    axis_max,
    axis_sum,
    cosh_,
    exp_,
    logsumexp,
    ncdf,
    sigmoid,
    softplus,
    step,
    where,
    xdivy,
    xlogy,
)
from symgrad.compiler.special import helper_names
from symgrad.compiler.spellings import NUMPY, spellings
from symgrad.compiler.traverse import atoms_of, nodes, tree_size

#: sympy function name -> numpy ufunc name, for functions printed as ``np.<name>(args)``.
UFUNCS = spellings(NUMPY)

#: Functions with their own printing or lowering rule.
SPECIAL = (
    sp.Piecewise,
    sp.Max,
    sp.Min,
    sp.Heaviside,
    sp.DiracDelta,
    sp.erf,
    sp.erfc,
    cosh_,
    exp_,
    step,
    where,
    ncdf,
    sigmoid,
    softplus,
    xlogy,
    xdivy,
    axis_sum,
    logsumexp,
    axis_max,
)

#: Source of helpers a module defines when one of its kernels uses them.
HELPERS = helper_names("numpy")


_UNSUPPORTED_NODES = (sp.Integral, sp.Sum, sp.Product, sp.Derivative, sp.Subs, sp.Limit)

#: Docstrings show a formula only up to this many nodes written out as a tree: a composition
#: that reuses a subexpression is exponentially long when written out (the body is not).
FORMULA_NODES = 4000


def formula(expr: sp.Basic) -> str:
    """Return ``expr`` as sympy prints it, or a short note when written out it is too long."""
    written = tree_size(expr, FORMULA_NODES + 1)
    if written <= FORMULA_NODES:
        return sp.sstr(expr)
    return f"<{len(nodes(expr))} distinct subexpressions, over {FORMULA_NODES} nodes written out>"


def unsupported_functions(expr: sp.Expr) -> list[str]:
    """Return the sorted names of functions in ``expr`` that no printer rule lowers."""
    bad = set()
    for f in atoms_of(expr, sp.Function, *_UNSUPPORTED_NODES):
        if isinstance(f, _UNSUPPORTED_NODES) or isinstance(f, AppliedUndef):
            bad.add(type(f).__name__ if not isinstance(f, AppliedUndef) else str(f.func))
        elif not isinstance(f, SPECIAL) and type(f).__name__ not in UFUNCS:
            bad.add(type(f).__name__)
    return sorted(bad)


_NOT_FINITE = (sp.nan, sp.oo, -sp.oo, sp.zoo)

_REL_OPS = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class SymgradPrinter(NumPyPrinter):
    """NumPy printer with vectorized branches, stable primitives and ``np.`` names."""

    printmethod = "_symgrad_code"
    #: print the logistic density as 1 / (2 + 2 cosh u) (see ``lower.cosh_densities``)
    COSH_DENSITY = True

    def __init__(self, settings=None, scalars: frozenset = frozenset()) -> None:
        super().__init__(settings or {})
        self.helpers: set[str] = set()
        self.scalars = scalars  # symbols known to hold scalars (hyper-parameters)
        #: symbol -> 0 scalar, 1 one value per sample (a reduction), 2 full size
        self.ranks: dict[sp.Symbol, int] = {}

    def _is_scalar(self, expr: sp.Expr) -> bool:
        return expr.free_symbols <= self.scalars and not expr.has(axis_sum, axis_max)

    def rank(self, expr: sp.Expr) -> int:
        """Return 0 for a scalar, 1 for a per-sample value, 2 for a full-size array."""
        if isinstance(expr, axis_sum | axis_max):
            return 1
        if expr.is_Symbol:
            return 0 if expr in self.scalars else self.ranks.get(expr, 2)
        if expr.is_Atom:
            return 0
        return max((self.rank(a) for a in expr.args), default=0)

    def _print_Mul(self, expr):
        # multiply the small operands (scalars, per-sample values) together first, so the
        # full-size array is touched once: "(c/s)*e" rather than "e*c/s"
        factors = expr.as_ordered_factors()
        small = [f for f in factors if self.rank(f) < 2]
        big = [f for f in factors if self.rank(f) == 2]
        if not big or sum(not f.is_Number for f in small) < 2:
            return super()._print_Mul(expr)
        small_text = super()._print_Mul(sp.Mul(*small, evaluate=False))
        big_text = self.parenthesize(sp.Mul(*big, evaluate=False), precedence(expr))
        return f"({small_text})*{big_text}"

    def _scalar_text(self, expr: sp.Expr) -> str:
        return repr(float(expr)) if expr.is_Number else self._print(expr)

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            return "np." + fqn[len("numpy.") :]
        return super()._module_format(fqn, register)

    def _np(self, name: str, *args: sp.Expr) -> str:
        return f"np.{name}({', '.join(self._print(a) for a in args)})"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in UFUNCS:
            return self._np(UFUNCS[name], *expr.args)
        raise ValueError(f"function {name!r} cannot be lowered to numpy")

    _print_Abs = _print_sign = _print_exp = _print_log = _print_Function
    _print_log1p = _print_expm1 = _print_logaddexp = _print_Function

    def _print_erf(self, expr):
        self.helpers.update(("_erf", "_erfc"))  # _erf calls _erfc above |x| = 0.5
        return f"_erf({self._print(expr.args[0])})"

    def _print_erfc(self, expr):
        self.helpers.add("_erfc")
        return f"_erfc({self._print(expr.args[0])})"

    def _print_step(self, expr):
        return f"({self._print(expr.args[0])} >= 0)"

    def _print_exp_(self, expr):
        return self._np("exp", expr.args[0])

    def _print_cosh_(self, expr):
        return self._np("cosh", expr.args[0])

    def _print_where(self, expr):
        cond, a, b = expr.args
        return (
            f"np.where({strip_outer_parens(self._print(cond))}, {self._print(a)}, {self._print(b)})"
        )

    def _print_ncdf(self, expr):
        self.helpers.add("_erfc")
        arg = sp.Float((-sp.sqrt(2) / 2).evalf(20), 17) * expr.args[0]
        return f"(0.5*_erfc({self._print(arg)}))"

    def _print_axis_sum(self, expr):
        arg = expr.args[0]
        factors = sp.Mul.make_args(arg)
        if len(factors) > 1 and all(
            self.rank(f) == 2 and not (f.is_Pow and f.exp.is_negative) for f in factors
        ):
            # sum over classes of a product: einsum never builds the product array
            spec = ",".join(["...i"] * len(factors)) + "->..."
            ops = ", ".join(self._print(f) for f in factors)
            return f"np.einsum('{spec}', {ops})[..., None]"
        return f"np.sum({self._print(arg)}, axis=-1, keepdims=True)"

    def _print_axis_max(self, expr):
        return f"np.max({self._print(expr.args[0])}, axis=-1, keepdims=True)"

    def _print_Max(self, expr):
        return self._fold("maximum", expr.args)

    def _print_Min(self, expr):
        # min(max(v, lo), hi) is exactly np.clip(v, lo, hi): one pass instead of two
        if len(expr.args) == 2:
            inner = [a for a in expr.args if isinstance(a, sp.Max) and len(a.args) == 2]
            if len(inner) == 1:
                hi = next(a for a in expr.args if a is not inner[0])
                lo, v = sorted(
                    inner[0].args, key=lambda a: (not self._is_scalar(a), sp.default_sort_key(a))
                )
                return self._np("clip", v, lo, hi)
        return self._fold("minimum", expr.args)

    def _fold(self, ufunc: str, args) -> str:
        args = sorted(args, key=sp.default_sort_key)
        out = self._print(args[0])
        for a in args[1:]:
            out = f"np.{ufunc}({out}, {self._print(a)})"
        return out

    def _print_Add(self, expr, order=None):
        # positive terms first: "a - y" is one ufunc pass where "-y + a" is two
        terms = [(t, self._print(t)) for t in self._as_ordered_terms(expr, order=order)]
        terms = [p for p in terms if not p[1].startswith("-")] + [
            p for p in terms if p[1].startswith("-")
        ]
        prec = precedence(expr)
        out = []
        for i, (term, text) in enumerate(terms):
            negative = text.startswith("-") and not term.is_Add
            body = text[1:] if negative else text
            if precedence(term) < prec or term.is_Add:
                body = f"({body})"
            out.append(
                ("-" if negative else "") + body if i == 0 else f"{'-+'[not negative]} {body}"
            )
        return " ".join(out)

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if (
            len(pieces) == 2
            and pieces[1][1] is sp.true
            and all(self._is_scalar(v) and not v.has(*_NOT_FINITE) for v, _ in pieces)
        ):
            # a step between two scalars: b + (a - b) * mask is one cheap pass; np.where is not
            (a, cond), (b, _) = pieces
            mask = f"({strip_outer_parens(self._print(cond))})"
            step = self._scalar_text(sp.Add(a, -b))
            step = step if step[0] != "-" and "+" not in step and " - " not in step else f"({step})"
            if b == 0:
                return f"{step}*{mask}"
            return f"({self._scalar_text(b)} + {step}*{mask})"
        if pieces[-1][1] is sp.true:
            out = self._print(pieces.pop()[0])
        else:
            out = "np.nan"
        for value, cond in reversed(pieces):
            cond_text = strip_outer_parens(self._print(cond))
            out = f"np.where({cond_text}, {self._print(value)}, {out})"
        return out

    def _print_Relational(self, expr):
        op = _REL_OPS[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_And(self, expr):
        return self._fold_logical("logical_and", expr.args)

    def _print_Or(self, expr):
        return self._fold_logical("logical_or", expr.args)

    def _fold_logical(self, ufunc: str, args) -> str:
        args = sorted(args, key=sp.default_sort_key)
        out = self._print(args[0])
        for a in args[1:]:
            out = f"np.{ufunc}({out}, {self._print(a)})"
        return out

    def _print_Not(self, expr):
        return f"np.logical_not({self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        b = self.parenthesize(base, 60)  # tighter than * and /, looser than a call
        if not base.is_Atom and abs(exp) == 2:
            # a compound base is evaluated once; numpy squares with a fast path
            return f"({b}**2)" if exp == 2 else f"(1/{b}**2)"
        if exp.is_Integer and 2 <= exp <= 4:
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and -4 <= exp <= -1:
            return f"(1/{b})" if exp == -1 else "(1/(" + "*".join([b] * int(-exp)) + "))"
        if exp == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1/np.sqrt({self._print(base)}))"
        return f"{b}**{self.parenthesize(exp, 60)}"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    def _print_Half(self, expr):
        return "0.5"

    def _print_Exp1(self, expr):
        return repr(float(sp.E))

    def _print_Pi(self, expr):
        return repr(float(sp.pi))

    def _print_Infinity(self, expr):
        return "np.inf"

    def _print_NegativeInfinity(self, expr):
        return "-np.inf"

    def _print_NaN(self, expr):
        return "np.nan"


def strip_outer_parens(text: str) -> str:
    """Drop one pair of parentheses that wraps a whole printed statement."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return text
    return text[1:-1]
