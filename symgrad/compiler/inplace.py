"""Lower CSE'd expressions to one numpy ufunc per statement, writing into reused buffers.

A fresh result array per operation costs more than the arithmetic on large inputs, so the
emitted body evaluates the same formula as three-address code: every array subexpression gets a
virtual register, a linear scan over the statements gives each register a buffer (reusing the
buffer of an operand that dies at that statement, so ``np.exp(b1, out=b1)`` happens in place),
and the buffer that holds the result at the end is the caller's ``out``. Inputs are only read.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field

import sympy as sp

from symgrad.compiler.kernel import INV_N
from symgrad.compiler.primitives import (
    axis_max,
    axis_sum,
    cosh_,
    exp_,
    ordered_product,
    ordered_sum,
    step,
    where,
)
from symgrad.compiler.printer import UFUNCS, SymgradPrinter, strip_outer_parens

#: A statement operand: a virtual register (int) or literal source text (an input, a scalar).
Operand = int | str

#: Buffer kinds: full-size float, full-size bool, per-sample float row, per-sample bool row.
FULL, MASK, ROW, ROW_MASK = "f", "m", "r", "rm"
_PREFIX = {FULL: "b", MASK: "m", ROW: "r", ROW_MASK: "rm"}
_RELATIONAL = {
    "==": "equal",
    "!=": "not_equal",
    "<": "less",
    "<=": "less_equal",
    ">": "greater",
    ">=": "greater_equal",
}


@dataclass
class Statement:
    """One line: ``template`` formatted with operand names and ``{d}`` for the destination.

    ``alias`` lists the operand positions whose buffer the destination may share (the
    statement reads them element by element before writing); ``skip_if_alias`` marks the
    operand whose aliasing makes the first line of a two-line template unnecessary.
    """

    template: str
    args: tuple[Operand, ...]
    dest: int | None = None
    alias: tuple[int, ...] = ()
    skip_if_alias: int | None = None
    guard: str | None = None  # skip the line when this is false and it runs in place
    #: computes (part of) a branch a select may discard: it runs with floating-point errors
    #: ignored, since an overflow there (exp(800) where Min(1, exp(x)) takes 1) is no error
    quiet: bool = False
    #: the docstring temporary (``tN``) this statement completes, shown as ``# tN``
    completes: str | None = None


@dataclass
class Program:
    """Statements over virtual registers, with each register's buffer kind."""

    statements: list[Statement] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


class InplaceBuilder:
    """Turn sympy expressions (after ``lower_primitives``) into a :class:`Program`."""

    def __init__(
        self,
        printer: SymgradPrinter,
        arrays: frozenset[str],
        defaults: dict[sp.Symbol, float] | None = None,
    ) -> None:
        self.printer = printer
        self.defaults = {s: sp.Float(v) for s, v in (defaults or {}).items()}
        self.scalar_defs: dict[sp.Symbol, sp.Expr] = {}
        self.arrays = arrays  # names of the full-size array inputs
        self.program = Program()
        self.symbols: dict[sp.Symbol, Operand] = {}
        self.memo: dict[sp.Expr, Operand] = {}
        #: CSE temporaries computed at their first use (a class sum that only a total needs
        #: never becomes a row array)
        self.lazy: dict[sp.Symbol, sp.Expr] = {}
        #: > 0 while lowering a Piecewise/Max/Min branch value (its statements are quiet)
        self.quiet = 0
        #: CSE temporaries that only discardable branches use (see ``mark_branches``)
        self.branch_only: frozenset[sp.Symbol] = frozenset()

    # ------------------------------------------------------------------ registers

    def _new(self, kind: str) -> int:
        self.program.kinds.append(kind)
        return len(self.program.kinds) - 1

    def kind_of(self, op: Operand) -> str | None:
        return self.program.kinds[op] if isinstance(op, int) else None

    def emit(
        self,
        template: str,
        args: tuple[Operand, ...],
        kind: str,
        alias: tuple[int, ...] | None = None,
        skip_if_alias: int | None = None,
    ) -> int:
        """Append a statement writing a new register of ``kind``; return the register."""
        dest = self._new(kind)
        if alias is None:
            alias = tuple(i for i, a in enumerate(args) if self.kind_of(a) == kind)
        else:
            alias = tuple(i for i in alias if self.kind_of(args[i]) == kind)
        self.program.statements.append(
            Statement(template, args, dest, alias, skip_if_alias, quiet=self.quiet > 0)
        )
        return dest

    def line(self, template: str, args: tuple[Operand, ...] = ()) -> None:
        """Append a statement without a destination buffer (a scalar assignment, a return)."""
        self.program.statements.append(Statement(template, args, quiet=self.quiet > 0))

    def mark_branches(self, replacements, outputs) -> None:
        """Record which CSE temporaries only Piecewise/Max/Min use (branch values and
        conditions): they are computed quietly. A select discards the values of the branch not
        taken, and a comparison of an overflowed operand (expm1(800) < 0) is still right."""
        defs = dict(replacements)
        needed: set[sp.Symbol] = set()
        seen: set[sp.Basic] = set()
        stack = list(outputs)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if node in defs:
                needed.add(node)
                stack.append(defs[node])
            elif not isinstance(node, sp.Piecewise | where | sp.Max | sp.Min):
                stack.extend(node.args)
        self.branch_only = frozenset(defs) - needed

    def _quietly(self, expr: sp.Expr) -> Operand:
        """Return ``expr``'s operand, its statements marked quiet (a discardable branch)."""
        self.quiet += 1
        try:
            return self.value(expr)
        finally:
            self.quiet -= 1

    # ------------------------------------------------------------------ classification

    def rank(self, expr: sp.Expr) -> int:
        return self.printer.rank(expr)

    def is_bool(self, expr: sp.Basic) -> bool:
        if isinstance(expr, sp.Symbol):
            op = self.symbols.get(expr)
            return self.kind_of(op) in (MASK, ROW_MASK) if op is not None else False
        return isinstance(expr, sp.Rel | sp.And | sp.Or | sp.Not) or expr in (
            sp.true,
            sp.false,
        )

    def _kind(self, rank: int, boolean: bool = False) -> str:
        if rank >= 2:
            return MASK if boolean else FULL
        return ROW_MASK if boolean else ROW

    def _result_kind(self, args: tuple[Operand, ...], boolean: bool = False) -> str:
        kinds = [self.kind_of(a) for a in args]
        full = any(k in (FULL, MASK) for k in kinds) or any(a in self.arrays for a in args)
        if not full and not any(k in (ROW, ROW_MASK) for k in kinds):
            full = True  # only inputs and scalars: inputs are full size
        return self._kind(2 if full else 1, boolean)

    def scalar(self, expr: sp.Expr) -> str:
        """Print a scalar (hyper-parameter) expression. One that divides by, or takes a
        fractional power of, a compound base is computed in numpy float64, so a value making it
        1/0 or sqrt(-1) (1/(a - 0.5) at a = 0.5) gives inf or NaN as the plain formula's array
        arithmetic does, not ZeroDivisionError or a complex number; it is converted back to a
        Python float (so float32 arrays are not upcast)."""
        risky = any(
            (p.exp.is_negative or not p.exp.is_integer) and not p.base.is_positive
            for p in expr.atoms(sp.Pow)
        )  # 1/beta at beta = 0 too: numpy's inf, as the docs promise, not ZeroDivisionError
        if not risky or isinstance(expr, sp.logic.boolalg.Boolean) or not expr.free_symbols:
            return strip_outer_parens(self.printer.doprint(expr))
        names = {s: sp.Symbol(f"np.float64({s.name})") for s in expr.free_symbols}
        return f"float({strip_outer_parens(self.printer.doprint(expr.xreplace(names)))})"

    # ------------------------------------------------------------------ lowering

    def total(self, expr: sp.Expr, var: str, count: str, weight: str | None = None) -> None:
        """Append lines that sum ``expr`` over its ``count`` rows (or elements) into ``var``.

        A sum is linear, so each term is reduced on its own as soon as it is computed (its
        buffer is free again at once); a sum over classes inside a term adds into the same
        total, a product of two arrays goes to ``np.vdot``, which never builds the product, and
        a term whose coefficient depends on a hyper-parameter is skipped when that is zero.
        With ``weight`` (the name of an optional per-element or per-row weight array), each
        term's sum goes through the run-time's ``_total``, which weighs it when one is given.
        """
        terms = sorted(sp.Add.make_args(expr), key=lambda t: self._guard(t) is not None)
        for i, term in enumerate(terms):
            if self.rank(term) == 0:
                # constant in the inputs (a hyper-parameter's Piecewise): once per element
                scal, rest = term, sp.S.One
            else:
                factors = sp.Mul.make_args(term)
                scal = sp.Mul(*[f for f in factors if self.rank(f) == 0 and not self.is_bool(f)])
                rest = term / scal
            sign = "+"
            if scal.could_extract_minus_sign():
                scal, sign = -scal, "-"
            guard = self._guard(scal * rest)
            coef = "" if scal == 1 else f"{self._coefficient(scal)}*"
            if rest in self.lazy and rest not in self.memo:
                rest = self.lazy[rest]  # a class sum not computed yet: sum it in the total
            if isinstance(rest, axis_sum):
                rest = rest.args[0]  # summing per-sample class sums = summing every element
            arrays = sp.Mul.make_args(rest)
            if rest.is_number:
                piece, ops = f"{count}", ()
                if weight is not None:
                    piece = f"_total({weight}, None, {count})"
                coef = f"{self._coefficient(scal * rest)}*"
            elif len(arrays) == 2 and all(
                self.rank(f) == self.rank(rest) and not self.is_bool(f) and not _divides(f)
                for f in arrays
            ):
                ops = tuple(self.value(f) for f in arrays)
                piece = "np.vdot({0}, {1})" if weight is None else f"_total({weight}, {{0}}, {{1}})"
            else:
                ops = (self.value(rest),)
                piece = "np.sum({0})" if weight is None else f"_total({weight}, {{0}})"
            if i == 0:
                self.line(f"{var} = {'-' if sign == '-' else ''}{coef}{piece}", ops)
            elif guard is not None:
                self.line(f"if {guard} != 0:\n    {var} {sign}= {coef}{piece}", ops)
            else:
                self.line(f"{var} {sign}= {coef}{piece}", ops)

    def _coefficient(self, scal: sp.Expr) -> str:
        """Print a scalar factor of a total, parenthesized (through ``scalar``: 1/a at a = 0 is
        inf, not ZeroDivisionError)."""
        text = self.scalar(scal)
        return text if text.startswith("float(") else self.printer.parenthesize(scal, 50)

    def _guard(self, term: sp.Expr) -> str | None:
        """Return the scalar coefficient of ``term`` when it depends on a hyper-parameter."""
        scal = sp.Mul(
            *[f for f in sp.Mul.make_args(term) if self.rank(f) == 0 and not self.is_bool(f)]
        )
        if scal.is_number or self.rank(term) == 0 or not self.zero_by_default(scal):
            return None
        return self.scalar(scal)

    def _at_defaults(self, c: sp.Expr, inv_n: sp.Expr) -> sp.Expr | None:
        """Return scalar ``c`` at the hyper-parameters' defaults and 1/n = ``inv_n`` (other
        symbols: e/3, no special value); None where a symbol stands for a condition."""
        value = c
        for _ in range(len(self.scalar_defs) + 1):  # see through scalar CSE temporaries
            value = value.xreplace(self.scalar_defs)
        value = value.xreplace({**self.defaults, INV_N: inv_n})
        try:
            return value.xreplace({s: sp.E / 3 for s in value.free_symbols})
        except TypeError:  # a symbol stands for a condition (a Piecewise inside the scalar)
            return None

    def zero_by_default(self, c: sp.Expr) -> bool:
        """Tell whether scalar ``c`` is 0 at the hyper-parameters' defaults (label_smoothing
        = 0): only then is a test for zero worth a line of the emitted code."""
        value = self._at_defaults(c, sp.E / 3)  # 1/n is never 0
        return value is not None and value.is_zero is True

    def one_by_default(self, c: sp.Expr) -> bool:
        """Tell whether scalar ``c`` is 1 at the hyper-parameters' defaults with ``count=1``
        (the 1/n of a per-sample gradient, as boosting asks for it): only then is a test for
        one worth a line of the emitted code."""
        value = self._at_defaults(c, sp.S.One)
        return value is not None and (value - 1).is_zero is True

    def assign(self, sym: sp.Symbol, expr: sp.Expr) -> None:
        """Lower one CSE replacement ``sym = expr``.

        A scalar (a hyper-parameter expression, or a condition on hyper-parameters only) is a
        plain Python assignment, so scalar text printed later may name it.
        """
        if sym in self.branch_only:
            self.branch_only = self.branch_only - {sym}
            self.quiet += 1
            try:
                return self.assign(sym, expr)
            finally:
                self.quiet -= 1
        if self.rank(expr) == 0:
            self.printer.ranks[sym] = 0
            self.printer.scalars = self.printer.scalars | {sym}
            self.line(f"{sym.name} = {self.scalar(expr)}")
            self.scalar_defs[sym] = expr
            self.symbols[sym] = sym.name
            return
        self.printer.ranks[sym] = self.rank(expr)
        if isinstance(expr, axis_sum):
            self.lazy[sym] = expr
            return
        self.symbols[sym] = self._named(sym, self.value(expr))

    def _named(self, sym: sp.Symbol, op: Operand) -> Operand:
        """Mark the statement that computed register ``op`` as completing temporary ``sym``."""
        if isinstance(op, int):
            for st in reversed(self.program.statements):
                if st.dest == op:
                    st.completes = st.completes or sym.name
                    break
        return op

    def value(self, expr: sp.Expr) -> Operand:
        """Return the operand holding ``expr``, appending the statements that compute it."""
        if isinstance(expr, _Bound):
            return expr.reg
        if expr in self.memo:
            return self.memo[expr]
        if isinstance(expr, sp.Symbol) and expr in self.symbols:
            return self.symbols[expr]
        if expr in self.lazy:
            op = self._named(expr, self.value(self.lazy[expr]))
            self.memo[expr] = self.symbols[expr] = op
            return op
        if expr.is_Atom or (self.rank(expr) == 0 and not self.is_bool(expr)):
            return self.scalar(expr)
        op = self._lower(expr)
        self.memo[expr] = op
        return op

    def _lower(self, expr: sp.Expr) -> Operand:
        if expr.is_Add:
            return self._add(expr)
        if expr.is_Mul:
            return self._mul(expr)
        if expr.is_Pow:
            return self._pow(expr)
        for types, lower in _LOWER_BY_TYPE:
            if isinstance(expr, types):
                return lower(self, expr)
        name = type(expr).__name__
        if name in UFUNCS and isinstance(expr, sp.Function):
            return self._ufunc(UFUNCS[name], expr.args)
        return self._fallback(expr)

    def _relational(self, expr: sp.Rel) -> int:
        return self._ufunc(_RELATIONAL[expr.rel_op], expr.args, boolean=True)

    def _step(self, expr: sp.Expr) -> int:
        """1.0 where the argument is >= 0, else 0.0, compared straight into a float array (one
        pass): arithmetic on it (max(t, step), 1 - 2 step) then runs float by float, twice as
        fast as on a bool mask. step(-u) compares u <= 0 (the same for every u, NaN and -0
        included) without negating u first."""
        (arg,) = expr.args
        if arg.could_extract_minus_sign():
            return self._ufunc("less_equal", (-arg, sp.S.Zero))
        return self._ufunc("greater_equal", (arg, sp.S.Zero))

    def _and_or(self, expr: sp.Expr) -> Operand:
        name = "logical_and" if isinstance(expr, sp.And) else "logical_or"
        return self._fold(name, sorted(expr.args, key=sp.default_sort_key), boolean=True)

    def _not(self, expr: sp.Expr) -> int:
        return self._ufunc("logical_not", expr.args, boolean=True)

    def _exp(self, expr: sp.Expr) -> int:
        return self._ufunc("exp", expr.args)

    def _cosh(self, expr: sp.Expr) -> int:
        """cosh that may overflow: its inf is the limit the caller wants (1/inf = 0)."""
        arg = self.value(expr.args[0])
        return self.emit(
            'with np.errstate(over="ignore"):  # inf where 1/(2 + 2 cosh) is 0\n'
            "    np.cosh({0}, out={d})",
            (arg,),
            self._result_kind((arg,)),
        )

    def _axis_max(self, expr: sp.Expr) -> int:
        arg = self.value(expr.args[0])
        return self.emit("np.max({0}, axis=-1, keepdims=True, out={d})", (arg,), ROW, alias=())

    def _where(self, expr: sp.Expr) -> int:
        cond, a, b = expr.args
        return self._select(cond, a, b)

    def _ufunc(self, name: str, args, boolean: bool = False) -> int:
        ops = tuple(self.value(a) for a in args)
        fields = ", ".join(f"{{{i}}}" for i in range(len(ops)))
        return self.emit(f"np.{name}({fields}, out={{d}})", ops, self._result_kind(ops, boolean))

    def _binary(self, name: str, a: Operand, b: Operand, boolean: bool = False) -> int:
        ops = (a, b)
        return self.emit(
            f"np.{name}({{0}}, {{1}}, out={{d}})", ops, self._result_kind(ops, boolean)
        )

    def _fold(self, name: str, args, boolean: bool = False) -> Operand:
        acc = self.value(args[0])
        for a in args[1:]:
            acc = self._binary(name, acc, self.value(a), boolean)
        return acc

    def _add(self, expr: sp.Expr) -> Operand:
        common = self._common_scalar(expr)
        if common is not None:
            # c*a + c*b - c*d: one multiply by c after the sum instead of one per term
            inner = self.value(sp.Add(*(t / common for t in sp.Add.make_args(expr))))
            return self._scale(inner, common)
        scalars, positive, negative = [], [], []
        for term in sp.Add.make_args(expr):
            if self.rank(term) == 0 and not self.is_bool(term):
                scalars.append(term)
                continue
            coeff, rest = term.as_coeff_Mul()
            # a negative term with its own scalar or per-sample multiplier folds the sign in
            folds = any(self.rank(f) < 2 for f in sp.Mul.make_args(rest))
            (negative if coeff.is_negative and not folds else positive).append(term)
        # full-size terms after the small ones, so a per-sample sum is formed before the
        # full array is touched
        order = sorted(positive, key=self.rank)
        if order:
            acc = self.value(order[0])
            for term in order[1:]:
                acc = self._binary("add", acc, self.value(term))
            for term in negative:
                acc = self._binary("subtract", acc, self.value(-term))
            if scalars:
                acc = self._add_scalar(acc, sp.Add(*scalars))
            return acc
        acc = self.value(-negative[0])
        for term in negative[1:]:
            acc = self._binary("add", acc, self.value(-term))
        if scalars:
            return self._binary("subtract", self.scalar(sp.Add(*scalars)), acc)
        return self.emit("np.negative({0}, out={d})", (acc,), self._result_kind((acc,)))

    def _ordered_sum(self, expr: sp.Expr) -> Operand:
        """Fold the terms left to right as written (t0 + t1 is exact either way round, so
        -y + a is a - y); a negative term is subtracted: acc - t is acc + (-t) exactly."""
        first, *rest = expr.args
        if rest and _negated(first) is not None and _negated(rest[0]) is None:
            first, rest = rest[0], [first, *rest[1:]]
        acc = self.value(first)
        for term in rest:
            neg = _negated(term)
            if neg is None:
                acc = self._binary("add", acc, self.value(term))
            else:
                acc = self._binary("subtract", acc, self.value(neg))
        return acc

    def _ordered_product(self, expr: sp.Expr) -> Operand:
        """Multiply the numerator left to right, divide by the denominator's product, negate:
        exactly the operations of the printed ``-a*b*c/(d*e)``."""
        sign, k, *factors = expr.args
        num, den = factors[: int(k)], factors[int(k) :]
        acc = self._fold("multiply", num)
        if den:
            acc = self._binary("divide", acc, self._fold("multiply", den))
        if sign < 0:
            acc = self.emit("np.negative({0}, out={d})", (acc,), self._result_kind((acc,)))
        return acc

    def _common_scalar(self, expr: sp.Expr) -> sp.Expr | None:
        """Return a symbolic scalar factor that two or more array terms carry alone (e.g. 1/n)
        and every term carries, or None when factoring it out would not save a pass."""
        terms = sp.Add.make_args(expr)
        if any(isinstance(f, sp.Piecewise) for t in terms for f in sp.Mul.make_args(t)):
            return None  # sympy distributes a division into a Piecewise's branches
        shared: set[sp.Expr] | None = None
        alone = 0
        for t in terms:
            factors = [f for f in sp.Mul.make_args(t) if not f.is_Number]
            scal = {f for f in factors if self.rank(f) == 0 and not self.is_bool(f)}
            shared = scal if shared is None else shared & scal
            if self.rank(t) > 0 and len(scal) == 1:
                alone += 1
        if not shared or alone < 2:
            return None
        return sp.Mul(*sorted(shared, key=sp.default_sort_key))

    def _add_scalar(self, acc: Operand, c: sp.Expr) -> Operand:
        name, c = ("subtract", -c) if c.could_extract_minus_sign() else ("add", c)
        dest = self._binary(name, acc, self.scalar(c))
        if not c.is_number and self.zero_by_default(c):
            # adding a hyper-parameter's zero changes nothing: skip the pass when in place
            self.program.statements[-1].guard = f"{self.scalar(c)} != 0"
        return dest

    def _mul(self, expr: sp.Expr) -> Operand:
        scalars, rows, row_dens, big, dens = self._mul_factors(expr)
        # the small operands (scalars, per-sample rows) combine before the full array is touched
        small = self._small_product(sp.Mul(*scalars), rows, row_dens)
        acc: Operand | None = None
        for f in big:
            acc = self.value(f) if acc is None else self._binary("multiply", acc, self.value(f))
        if dens:
            # one divisor at a time: acc / b / b never overflows where the result is finite
            # (acc / b**2 overflows in b**2 first), at the same number of passes
            if acc is None:
                acc, small = (
                    self._binary("divide", "1.0" if small is None else small, self.value(dens[0])),
                    None,
                )
                dens = dens[1:]
            for d in dens:
                acc = self._binary("divide", acc, self.value(d))
        if acc is None:
            return small if small is not None else "1.0"
        if small is None:
            return acc
        if small == "-1":
            return self.emit("np.negative({0}, out={d})", (acc,), self._result_kind((acc,)))
        if not rows and not row_dens:
            return self._scale(acc, sp.Mul(*scalars))
        return self._binary("multiply", acc, small)

    def _scale(self, acc: Operand, c: sp.Expr) -> int:
        """Multiply ``acc`` by scalar ``c``; the pass is skipped, when it runs in place, where
        ``c`` is 1 at run time and may be by default (1/n at count=1: boosting's gradients)."""
        text = self.scalar(c)
        dest = self._binary("multiply", acc, text)
        if not c.is_number and self.one_by_default(c):
            self.program.statements[-1].guard = f"{text} != 1"
        return dest

    def _mul_factors(self, expr: sp.Expr) -> tuple[list, list, list, list, list]:
        """Sort a product's factors into scalars, per-sample rows, per-sample row divisors,
        full-size factors and full-size divisors (divisors as their positive powers)."""
        scalars, rows, row_dens, big, dens = [], [], [], [], []
        for f in expr.as_ordered_factors():
            divides = f.is_Pow and f.exp.is_negative and self.rank(f.base) > 0
            base = f.base ** (-f.exp) if divides else f
            if self.rank(f) == 0 and not self.is_bool(f):
                scalars.append(f)
            elif self.rank(base) == 1:
                (row_dens if divides else rows).append(base)
            elif divides and f.exp.is_Integer and f.exp >= -4:
                dens.extend([f.base] * int(-f.exp))  # divided by b, -exp times
            else:  # b**-1.5 or b**-11: one np.power / (1/b)**k that underflows, never overflows
                big.append(f)
        return scalars, rows, row_dens, big, dens

    def _small_product(self, scalar: sp.Expr, rows: list, row_dens: list) -> Operand | None:
        """Combine a product's scalar and per-sample factors; None when there are none."""
        small: Operand | None = None
        if rows:
            small = self._fold("multiply", rows)
        if row_dens:
            den = self._fold("multiply", row_dens)
            if small is None:
                num = "1.0" if scalar == 1 else self.scalar(scalar)
                small, scalar = self._binary("divide", num, den), sp.S.One
            else:
                small = self._binary("divide", small, den)
        if small is not None and scalar != 1:
            small = self._binary("multiply", small, self.scalar(scalar))
        elif scalar != 1:
            small = self.scalar(scalar)
        return small

    def _pow(self, expr: sp.Pow) -> Operand:
        base, exp = expr.args
        if exp == -1 and self.rank(base) > 0:
            return self._binary("divide", "1.0", self.value(base))
        if exp.is_negative and self.rank(base) > 0 and not exp.is_Integer:
            # b**-1.5 underflows where 1 / b**1.5 overflows first: one np.power, as written
            return self._binary("power", self.value(base), self.value(exp))
        if exp.is_negative and self.rank(base) > 0:
            # (1/b)**k, not 1/b**k: b**k overflows where b**-k only underflows
            inverse = self._binary("divide", "1.0", self.value(base))
            return self.value(_Bound(inverse) ** (-exp))
        if self.rank(base) == 0:  # a scalar raised to an array
            return self._binary("power", self.scalar(base), self.value(exp))
        b = self.value(base)
        # np.square runs twice as fast as np.multiply(b, b) here (64 Ki elements: 10 vs 22 us)
        exp = sp.Integer(int(exp)) if exp.is_Float and float(exp).is_integer() else exp
        if exp == 2:
            return self._square(b)
        if exp == 3:
            return self._binary("multiply", self._square(b), b)
        if exp == 4:
            return self._square(self._square(b))
        if exp.is_number and float(exp) == 0.5:
            return self.emit("np.sqrt({0}, out={d})", (b,), self._result_kind((b,)))
        return self._binary("power", b, self.value(exp))

    def _square(self, b: Operand) -> int:
        return self.emit("np.square({0}, out={d})", (b,), self._result_kind((b,)))

    def _minmax(self, expr: sp.Expr) -> Operand:
        if isinstance(expr, sp.Min) and len(expr.args) == 2:
            inner = [a for a in expr.args if isinstance(a, sp.Max) and len(a.args) == 2]
            if len(inner) == 1:
                hi = next(a for a in expr.args if a is not inner[0])
                lo, v = sorted(
                    inner[0].args,
                    key=lambda a: (self.rank(a) > 0, sp.default_sort_key(a)),
                )
                ops = (self._quietly(v), self._quietly(lo), self._quietly(hi))
                return self.emit("np.clip({0}, {1}, {2}, out={d})", ops, self._result_kind(ops))
        name = "maximum" if isinstance(expr, sp.Max) else "minimum"
        args = sorted(expr.args, key=lambda a: (self.rank(a) == 0, sp.default_sort_key(a)))
        acc = self._quietly(args[0])
        for a in args[1:]:  # the argument not taken may overflow: Min(1, exp(x)) at x = 800
            acc = self._binary(name, acc, self._quietly(a))
        return acc

    def _axis_sum(self, arg: sp.Expr) -> int:
        factors = sp.Mul.make_args(arg)
        if len(factors) > 1 and all(
            self.rank(f) == 2 and not (f.is_Pow and f.exp.is_negative) for f in factors
        ):
            ops = tuple(self.value(f) for f in factors)
            spec = ",".join(["...i"] * len(ops)) + "->..."
            fields = ", ".join(f"{{{i}}}" for i in range(len(ops)))
            return self.emit(f"np.einsum('{spec}', {fields}, out={{d}}[..., 0])", ops, ROW, ())
        op = self.value(arg)
        # einsum sums rows about 1.5x faster than np.sum(axis=-1); a matrix-vector product
        # with ones is as fast single-threaded but starts BLAS threads, which fight the
        # callers' own threads (symgrad.blocked with workers=2 ran 2-3x slower)
        return self.emit("np.einsum('...i->...', {0}, out={d}[..., 0])", (op,), ROW, ())

    def _select(self, cond: sp.Basic, a: sp.Expr, b: sp.Expr) -> int:
        c, va, vb = self._quietly(cond), self._quietly(a), self._quietly(b)
        kind = self._result_kind((va, vb, c) if not isinstance(c, str) else (va, vb))
        if kind in (MASK, ROW_MASK):
            kind = FULL if kind == MASK else ROW
        return self.emit(
            "np.copyto({d}, {2})\nnp.copyto({d}, {1}, where={0})",
            (c, va, vb),
            kind,
            alias=(2,),
            skip_if_alias=2,
        )

    def _piecewise(self, expr: sp.Piecewise) -> Operand:
        pieces = list(expr.args)
        if (
            len(pieces) == 2
            and pieces[1][1] is sp.true
            and all(self.rank(v) == 0 and not self.is_bool(v) and _finite(v) for v, _ in pieces)
        ):
            # a step between two scalars: b + (a - b) * mask, with no select
            (a, cond), (b, _) = pieces
            if a == 1 and b == 0 and isinstance(cond, sp.Rel):
                # the comparison writes 1.0 / 0.0 straight into a float array: one pass
                return self._ufunc(_RELATIONAL[cond.rel_op], cond.args)
            mask = self.value(cond)
            acc = self._binary("multiply", mask, self.scalar(sp.Add(a, -b)))
            return acc if b == 0 else self._add_scalar(acc, b)
        if pieces[-1][1] is sp.true:
            acc: sp.Expr = pieces.pop()[0]
        else:
            acc = sp.nan
        for value, cond in reversed(pieces):
            acc = _Bound(self._select(cond, value, acc))  # the next select's else-branch
        return self.value(acc)

    def _fallback(self, expr: sp.Expr) -> int:
        """Evaluate ``expr`` with the expression printer and copy the result into a buffer."""
        names = sorted((s for s in expr.free_symbols if s in self.symbols), key=sp.default_sort_key)
        ops = tuple(self.symbols[s] for s in names)
        marks = {s: sp.Symbol(f"__arg{i}__") for i, s in enumerate(names)}
        text = strip_outer_parens(self.printer.doprint(expr.xreplace(marks)))
        text = text.replace("{", "{{").replace("}", "}}")
        for i in range(len(names)):
            text = text.replace(f"__arg{i}__", f"{{{i}}}")
        kind = self._kind(self.rank(expr), self.is_bool(expr))
        return self.emit(f"np.copyto({{d}}, {text})", ops, kind, tuple(range(len(ops))))


# How InplaceBuilder._lower lowers each kind of node (sums, products and powers aside), tried
# in order; a function the table does not name goes through UFUNCS or the printer fallback.
_LOWER_BY_TYPE = (
    (sp.Rel, InplaceBuilder._relational),
    (step, InplaceBuilder._step),
    (sp.And | sp.Or, InplaceBuilder._and_or),
    (sp.Not, InplaceBuilder._not),
    (exp_, InplaceBuilder._exp),
    (cosh_, InplaceBuilder._cosh),
    (sp.Max | sp.Min, InplaceBuilder._minmax),
    (axis_sum, lambda self, expr: self._axis_sum(expr.args[0])),
    (axis_max, InplaceBuilder._axis_max),
    (sp.Piecewise, InplaceBuilder._piecewise),
    (where, InplaceBuilder._where),
    (ordered_sum, InplaceBuilder._ordered_sum),
    (ordered_product, InplaceBuilder._ordered_product),
)


def _negated(term: sp.Expr) -> sp.Expr | None:
    """Return -term where ``term`` carries a negative coefficient (printed with a minus)."""
    coeff, rest = term.as_coeff_Mul()
    if coeff.is_negative:
        return -coeff * rest if coeff != -1 else rest
    return None


def _finite(v: sp.Expr) -> bool:
    """Tell whether scalar ``v`` can be a step height: b + (a - b) * mask is NaN with b = NaN."""
    return not v.has(sp.nan, sp.oo, -sp.oo, sp.zoo)


def _divides(f: sp.Expr) -> bool:
    return bool(f.is_Pow and f.exp.is_negative)


class _Bound(sp.Symbol):
    """A placeholder standing for an already-computed register inside ``_select``."""

    def __new__(cls, reg: int):
        obj = super().__new__(cls, f"__reg{reg}__")
        obj.reg = reg
        return obj


def allocate(program: Program, outputs: list[int]) -> tuple[dict[int, str], dict[str, int]]:
    """Give every register a buffer name by a linear scan; return names and buffers per kind.

    A register reuses the buffer of an operand that dies at its statement when the statement
    allows it, else the most recently freed buffer of its kind (still warm in cache).
    """
    last: dict[int, int] = {}
    for i, st in enumerate(program.statements):
        for a in st.args:
            if isinstance(a, int):
                last[a] = i
    end = len(program.statements)
    for r in outputs:
        last[r] = end
    free: dict[str, list[str]] = {k: [] for k in _PREFIX}
    count: dict[str, int] = {k: 0 for k in _PREFIX}
    names: dict[int, str] = {}
    for i, st in enumerate(program.statements):
        dying = [a for a in dict.fromkeys(st.args) if isinstance(a, int) and last.get(a) == i]
        if st.dest is not None:
            kind = program.kinds[st.dest]
            reuse = [
                st.args[j]
                for j in st.alias
                if st.args[j] in dying and program.kinds[st.args[j]] == kind
            ]
            if reuse:
                names[st.dest] = names[reuse[0]]
                dying.remove(reuse[0])
            elif free[kind]:
                names[st.dest] = free[kind].pop()
            else:
                names[st.dest] = f"{_PREFIX[kind]}{count[kind]}"
                count[kind] += 1
            if st.dest not in last:  # never read: free at once
                free[kind].append(names[st.dest])
        for a in dying:
            if names[a] not in free[program.kinds[a]]:
                free[program.kinds[a]].append(names[a])
    return names, count


def render(program: Program, names: dict[int, str], rename: dict[str, str]) -> list[str]:
    """Return the program's source lines with buffers named (``rename`` maps e.g. b0 -> out)."""

    def name(op: Operand) -> str:
        return rename.get(names[op], names[op]) if isinstance(op, int) else op

    lines: list[str] = []
    quiet: list[str] = []
    for st in program.statements:
        args = [name(a) for a in st.args]
        dest = name(st.dest) if st.dest is not None else ""
        text = st.template.format(*args, d=dest)
        if st.skip_if_alias is not None and args[st.skip_if_alias] == dest:
            text = text.split("\n", 1)[1]
        if st.guard is not None and args and args[0] == dest:
            text = f"if {st.guard}:\n    {text}"
        if st.completes:
            text += f"  # {st.completes}"
        if not st.quiet:
            lines.extend(_quiet_block(quiet))
            quiet = []
        (quiet if st.quiet else lines).extend(text.split("\n"))
    return lines + _quiet_block(quiet)


#: Floating-point errors a discardable branch may raise without the result being wrong.
QUIET = 'with np.errstate(over="ignore", divide="ignore", invalid="ignore"):'
#: Statements that raise no floating-point error, NaN operands included.
_SAFE = re.compile(
    r"(if .*:\s*)?np\.(copyto|negative|abs|minimum|maximum|clip|logical_\w+|"
    r"(greater|less|not)_?(equal)?|equal)\("
)


def _quiet_block(lines: list[str]) -> list[str]:
    """Return ``lines`` under ``QUIET`` where one of them may raise (else as they are)."""
    if all(_SAFE.match(line.strip()) for line in lines):
        return lines
    return [QUIET, *(f"    {line}" for line in lines)]


# ---------------------------------------------------------------- the body read back as a formula

#: ufunc -> the operator a plain formula spells it with (others stay np.<ufunc>(...))
_BINARY = {
    "add": ast.Add,
    "subtract": ast.Sub,
    "multiply": ast.Mult,
    "divide": ast.Div,
    "true_divide": ast.Div,
    "power": ast.Pow,
}
_COMPARE = {
    "greater": ast.Gt,
    "greater_equal": ast.GtE,
    "less": ast.Lt,
    "less_equal": ast.LtE,
    "equal": ast.Eq,
    "not_equal": ast.NotEq,
}


class PlainForm:
    """Read an emitted body (its statements as ``render`` prints them) back as plain numpy:
    each buffer's value as an expression of the inputs, the statements tagged ``# tN`` as named
    temporaries, the rest inlined where they are read. The docstring shows this, so the plain
    form is the body's own tree, one ufunc at a time, never a second printing of the maths.

    ``like`` names the input whose shape a constant result takes (``np.full``); ``arrays``
    are the array inputs."""

    def __init__(self, like: str, arrays: list[str]) -> None:
        self.like = like
        self.arrays = set(arrays)
        self.env: dict[str, ast.expr] = {}
        self.lines: list[str] = []

    def read(self, body: list[str]) -> list[str]:
        """Return the plain lines (``tN = ...`` and the ``return``) of ``body``."""
        text = "\n".join(body)
        tags = {}
        for i, line in enumerate(text.split("\n"), 1):
            found = re.search(r"  # (t\d+)$", line)
            if found:
                tags[i] = found.group(1)
        module = ast.parse(text)
        self._block(module.body, tags)
        return self.lines

    def _block(self, statements: list[ast.stmt], tags: dict[int, str]) -> None:
        for st in statements:
            if isinstance(st, ast.With):
                self._block(st.body, tags)
            elif isinstance(st, ast.If):
                if "weight" not in ast.unparse(st.test):  # the plain form is unweighted
                    self._block(st.body, tags)  # a zero-coefficient term adds nothing
            else:
                self._statement(st)
                tag = tags.get(st.end_lineno)
                if tag is not None:
                    self._name(st, tag)

    def _name(self, st: ast.stmt, tag: str) -> None:
        """Give the buffer ``st`` wrote the temporary name ``tag``."""
        dest = self._dest(st)
        self.lines.append(f"{tag} = {ast.unparse(self.env[dest])}")
        self.env[dest] = ast.Name(tag)
        self.arrays.add(tag)

    def _dest(self, st: ast.stmt) -> str:
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            call = st.value
            for k in call.keywords:
                if k.arg == "out":
                    return _buffer(k.value)
            return _buffer(call.args[0])  # np.copyto(dest, ...)
        target = st.targets[0] if isinstance(st, ast.Assign) else st.target
        return target.id

    def _statement(self, st: ast.stmt) -> None:
        if isinstance(st, ast.Return):
            value = self._sub(st.value)
            self.lines.append(f"return {ast.unparse(value)}")
        elif isinstance(st, ast.Assign):
            self.env[st.targets[0].id] = self._sub(st.value)
            if isinstance(st.value, ast.Name) or _scalar_line(st):
                self.lines.append(ast.unparse(st))
                self.env[st.targets[0].id] = ast.Name(st.targets[0].id)
        elif isinstance(st, ast.AugAssign):
            name = st.target.id
            self.env[name] = ast.BinOp(self.env[name], st.op, self._sub(st.value))
        else:
            self._call(st.value)

    def _call(self, call: ast.Call) -> None:
        fn = call.func.attr
        out = next((k.value for k in call.keywords if k.arg == "out"), None)
        args = [self._sub(a) for a in call.args]
        if fn == "copyto":
            dest = _buffer(call.args[0])
            where = next((k.value for k in call.keywords if k.arg == "where"), None)
            value = args[1]
            if where is not None:
                value = _np("where", [self._sub(where), value, self.env[dest]])
            elif not any(isinstance(n, ast.Name) and n.id in self.arrays for n in ast.walk(value)):
                if isinstance(value, ast.Constant) and isinstance(value.value, int):
                    value = ast.Constant(float(value.value))  # a float array holds it
                value = _np("full", [_np("shape", [ast.Name(self.like)]), value])
            self.env[dest] = value
            return
        keywords = [self._sub_keyword(k) for k in call.keywords if k.arg != "out"]
        if fn in _BINARY and len(args) == 2:
            value = ast.BinOp(args[0], _BINARY[fn](), args[1])
        elif fn in _COMPARE:
            value = ast.Compare(args[0], [_COMPARE[fn]()], [args[1]])
            if not _buffer(out).startswith(("m", "rm")):  # written into a float array
                value = ast.BinOp(value, ast.Mult(), ast.Constant(1.0))
        elif fn == "negative":
            value = ast.UnaryOp(ast.USub(), args[0])
        elif fn == "square":
            value = ast.BinOp(args[0], ast.Pow(), ast.Constant(2))
        else:
            value = ast.Call(call.func, args, keywords)
        if isinstance(out, ast.Subscript):  # einsum into a row: out=r[..., 0]
            value = ast.parse(f"({ast.unparse(value)})[..., None]", mode="eval").body
        self.env[_buffer(out)] = value

    def _sub_keyword(self, k: ast.keyword) -> ast.keyword:
        return ast.keyword(k.arg, self._sub(k.value))

    def _sub(self, node: ast.expr) -> ast.expr:
        """Return ``node`` with every buffer replaced by the expression it holds."""
        env = self.env

        class Replace(ast.NodeTransformer):
            def visit_Name(self, n: ast.Name) -> ast.expr:
                if n.id in env:
                    return env[n.id]
                if n.id == "out" and "rows" in env:  # a class-axis loss's rows
                    return ast.parse(f"({ast.unparse(env['rows'])})[..., 0]", mode="eval").body
                return n

            def visit_Call(self, n: ast.Call) -> ast.expr:
                if isinstance(n.func, ast.Name) and n.func.id == "_total":
                    return _plain_total([self.visit(a) for a in n.args[1:]])
                return self.generic_visit(n)

        return Replace().visit(copy.deepcopy(node))


def _buffer(node: ast.expr) -> str:
    """Return the buffer a destination names (``b1``, or ``r0`` of ``r0[..., 0]``)."""
    return node.value.id if isinstance(node, ast.Subscript) else node.id


def _np(name: str, args: list[ast.expr]) -> ast.Call:
    return ast.Call(ast.Attribute(ast.Name("np"), name), args, [])


def _plain_total(args: list[ast.expr]) -> ast.expr:
    """Return ``_total(weight, a, b)`` unweighted: sum(a*b), sum(a), or the count b."""
    a = args[0]
    if isinstance(a, ast.Constant) and a.value is None:
        return args[1]
    if len(args) == 2:
        return _np("vdot", args)
    return _np("sum", [a])


def _scalar_line(st: ast.Assign) -> bool:
    """Tell whether ``st`` is a scalar temporary's own line (``t0 = 2*inv_n``)."""
    return re.fullmatch(r"t\d+", st.targets[0].id) is not None
