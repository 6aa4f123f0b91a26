"""The Array API spellings: the plain formula with standard-only operations.

Each emitted function takes its namespace from its inputs (``array_api_compat``), writes no
``out=`` and has no Python control flow on values, so one module runs on numpy, CuPy, torch and
JAX arrays and is jit-able. Names come from the shared spelling table (``spellings``); the
statements are the same CSE the numpy target's docstring shows.
"""

from __future__ import annotations

import sympy as sp

from symgrad.compiler.printer import SymgradPrinter, strip_outer_parens
from symgrad.compiler.special import helper_names
from symgrad.compiler.spellings import ARRAY_API, spellings

#: sympy function name -> Array API function, printed as ``xp.<name>(args)``
FUNCTIONS = spellings(ARRAY_API)
#: helpers an array-api module defines when one of its kernels uses them
XP_HELPERS = helper_names("array-api")


class ArrayApiPrinter(SymgradPrinter):
    """Print with ``xp.`` standard functions; scalars passed to functions become 0-d arrays of
    the computation's ``dtype`` and boolean masks are cast before arithmetic."""

    COSH_DENSITY = False  # the exp(-|u|) form: no overflow to mask on other libraries

    def _arg(self, expr: sp.Expr) -> str:
        text = strip_outer_parens(self._print(expr))
        if self.rank(expr) == 0 and not isinstance(expr, sp.Rel | sp.logic.boolalg.Boolean):
            return f"xp.asarray({text}, dtype=dtype)"
        return text

    def _xp(self, name: str, *args: sp.Expr) -> str:
        return f"xp.{name}({', '.join(self._arg(a) for a in args)})"

    def _np(self, name: str, *args: sp.Expr) -> str:
        return self._xp(name, *args)

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in FUNCTIONS:
            return self._xp(FUNCTIONS[name], *expr.args)
        raise ValueError(f"function {name!r} cannot be lowered to the Array API")

    def _print_erf(self, expr):
        self.helpers.update(("_erf", "_erfc"))
        return f"_erf({self._arg(expr.args[0])})"

    def _print_erfc(self, expr):
        self.helpers.add("_erfc")
        return f"_erfc({self._arg(expr.args[0])})"

    def _print_ncdf(self, expr):
        self.helpers.add("_erfc")
        arg = sp.Float((-sp.sqrt(2) / 2).evalf(20), 17) * expr.args[0]
        return f"(0.5*_erfc({self._arg(arg)}))"

    def _print_step(self, expr):
        return f"xp.astype({self._print(expr.args[0])} >= 0, dtype)"

    def _print_where(self, expr):
        cond, a, b = expr.args
        return f"xp.where({strip_outer_parens(self._print(cond))}, {self._arg(a)}, {self._arg(b)})"

    def _print_axis_sum(self, expr):
        return f"xp.sum({strip_outer_parens(self._print(expr.args[0]))}, axis=-1, keepdims=True)"

    def _print_axis_max(self, expr):
        return f"xp.max({strip_outer_parens(self._print(expr.args[0]))}, axis=-1, keepdims=True)"

    def _fold(self, ufunc: str, args) -> str:
        args = sorted(args, key=lambda a: (self.rank(a) == 0, sp.default_sort_key(a)))
        out = self._arg(args[0])
        for a in args[1:]:
            out = f"xp.{ufunc}({out}, {self._arg(a)})"
        return out

    _fold_logical = _fold

    def _print_Not(self, expr):
        return f"xp.logical_not({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        out = self._arg(pieces.pop()[0]) if pieces[-1][1] is sp.true else "xp.nan"
        for value, cond in reversed(pieces):
            out = f"xp.where({strip_outer_parens(self._print(cond))}, {self._arg(value)}, {out})"
        return out

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == sp.S.Half:
            return f"xp.sqrt({self._arg(base)})"
        if exp == -sp.S.Half:
            return f"(1/xp.sqrt({self._arg(base)}))"
        return super()._print_Pow(expr, rational)

    def _print_Infinity(self, expr):
        return "math.inf"

    def _print_NegativeInfinity(self, expr):
        return "-math.inf"

    def _print_NaN(self, expr):
        return "math.nan"

    # 1/0 in a derivative's branch: no real value, NaN as on the numpy target (whose
    # printer, the parent class, spells it np.nan, a name these modules do not have)
    _print_ComplexInfinity = _print_NaN


for _name in FUNCTIONS:  # every table entry, including those sympy's printer spells itself
    setattr(ArrayApiPrinter, f"_print_{_name}", ArrayApiPrinter._print_Function)
