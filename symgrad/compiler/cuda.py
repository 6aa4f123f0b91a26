"""The C spellings of the fused-kernel target, and how a class-axis function splits into kernels.

The body is the same CSE as the numpy target (one ``const T tK = ...;`` per shared value, then
one assignment per output), printed in C with the shared spelling table; the type ``T`` is the
kernel's float type (float or double), and every literal is cast to it so float32 stays float32.
Losses get value and gradient in one pass and the mean as a second, reduction pass (``sum``).
The same bodies compile as plain C on a CPU (``tests/compiler/test_cuda_c_on_cpu.py``). A function
with a class axis (softmax, softmax cross-entropy) becomes a few kernels run in order: each row
reduction (the max, a sum over classes) a ReductionKernel over the last axis, then the
element-wise part as one ElementwiseKernel per output shape (``row_stages``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.compiler.emitted import FunctionPlan
from symgrad.compiler.lower import Emitter
from symgrad.compiler.primitives import axis_max, axis_sum
from symgrad.compiler.printer import SymgradPrinter, strip_outer_parens
from symgrad.compiler.spellings import C, spellings
from symgrad.compiler.traverse import bottom_up

#: sympy function name -> C function (C99 <math.h>, CUDA's device maths, or a preamble macro)
FUNCTIONS = spellings(C)

#: Macros every kernel may use; valid C99 and CUDA C++, generic in the float type.
PREAMBLE = r"""#ifndef INFINITY  /* NVRTC has no <math.h>: the IEEE bit patterns (CUDART_INF_F) */
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fffffff)
#endif
#define sg_sign(a) ((T)(((a) > 0) - ((a) < 0)))
#define sg_logaddexp(a, b) (fmax((a), (b)) + log1p(exp(-fabs((a) - (b)))))
"""


@dataclass(frozen=True)
class KernelPlan(FunctionPlan):
    """A wrapper function and the ElementwiseKernel it launches: (in params, out params, body)."""

    kernel: tuple[str, str, str] = ("", "", "")
    #: a class-axis function's kernels, run in order (see ``row_stages``)
    stages: tuple[tuple[str, str, str, str], ...] = ()


class CPrinter(SymgradPrinter):
    """Print a lowered expression as a C expression over the float type ``T``."""

    COSH_DENSITY = False  # the exp(-|u|) form: no overflow to mask on other libraries

    def _c(self, name: str, *args: sp.Expr) -> str:
        return f"{name}({', '.join(strip_outer_parens(self._print(a)) for a in args)})"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in FUNCTIONS:
            return self._c(FUNCTIONS[name], *expr.args)
        raise ValueError(f"function {name!r} cannot be lowered to C")

    def _print_ncdf(self, expr):
        arg = sp.Float((-sp.sqrt(2) / 2).evalf(20), 17) * expr.args[0]
        return f"((T)0.5*{self._c('erfc', arg)})"

    def _print_exp_(self, expr):
        return self._c("exp", expr.args[0])

    def _print_step(self, expr):
        return f"(T)({self._print(expr.args[0])} >= 0)"

    def _print_where(self, expr):
        cond, a, b = expr.args
        return f"({strip_outer_parens(self._print(cond))} ? {self._print(a)} : {self._print(b)})"

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        out = self._print(pieces.pop()[0]) if pieces[-1][1] is sp.true else "NAN"
        for value, cond in reversed(pieces):
            out = f"({strip_outer_parens(self._print(cond))} ? {self._print(value)} : {out})"
        return out

    def _fold(self, ufunc: str, args) -> str:
        name = {"maximum": "fmax", "minimum": "fmin"}[ufunc]
        args = sorted(args, key=sp.default_sort_key)
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{name}({strip_outer_parens(out)}, {strip_outer_parens(self._print(a))})"
        return out

    def _print_Min(self, expr):
        return self._fold("minimum", expr.args)

    def _fold_logical(self, ufunc: str, args) -> str:
        op = {"logical_and": " && ", "logical_or": " || "}[ufunc]
        return "(" + op.join(self._print(a) for a in sorted(args, key=sp.default_sort_key)) + ")"

    def _print_Not(self, expr):
        return f"(!{self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        b = self.parenthesize(base, 60)
        if exp.is_Integer and 2 <= abs(exp) <= 4:
            product = "(" + "*".join([b] * abs(int(exp))) + ")"
            return product if exp > 0 else f"(1/{product})"
        if exp == -1:
            return f"(1/{b})"
        if exp == sp.S.Half:
            return f"sqrt({strip_outer_parens(self._print(base))})"
        if exp == -sp.S.Half:
            return f"(1/sqrt({strip_outer_parens(self._print(base))}))"
        return (
            f"pow({strip_outer_parens(self._print(base))}, {strip_outer_parens(self._print(exp))})"
        )

    def _print_Float(self, expr):
        return f"(T){float(expr)!r}"

    def _print_Integer(self, expr):
        return str(expr.p)

    def _print_Rational(self, expr):
        return f"((T){expr.p}/(T){expr.q})"

    def _print_Half(self, expr):
        return "(T)0.5"

    def _print_Exp1(self, expr):
        return f"(T){float(sp.E)!r}"

    def _print_Pi(self, expr):
        return f"(T){float(sp.pi)!r}"

    def _print_Infinity(self, expr):
        return "INFINITY"

    def _print_NegativeInfinity(self, expr):
        return "-INFINITY"

    def _print_NaN(self, expr):
        return "NAN"

    _print_ComplexInfinity = _print_NaN  # as on the numpy and array-api targets


for _name in FUNCTIONS:  # every table entry, including those sympy's printer spells itself
    setattr(CPrinter, f"_print_{_name}", CPrinter._print_Function)


#: a loss kernel's per-element weight: every output is multiplied by it (by 1 without weight=)
WEIGHT = sp.Symbol("weight", real=True)


def no_sizes(spec, used: set) -> list[str]:
    return []  # inv_n is a kernel argument


def c_body(em: Emitter, outputs: list[str]) -> str:
    """Return the kernel body: one const per CSE value, one assignment per output."""
    lines = [
        f"const T {sym.name} = {strip_outer_parens(em.printer.doprint(e))};"
        for sym, e in em.replacements
    ]
    lines += [f"{out} = {em.text(i)};" for i, out in enumerate(outputs)]
    return "\n".join(lines)


# ---------------------------------------------------------------- class-axis functions

#: stage kind -> (ReductionKernel reduce_expr, identity) for a row reduction over the last axis
REDUCE = {"max": ("fmax(a, b)", "-INFINITY"), "sum": ("a + b", "0")}


@dataclass
class _Rows:
    """A class-axis function split into kernels: row reductions, then element-wise maps."""

    em: Emitter
    #: CSE temporaries that are not reductions, each printed as a ``const`` where needed
    defs: dict[sp.Symbol, sp.Expr]
    #: (kind, result symbol, argument with the temporaries inlined), in dependency order
    reductions: list[tuple[str, sp.Symbol, sp.Expr]]
    outputs: list[sp.Expr]


def split_rows(em: Emitter) -> _Rows:
    """Give every axis_max/axis_sum of ``em``'s CSE a symbol (a row array: the replacement's own
    name when a temporary is one, else rK) and inline the temporaries into its argument, since a
    ReductionKernel maps one expression per element."""
    rows = _Rows(em, {}, [], [])
    found: dict[sp.Expr, sp.Symbol] = {}

    def inline(e: sp.Expr) -> sp.Expr:
        while e.free_symbols & rows.defs.keys():
            e = e.xreplace(rows.defs)
        return e

    def reduce(node: sp.Expr, sym: sp.Symbol | None = None) -> sp.Symbol:
        if node not in found:
            found[node] = sym or sp.Symbol(f"r{len(found)}", real=True)
            kind = "max" if isinstance(node, axis_max) else "sum"
            rows.reductions.append((kind, found[node], inline(node.args[0])))
            em.printer.ranks[found[node]] = 1
        return found[node]

    def extract(e: sp.Expr) -> sp.Expr:
        return bottom_up(e, lambda n: reduce(n) if isinstance(n, axis_max | axis_sum) else n)

    for sym, e in em.replacements:
        if isinstance(e, axis_max | axis_sum):
            reduce(type(e)(extract(e.args[0])), sym)
        else:
            rows.defs[sym] = extract(e)
            em.printer.ranks[sym] = em.printer.rank(rows.defs[sym])
    rows.outputs = [extract(e) for e in em.outputs]
    return rows


def _ordered(names: set[str], order: list[str]) -> list[str]:
    return [n for n in order if n in names]


def row_stages(
    rows: _Rows, outputs: list[tuple[str, int]], order: list[str], x: str
) -> list[tuple[str, str, str, str]]:
    """Return the kernels of a class-axis function: (kind, in params, out params, C text).

    ``max``/``sum``: a cupy.ReductionKernel over the last axis (keepdims) whose map expression is
    the C text; ``map``: a cupy.ElementwiseKernel whose body is the C text, one per output rank
    in ``outputs`` (name, 1 for one value per row or 2 for full size). ``x`` is always an input
    of a reduction and of a full-size map, so the kernel has the inputs' full shape even where
    the formula omits it (a constant Hessian).
    """
    printer = rows.em.printer
    stages = []
    for kind, sym, arg in rows.reductions:
        names = {s.name for s in arg.free_symbols} | {x}
        text = strip_outer_parens(printer.doprint(arg))
        stages.append((kind, _params(names, order), f"T {sym.name}", text))
    for rank in (1, 2):
        picked = [
            (name, e) for (name, r), e in zip(outputs, rows.outputs, strict=True) if r == rank
        ]
        if picked:
            stages.append(_map_stage(rows, picked, order, {x} if rank == 2 else set()))
    return stages


def _params(names: set[str], order: list[str]) -> str:
    return ", ".join(f"T {n}" for n in _ordered(names, order))


def _map_stage(rows: _Rows, picked: list, order: list[str], extra: set[str]) -> tuple:
    """Return the ElementwiseKernel computing ``picked`` (output name, expression) pairs."""
    printer = rows.em.printer
    needed: set[sp.Symbol] = set()
    todo = set().union(*(e.free_symbols for _, e in picked))
    while todo:
        s = todo.pop()
        if s in rows.defs and s not in needed:
            needed.add(s)
            todo |= rows.defs[s].free_symbols
    lines = [
        f"const T {s.name} = {strip_outer_parens(printer.doprint(e))};"
        for s, e in rows.defs.items()
        if s in needed
    ]
    lines += [f"{o} = {strip_outer_parens(printer.doprint(e))};" for o, e in picked]
    names = set().union(
        *(e.free_symbols for e in [*(rows.defs[s] for s in needed), *(e for _, e in picked)])
    )
    names = {n.name for n in names if n not in rows.defs} | extra
    return ("map", _params(names, order), ", ".join(f"T {o}" for o, _ in picked), "\n".join(lines))


def c_names(params: str) -> list[str]:
    return [p.split()[-1] for p in params.split(",") if p.strip()]
