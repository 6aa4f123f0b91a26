"""Turn derived expressions into straight-line statements: one CSE per emitted function."""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

import sympy as sp

from symgrad.kernel import COTANGENT, INV_N, VECTOR, Derived
from symgrad.primitives import N_CLASSES
from symgrad.printer import SymgradPrinter, strip_outer_parens
from symgrad.rewrite import lower_primitives
from symgrad.traverse import fold_numbers


@dataclass(frozen=True)
class FunctionPlan:
    """Everything the template needs to write one function, already printed."""

    name: str
    signature: str
    returns: str
    doc: str
    body: tuple[str, ...]
    helpers: frozenset[str]


def _scaled(expr: sp.Expr) -> sp.Expr:
    """Multiply by 1/n term by term, so the factor joins each term's scalar coefficients."""
    return sp.Add(*(INV_N * term for term in sp.Add.make_args(expr)))


def _signature(derived: Derived, extra: tuple[str, ...] = ()) -> str:
    spec = derived.spec
    arrays = [f"{s.name}: np.ndarray" for s in spec.inputs] + [f"{n}: np.ndarray" for n in extra]
    hyper = [f"{s.name}: float = {v!r}" for s, v in spec.hyper]
    return ", ".join(arrays + (["*"] + hyper if hyper else []))


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(
        text,
        width=96,
        initial_indent=indent,
        subsequent_indent=indent + "    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


class _Emitter:
    """CSE a list of expressions and print them as ``t0 = ...`` statements."""

    def __init__(self, derived: Derived, exprs: list[sp.Expr]) -> None:
        scalars = frozenset(s for s, _ in derived.spec.hyper) | {INV_N, N_CLASSES}
        self.printer = SymgradPrinter(scalars=scalars)
        prepared = [fold_numbers(lower_primitives(e)) for e in exprs]
        replacements, reduced = sp.cse(
            prepared, symbols=sp.numbered_symbols("t", real=True), order="canonical"
        )
        spec = derived.spec
        used = set().union(
            *(e.free_symbols for _, e in replacements), *(e.free_symbols for e in reduced)
        )
        self.lines: list[str] = []
        for sym in list(spec.inputs) + [COTANGENT, VECTOR]:
            if sym in used:
                self.lines.append(f"{sym.name} = np.asarray({sym.name})")
        x = spec.wrt.name
        if N_CLASSES in used:
            self.lines.append(f"n_classes = np.shape({x})[-1]")
        if INV_N in used:
            n = f"np.shape({x})[-1] / np.size({x})" if spec.class_axis else f"1 / np.size({x})"
            self.lines.append(f"inv_n = {n}")
        self.deps: dict[sp.Symbol, frozenset[sp.Symbol]] = {}
        for sym, e in replacements:
            self.deps[sym] = self.depends(e)
            self.printer.ranks[sym] = self.printer.rank(e)
            self.lines.append(f"{sym.name} = {strip_outer_parens(self.printer.doprint(e))}")
        self.outputs = reduced

    def depends(self, expr: sp.Expr) -> frozenset[sp.Symbol]:
        """Return the input symbols ``expr`` depends on, seeing through CSE temporaries."""
        out: set[sp.Symbol] = set()
        for s in expr.free_symbols:
            out |= self.deps.get(s, {s})
        return frozenset(out)

    def text(self, i: int) -> str:
        return strip_outer_parens(self.printer.doprint(self.outputs[i]))

    def operand(self, i: int) -> str:
        """Print output ``i`` so it can be an operand of ``+``."""
        text = self.text(i)
        node = ast.parse(text, mode="eval").body
        simple = (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Constant)
        return text if isinstance(node, simple) else f"({text})"

    def shaped(self, i: int, like: sp.Symbol) -> str:
        """Print output ``i``, broadcast to ``like``'s shape if it does not depend on it."""
        out = self.outputs[i]
        if like in self.depends(out):
            return self.text(i)
        shape = f"np.shape({like.name})"
        if out == 0:
            return f"np.zeros({shape})"
        if out == 1:
            return f"np.ones({shape})"
        if self.printer.rank(out) == 0:
            return f"np.full({shape}, {self.text(i)}, dtype=np.float64)"
        return f"np.zeros({shape}) + {self.operand(i)}"


def plan_functions(derived: Derived) -> list[FunctionPlan]:
    """Return the functions one kernel emits, in a fixed order."""
    spec = derived.spec
    role = spec.role
    plans = []
    formula = sp.sstr(spec.expr)
    head = spec.doc.strip()
    x = spec.wrt

    def doc(first: str, lines: list[str]) -> str:
        parts = [first]
        if head and first.startswith("Evaluate"):
            parts += ["", *(f"    {line}" if line else "" for line in head.splitlines())]
        parts += ["", *(_wrap(line) for line in lines), "    "]
        return "\n".join(parts)

    def emit(
        name: str,
        exprs: list[sp.Expr],
        finish,
        first: str,
        lines: list[str],
        returns: str = "np.ndarray",
        extra: tuple[str, ...] = (),
    ) -> None:
        em = _Emitter(derived, exprs)
        body = (*em.lines, finish(em))
        plans.append(
            FunctionPlan(
                name,
                _signature(derived, extra),
                returns,
                doc(first, lines),
                body,
                frozenset(em.printer.helpers),
            )
        )

    fx = f"{spec.name}({', '.join(s.name for s in spec.inputs)})"
    grad_txt = sp.sstr(derived.grad) if derived.grad is not None else ""
    if role == "activation":
        emit(
            spec.name,
            [derived.value],
            lambda em: f"return {em.shaped(0, x)}",
            f"Evaluate {spec.name} element-wise.",
            [f"f = {formula}"],
        )
        if derived.vjp is not None:
            emit(
                f"{spec.name}_vjp",
                [derived.vjp],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return grad_output pulled back through {spec.name} (vector-Jacobian product).",
                [f"f = {formula}", f"vjp = {sp.sstr(derived.vjp)}"],
                extra=("grad_output",),
            )
        else:
            emit(
                f"{spec.name}_grad",
                [derived.grad],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return d{spec.name}/d{x.name} element-wise.",
                [f"f = {formula}", f"df/d{x.name} = {grad_txt}"],
            )
            emit(
                f"{spec.name}_hess",
                [derived.hess],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return d2{spec.name}/d{x.name}2 element-wise.",
                [f"d2f/d{x.name}2 = {sp.sstr(derived.hess)}"],
            )
    elif role == "regularizer":
        emit(
            spec.name,
            [derived.value],
            lambda em: f"return np.sum({em.shaped(0, x)})",
            f"Evaluate {spec.name}, summed over all elements.",
            [f"R = sum({formula})"],
            returns="float",
        )
        emit(
            f"{spec.name}_grad",
            [derived.grad],
            lambda em: f"return {em.shaped(0, x)}",
            f"Return dR/d{x.name}.",
            [f"dR/d{x.name} = {grad_txt}"],
        )
        emit(
            f"{spec.name}_hess",
            [derived.hess],
            lambda em: f"return {em.shaped(0, x)}",
            f"Return the diagonal of d2R/d{x.name}2 (R is separable, so that is all of it).",
            [f"d2R/d{x.name}2 = {sp.sstr(derived.hess)}"],
        )
    else:
        per = "sample" if spec.class_axis else "element"
        reduce_txt = "mean over samples of" if spec.class_axis else "mean over elements of"
        value_lines = [f"L = {reduce_txt} {formula}"]
        grad_lines = [f"dL/d{x.name} = ({grad_txt}) / n_{per}s"]
        emit(
            spec.name,
            [derived.value],
            lambda em: f"return float(np.mean({em.text(0)}))",
            f"Evaluate {fx}, the mean over {per}s.",
            value_lines,
            returns="float",
        )
        emit(
            f"{spec.name}_grad",
            [_scaled(derived.grad)],
            lambda em: f"return {em.shaped(0, x)}",
            f"Return dL/d{x.name} of the mean loss (the 1/n is included).",
            grad_lines,
        )
        emit(
            f"{spec.name}_value_and_grad",
            [derived.value, _scaled(derived.grad)],
            lambda em: f"return float(np.mean({em.text(0)})), {em.shaped(1, x)}",
            f"Return ({spec.name}, {spec.name}_grad) computed with shared work.",
            value_lines + grad_lines,
            returns="tuple[float, np.ndarray]",
        )
        if derived.hess is not None:
            emit(
                f"{spec.name}_hess",
                [_scaled(derived.hess)],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return the diagonal of d2L/d{x.name}2 (the loss is separable, so that is all of it).",
                [f"d2L/d{x.name}2 = ({sp.sstr(derived.hess)}) / n_elements"],
            )
        if derived.hvp is not None:
            emit(
                f"{spec.name}_hvp",
                [_scaled(derived.hvp)],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return the Hessian of the mean loss in {x.name} times ``vector``, per sample.",
                [f"Hv = ({sp.sstr(derived.hvp)}) / n_samples"],
                extra=("vector",),
            )
    return plans
