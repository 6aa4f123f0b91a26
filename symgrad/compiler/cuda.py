"""The fused-kernel target: each element-wise function as one C body in a CuPy ElementwiseKernel.

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

from symgrad.compiler.kernel import INV_N, Derived
from symgrad.compiler.lower import (
    PER_SAMPLE,
    WEIGHT_DOC,
    WEIGHTS,
    Emitter,
    FunctionPlan,
    scale_by_inv_n,
    wrap_doc_line,
)
from symgrad.compiler.primitives import N_CLASSES, axis_max, axis_sum
from symgrad.compiler.printer import SymgradPrinter, strip_outer_parens
from symgrad.compiler.printer import formula as shown
from symgrad.compiler.spellings import C, spellings
from symgrad.compiler.traverse import bottom_up
from symgrad.errors import SpecError

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


for _name in FUNCTIONS:  # every table entry, including those sympy's printer spells itself
    setattr(CPrinter, f"_print_{_name}", CPrinter._print_Function)


#: a loss kernel's per-element weight: every output is multiplied by it (by 1 without weight=)
WEIGHT = sp.Symbol("weight", real=True)


def _no_sizes(spec, used: set) -> list[str]:
    return []  # inv_n is a kernel argument


def _c_body(em: Emitter, outputs: list[str]) -> str:
    """Return the kernel body: one const per CSE value, one assignment per output."""
    lines = [
        f"const T {sym.name} = {strip_outer_parens(em.printer.doprint(e))};"
        for sym, e in em.replacements
    ]
    lines += [f"{out} = {em.text(i)};" for i, out in enumerate(outputs)]
    return "\n".join(lines)


def plan_functions_cuda(derived: Derived) -> list[FunctionPlan]:
    """Return the fused kernels of one spec: each a wrapper and its kernel (in params, out
    params, C body), or for a class-axis spec its stages; the template writes both."""
    try:
        return _plan(derived)
    except ValueError as exc:  # a function or symbol with no C spelling
        spec = derived.spec
        raise SpecError(spec.name, f"cupy target: {exc}", spec.origin) from None


def _plan(derived: Derived) -> list[FunctionPlan]:
    spec = derived.spec
    if spec.class_axis:
        return _plan_rows(derived)
    x = spec.wrt.name
    arrays = [s.name for s in spec.inputs]
    hyper = [s.name for s, _ in spec.hyper]
    plans = []

    loss = spec.role == "loss"
    weights = ["weight"] if loss else []  # an array, or the scalar 1 when weight= is not given

    def emit(name: str, exprs: list[sp.Expr], outputs: list[str], first: str) -> None:
        em = Emitter(derived, [WEIGHT * e for e in exprs] if loss else exprs, CPrinter, _no_sizes)
        used = {s.name for s in em.used}
        if N_CLASSES.name in used:
            raise ValueError(f"{name}: n_classes has no element-wise meaning")
        scalars = hyper + (["inv_n"] if "inv_n" in used else [])
        in_params = ", ".join(f"T {a}" for a in arrays + weights + scalars)
        kernel = (in_params, ", ".join(f"T {o}" for o in outputs), _c_body(em, outputs))
        body = [f"{', '.join(arrays)}, = _arrays({', '.join(arrays)})"]
        if "inv_n" in scalars:
            body.append(f"weight, inv_n = _weighting({name!r}, weight, {x}, count, False)")
        elif loss:
            body.append(f"weight = _weights({name!r}, weight, {x}, False)")
        ops = arrays + weights + [f"_scalar({x}, {s})" for s in scalars]
        call = f"_kernel({name!r})({', '.join(ops)})"
        if outputs == ["value", "out"]:
            body += [f"value, out = {call}", "return value.sum(), out"]
        else:
            body.append(f"return {call}{'.sum()' if outputs == ['value'] else ''}")
        lines = [*head, *(f"{o} = {shown(e)}" for o, e in zip(outputs, exprs, strict=True))]
        lines += ["", WEIGHT_DOC] if loss else []
        doc = "\n".join([first, "", *(wrap_doc_line(line) for line in lines), "    "])
        helpers = frozenset({WEIGHTS} if loss else ())
        plans.append(KernelPlan(name, _signature(spec), "", doc, tuple(body), helpers, kernel))

    head = [line for line in spec.doc.strip().splitlines() if line][:2]
    if spec.role == "activation":
        emit(spec.name, [derived.value], ["out"], f"Evaluate {spec.name} in one fused kernel.")
        emit(f"{spec.name}_grad", [derived.grad], ["out"], f"Return d{spec.name}/d{x}, fused.")
        emit(f"{spec.name}_hess", [derived.hess], ["out"], "Return the second derivative, fused.")
        return plans
    mean = spec.role == "loss"
    value = INV_N * derived.value if mean else derived.value
    grad = scale_by_inv_n(derived.grad) if mean else derived.grad
    hess = scale_by_inv_n(derived.hess) if mean else derived.hess
    emit(spec.name, [value], ["value"], f"Return {spec.name}: one fused pass, then a sum.")
    if mean:
        emit(f"{spec.name}{PER_SAMPLE}", [derived.value], ["out"], "Return the loss per element.")
    emit(f"{spec.name}_grad", [grad], ["out"], f"Return d{spec.name}/d{x} in one fused pass.")
    if mean:
        emit(
            f"{spec.name}_value_and_grad",
            [value, grad],
            ["value", "out"],
            f"Return ({spec.name}, {spec.name}_grad): value and gradient in one pass, then a sum.",
        )
    emit(f"{spec.name}_hess", [hess], ["out"], "Return the second derivative, fused.")
    return plans


def _signature(spec, extra: tuple[str, ...] = ()) -> str:
    arrays = [s.name for s in spec.inputs] + list(extra)
    keywords = [f"{s.name}: float = {v!r}" for s, v in spec.hyper]
    if spec.role == "loss":
        keywords += ["count: float | None = None", "weight=None"]
    return ", ".join(arrays + (["*", *keywords] if keywords else []))


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


def _split_rows(em: Emitter) -> _Rows:
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


def _c_names(params: str) -> list[str]:
    return [p.split()[-1] for p in params.split(",") if p.strip()]


def _plan_rows(derived: Derived) -> list[FunctionPlan]:
    """Return the kernels of a class-axis spec: each function as row reductions (row max,
    sums over classes) and one or two element-wise maps, in the order the wrapper runs them."""
    spec = derived.spec
    x = spec.wrt.name
    arrays = [s.name for s in spec.inputs]
    hyper = [s.name for s, _ in spec.hyper]
    loss = spec.role == "loss"
    head = [line for line in spec.doc.strip().splitlines() if line][:2]
    plans = []

    def emit(name, exprs, outputs, first, finish, extra=()):
        em = Emitter(derived, [WEIGHT * e for e in exprs] if loss else exprs, CPrinter, _no_sizes)
        em.printer.ranks[WEIGHT] = 1  # one weight per row
        rows = _split_rows(em)
        scalars = [*hyper, "n_classes", "inv_n"]
        reduced = [sym.name for _, sym, _ in rows.reductions]
        order = [*arrays, *extra, *reduced, *(["weight"] if loss else []), *scalars]
        ranks = [1 if o == "value" or name.endswith(PER_SAMPLE) else 2 for o in outputs]
        stages = row_stages(rows, list(zip(outputs, ranks, strict=True)), order, x)
        used = set().union(*(_c_names(st[1]) for st in stages))
        body = _row_prologue(name, [*arrays, *extra], x, loss, used)
        for i, (kind, ins, outs, _) in enumerate(stages):
            args = [f"_scalar({x}, {n})" if n in scalars else n for n in _c_names(ins)]
            axis = "" if kind == "map" else ", axis=-1, keepdims=True"
            body.append(
                f"{', '.join(_c_names(outs))} = _stage({name!r}, {i})({', '.join(args)}{axis})"
            )
        body.append(f"return {finish}")
        lines = [*head, *(f"{o} = {shown(e)}" for o, e in zip(outputs, exprs, strict=True))]
        lines += ["", WEIGHT_DOC] if loss else []
        doc = "\n".join([first, "", *(wrap_doc_line(line) for line in lines), "    "])
        helpers = frozenset({WEIGHTS} if loss else ())
        signature = _signature(spec, extra)
        plans.append(
            KernelPlan(name, signature, "", doc, tuple(body), helpers, stages=tuple(stages))
        )

    if spec.role == "activation":
        emit(
            spec.name,
            [derived.value],
            ["out"],
            f"Evaluate {spec.name}: row reductions, then one fused map.",
            "out",
        )
        if derived.vjp is not None:
            emit(
                f"{spec.name}_vjp",
                [derived.vjp],
                ["out"],
                f"Return grad_output pulled back through {spec.name}, fused.",
                "out",
                ("grad_output",),
            )
        return plans
    value = INV_N * derived.value
    grad = scale_by_inv_n(derived.grad)
    emit(
        spec.name,
        [value],
        ["value"],
        f"Return {spec.name}: row reductions, one fused map, a sum.",
        "value.sum()",
    )
    emit(
        f"{spec.name}_per_sample",
        [derived.value],
        ["out"],
        "Return the loss per sample (row).",
        "out[..., 0]",
    )
    emit(
        f"{spec.name}_grad",
        [grad],
        ["out"],
        f"Return d{spec.name}/d{x}: row reductions, one fused map.",
        "out",
    )
    emit(
        f"{spec.name}_value_and_grad",
        [value, grad],
        ["value", "out"],
        f"Return ({spec.name}, {spec.name}_grad) from shared row reductions.",
        "value.sum(), out",
    )
    if derived.hess is not None:
        emit(
            f"{spec.name}_hess",
            [scale_by_inv_n(derived.hess)],
            ["out"],
            "Return the second derivative's diagonal, fused.",
            "out",
        )
    if derived.hvp is not None:
        emit(
            f"{spec.name}_hvp",
            [scale_by_inv_n(derived.hvp)],
            ["out"],
            f"Return the Hessian of the mean loss in {x} times ``vector``.",
            "out",
            ("vector",),
        )
    return plans


def _row_prologue(name: str, arrays: list[str], x: str, loss: bool, used: set[str]) -> list[str]:
    """Return the wrapper's first lines: inputs as CuPy arrays, weight= and the sizes."""
    body = [f"{', '.join(arrays)}, = _arrays({', '.join(arrays)})"]
    if loss and "inv_n" in used:
        body.append(f"weight, inv_n = _weighting({name!r}, weight, {x}, count, True)")
    elif loss:
        body.append(f"weight = _weights({name!r}, weight, {x}, True)")
    if "n_classes" in used:
        body.append(f"n_classes = {x}.shape[-1]")
    return body
