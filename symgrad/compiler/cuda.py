"""The fused-kernel target: each element-wise function as one C body in a CuPy ElementwiseKernel.

The body is the same CSE as the numpy target (one ``const T tK = ...;`` per shared value, then
one assignment per output), printed in C with the shared spelling table; the type ``T`` is the
kernel's float type (float or double), and every literal is cast to it so float32 stays float32.
Losses get value and gradient in one pass and the mean as a second, reduction pass (``sum``).
The same bodies compile as plain C on a CPU (``tests/compiler/test_cuda_c_on_cpu.py``). Kernels with a
class axis (softmax, softmax cross-entropy) need row reductions and are not emitted here.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.compiler.kernel import INV_N, Derived
from symgrad.compiler.lower import Emitter, FunctionPlan, scale_by_inv_n, wrap_doc_line
from symgrad.compiler.primitives import N_CLASSES
from symgrad.compiler.printer import SymgradPrinter, strip_outer_parens
from symgrad.compiler.printer import formula as shown
from symgrad.compiler.spellings import C, spellings
from symgrad.errors import SpecError

#: sympy function name -> C function (C99 <math.h>, CUDA's device maths, or a preamble macro)
FUNCTIONS = spellings(C)

#: Macros every kernel may use; valid C99 and CUDA C++, generic in the float type.
PREAMBLE = r"""#define sg_sign(a) ((T)(((a) > 0) - ((a) < 0)))
#define sg_logaddexp(a, b) (fmax((a), (b)) + log1p(exp(-fabs((a) - (b)))))
"""


@dataclass(frozen=True)
class KernelPlan(FunctionPlan):
    """A wrapper function and the ElementwiseKernel it launches: (in params, out params, body)."""

    kernel: tuple[str, str, str] = ("", "", "")


class CPrinter(SymgradPrinter):
    """Print a lowered expression as a C expression over the float type ``T``."""

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
    """Return the fused kernels of one element-wise spec (none for a class-axis spec): each a
    wrapper and its kernel (in params, out params, C body); the template writes both."""
    try:
        return _plan(derived)
    except ValueError as exc:  # a function or symbol with no C spelling
        spec = derived.spec
        raise SpecError(spec.name, f"cupy target: {exc}", spec.origin) from None


def _plan(derived: Derived) -> list[FunctionPlan]:
    spec = derived.spec
    if spec.class_axis:
        return []
    x = spec.wrt.name
    arrays = [s.name for s in spec.inputs]
    hyper = [s.name for s, _ in spec.hyper]
    plans = []

    def emit(name: str, exprs: list[sp.Expr], outputs: list[str], first: str) -> None:
        em = Emitter(derived, exprs, CPrinter, sizes=_no_sizes)
        used = {s.name for s in em.used}
        if N_CLASSES.name in used:
            raise ValueError(f"{name}: n_classes has no element-wise meaning")
        scalars = hyper + (["inv_n"] if "inv_n" in used else [])
        in_params = ", ".join(f"T {a}" for a in arrays + scalars)
        kernel = (in_params, ", ".join(f"T {o}" for o in outputs), _c_body(em, outputs))
        body = [f"{', '.join(arrays)}, = _arrays({', '.join(arrays)})"]
        if "inv_n" in scalars:
            body.append(f"inv_n = 1 / ({x}.size if count is None else count)")
        call = f"_kernel({name!r})({', '.join(arrays + [f'_scalar({x}, {s})' for s in scalars])})"
        if outputs == ["value", "out"]:
            body += [f"value, out = {call}", "return value.sum(), out"]
        else:
            body.append(f"return {call}{'.sum()' if outputs == ['value'] else ''}")
        lines = [*head, *(f"{o} = {shown(e)}" for o, e in zip(outputs, exprs, strict=True))]
        doc = "\n".join([first, "", *(wrap_doc_line(line) for line in lines), "    "])
        plans.append(KernelPlan(name, _signature(spec), "", doc, tuple(body), frozenset(), kernel))

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
        emit(f"{spec.name}_per_sample", [derived.value], ["out"], "Return the loss per element.")
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


def _signature(spec) -> str:
    arrays = [s.name for s in spec.inputs]
    keywords = [f"{s.name}: float = {v!r}" for s, v in spec.hyper]
    if spec.role == "loss":
        keywords.append("count: float | None = None")
    return ", ".join(arrays + (["*", *keywords] if keywords else []))
