"""The Array API lowering target: the plain formula with standard-only operations.

Each emitted function takes its namespace from its inputs (``array_api_compat``), writes no
``out=`` and has no Python control flow on values, so one module runs on numpy, CuPy, torch and
JAX arrays and is jit-able. Names come from the shared spelling table (``spellings``); the
statements are the same CSE the numpy target's docstring shows.
"""

from __future__ import annotations

import sympy as sp

from symgrad.compiler.kernel import INV_N, Derived
from symgrad.compiler.lower import (
    WEIGHT_DOC,
    WEIGHTS,
    Emitter,
    FunctionPlan,
    scale_by_inv_n,
    wrap_doc_line,
)
from symgrad.compiler.primitives import N_CLASSES
from symgrad.compiler.printer import SymgradPrinter, strip_outer_parens
from symgrad.compiler.printer import formula as shown
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


for _name in FUNCTIONS:  # every table entry, including those sympy's printer spells itself
    setattr(ArrayApiPrinter, f"_print_{_name}", ArrayApiPrinter._print_Function)


def _sizes(spec, used: set) -> list[str]:
    """Return the statements defining ``n_classes`` from a static shape, and for a loss its
    ``weight`` and the mean's ``inv_n`` (1/count, else 1/sum of the weights, else 1/size)."""
    x = spec.wrt.name
    lines = []
    if N_CLASSES in used:
        lines.append(f"n_classes = {x}.shape[-1]")
    if spec.role == "loss":
        rows = bool(spec.class_axis)
        if INV_N in used:
            args = f"xp, dtype, weight, {x}.shape, count, {rows}"
            lines.append(f"weight, inv_n = _weighting({args})")
        else:
            lines.append(f"weight = _weights(xp, dtype, weight, {x}.shape, {rows})")
    return lines


def _shaped(em: Emitter, i: int, like: str) -> str:
    """Print output ``i`` broadcast to the shape of input ``like`` when it does not depend on it."""
    out = em.outputs[i]
    if any(s.name == like for s in em.depends(out)):
        return em.text(i)
    return f"xp.zeros_like({like}) + {em.operand(i)}"


def _signature(derived: Derived, extra: tuple[str, ...]) -> str:
    spec = derived.spec
    arrays = [s.name for s in spec.inputs] + list(extra)
    keywords = [f"{s.name}: float = {v!r}" for s, v in spec.hyper]
    if spec.role == "loss":
        keywords += ["count: float | None = None", "weight=None"]
    return ", ".join(arrays + (["*", *keywords] if keywords else []))


def plan_functions_xp(derived: Derived) -> list[FunctionPlan]:
    """Return the functions one kernel emits on the Array API target, in a fixed order."""
    spec = derived.spec
    x = spec.wrt.name
    arrays = [s.name for s in spec.inputs]
    plans = []

    def emit(name, exprs, finish, first, lines, extra=()):
        em = Emitter(derived, exprs, ArrayApiPrinter, sizes=_sizes)
        names = [*arrays, *extra]
        head = [f"xp, dtype, {', '.join(names)} = _prepare({', '.join(names)})"]
        loss = spec.role == "loss"
        body = (*head, *em.lines, f"return {finish(em)}")
        if loss:
            lines = [*lines, "", WEIGHT_DOC]
        doc = "\n".join([first, "", *(wrap_doc_line(line) for line in lines), "    "])
        helpers = frozenset(em.printer.helpers) | ({WEIGHTS} if loss else set())
        plans.append(FunctionPlan(name, _signature(derived, extra), "", doc, body, helpers))

    if spec.role == "loss":  # times weight= when given (_weighed returns the array alone if not)
        w = lambda text: f"_weighed(weight, {strip_outer_parens(text)})"  # noqa: E731
    else:
        w = lambda text: text  # noqa: E731
    same = lambda em: w(_shaped(em, 0, x))  # noqa: E731
    formula = shown(spec.expr)
    if spec.role == "activation" and derived.vjp is not None:
        emit(spec.name, [derived.value], same, f"Evaluate {spec.name}.", [f"f = {formula}"])
        emit(
            f"{spec.name}_vjp",
            [derived.vjp],
            same,
            f"Return grad_output pulled back through {spec.name}.",
            [f"vjp = {shown(derived.vjp)}"],
            ("grad_output",),
        )
        return plans
    if spec.role == "activation":
        emit(spec.name, [derived.value], same, f"Evaluate {spec.name}.", [f"f = {formula}"])
    else:
        value = derived.value if spec.role == "regularizer" else INV_N * derived.value
        emit(
            spec.name,
            [value],
            lambda em: f"xp.sum({w(_reduced(em, 0, x))})",
            f"Return {spec.name}, {'summed' if spec.role == 'regularizer' else 'the mean'}.",
            [f"value = {formula}"],
        )
    if spec.role == "loss":
        emit(
            f"{spec.name}_per_sample",
            [derived.value],
            (lambda em: f"{w(em.text(0))}[..., 0]") if spec.class_axis else same,
            f"Return the loss per {'sample' if spec.class_axis else 'element'}, before the mean.",
            [f"l = {formula}"],
        )
    grad = derived.grad if spec.role != "loss" else scale_by_inv_n(derived.grad)
    emit(f"{spec.name}_grad", [grad], same, f"Return d{spec.name}/d{x}.", [f"grad = {shown(grad)}"])
    if spec.role == "loss":
        emit(
            f"{spec.name}_value_and_grad",
            [INV_N * derived.value, grad],
            lambda em: f"xp.sum({w(_reduced(em, 0, x))}), {w(_shaped(em, 1, x))}",
            f"Return ({spec.name}, {spec.name}_grad) with shared work.",
            [f"value = {formula}", f"grad = {shown(grad)}"],
        )
    if derived.hess is not None:
        hess = derived.hess if spec.role != "loss" else scale_by_inv_n(derived.hess)
        emit(
            f"{spec.name}_hess",
            [hess],
            same,
            "Return the second derivative's diagonal.",
            [f"hess = {shown(hess)}"],
        )
    if derived.hvp is not None:
        emit(
            f"{spec.name}_hvp",
            [scale_by_inv_n(derived.hvp)],
            same,
            f"Return the Hessian of the mean loss in {x} times ``vector``.",
            [f"Hv = {shown(scale_by_inv_n(derived.hvp))}"],
            ("vector",),
        )
    return plans


def _reduced(em: Emitter, i: int, like: str) -> str:
    """Print output ``i`` for a sum: as is unless it is a scalar (then broadcast to ``like``)."""
    if em.printer.rank(em.outputs[i]) == 0:
        return _shaped(em, i, like)
    return em.text(i)
