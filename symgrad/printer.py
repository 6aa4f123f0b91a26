"""Every rule that turns a lowered sympy expression into numpy source text lives here."""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.numpy import NumPyPrinter

from symgrad.primitives import (
    axis_max,
    axis_sum,
    logsumexp,
    ncdf,
    sigmoid,
    softplus,
    where,
    xdivy,
    xlogy,
)

#: sympy function name -> numpy ufunc name, for functions printed as ``np.<name>(args)``.
UFUNCS = {
    "exp": "exp",
    "log": "log",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "atan2": "arctan2",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atanh": "arctanh",
    "Abs": "abs",
    "sign": "sign",
    "floor": "floor",
    "ceiling": "ceil",
    "log1p": "log1p",
    "expm1": "expm1",
    "logaddexp": "logaddexp",
}

#: Functions with their own printing or lowering rule.
SPECIAL = (
    sp.Piecewise,
    sp.Max,
    sp.Min,
    sp.Heaviside,
    sp.DiracDelta,
    sp.erf,
    sp.erfc,
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
HELPERS = {
    "_erf": "_erf = np.vectorize(math.erf, otypes=[np.float64])",
    "_erfc": "_erfc = np.vectorize(math.erfc, otypes=[np.float64])",
}
HELPER_IMPORTS = {"_erf": "math", "_erfc": "math"}

_UNSUPPORTED_NODES = (sp.Integral, sp.Sum, sp.Product, sp.Derivative, sp.Subs, sp.Limit)


def unsupported_functions(expr: sp.Expr) -> list[str]:
    """Return the sorted names of functions in ``expr`` that no printer rule lowers."""
    bad = set()
    for f in expr.atoms(sp.Function, *_UNSUPPORTED_NODES):
        if isinstance(f, _UNSUPPORTED_NODES) or isinstance(f, AppliedUndef):
            bad.add(type(f).__name__ if not isinstance(f, AppliedUndef) else str(f.func))
        elif not isinstance(f, SPECIAL) and type(f).__name__ not in UFUNCS:
            bad.add(type(f).__name__)
    return sorted(bad)


_REL_OPS = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class SymgradPrinter(NumPyPrinter):
    """NumPy printer with vectorized branches, stable primitives and ``np.`` names."""

    printmethod = "_symgrad_code"

    def __init__(self, settings=None) -> None:
        super().__init__(settings or {})
        self.helpers: set[str] = set()

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
        self.helpers.add("_erf")
        return f"_erf({self._print(expr.args[0])})"

    def _print_erfc(self, expr):
        self.helpers.add("_erfc")
        return f"_erfc({self._print(expr.args[0])})"

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
        return f"np.sum({self._print(expr.args[0])}, axis=-1, keepdims=True)"

    def _print_axis_max(self, expr):
        return f"np.max({self._print(expr.args[0])}, axis=-1, keepdims=True)"

    def _print_Max(self, expr):
        return self._fold("maximum", expr.args)

    def _print_Min(self, expr):
        return self._fold("minimum", expr.args)

    def _fold(self, ufunc: str, args) -> str:
        args = sorted(args, key=sp.default_sort_key)
        out = self._print(args[0])
        for a in args[1:]:
            out = f"np.{ufunc}({out}, {self._print(a)})"
        return out

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
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
