"""Turn derived expressions into straight-line statements: one CSE per emitted function."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from symgrad.compiler.inplace import FULL, MASK, ROW, ROW_MASK, InplaceBuilder, allocate, render
from symgrad.compiler.kernel import INV_N, Derived
from symgrad.compiler.primitives import N_CLASSES, axis_sum, cosh_
from symgrad.compiler.printer import FORMULA_NODES, SymgradPrinter, strip_outer_parens
from symgrad.compiler.printer import formula as shown
from symgrad.compiler.rewrite import lower_primitives
from symgrad.compiler.scaled import factor_scaled_sums, numbered, schedule
from symgrad.compiler.traverse import atoms_of, bottom_up, fold_numbers, has_node, tree_size


@dataclass(frozen=True)
class FunctionPlan:
    """Everything the template needs to write one function, already printed."""

    name: str
    signature: str
    returns: str
    doc: str
    body: tuple[str, ...]
    helpers: frozenset[str]


def _not_real(e: sp.Expr) -> sp.Expr:
    if e.is_number and e.is_extended_real is False and not e.has(sp.nan, sp.zoo):
        return sp.nan
    return e


def _real_constants(expr: sp.Expr) -> sp.Expr:
    """Replace complex constants by NaN: they only arise in a branch its condition discards
    (e.g. sqrt(-1) after clamping), and real kernels write into float arrays."""
    return bottom_up(expr, _not_real) if has_node(expr, sp.I) else expr


def scale_by_inv_n(expr: sp.Expr) -> sp.Expr:
    """Multiply by 1/n term by term, so the factor joins each term's scalar coefficients."""
    return sp.Add(*(INV_N * term for term in sp.Add.make_args(expr)))


def _signature(
    derived: Derived, extra: tuple[str, ...] = (), out: bool = False, mean: bool = True
) -> str:
    spec = derived.spec
    arrays = [f"{s.name}: np.ndarray" for s in spec.inputs] + [f"{n}: np.ndarray" for n in extra]
    keywords = [f"{s.name}: float = {v!r}" for s, v in spec.hyper]
    if spec.role == "loss":
        keywords += ["count: float | None = None"] if mean else []
        keywords.append("weight: np.ndarray | None = None")
    if out:
        keywords.append("out: np.ndarray | None = None")
    return ", ".join(arrays + (["*"] + keywords if keywords else []))


def _finishes(returns: str, role: str) -> tuple[str, ...]:
    """Return how each output of a function with return annotation ``returns`` finishes."""
    if returns == "float":
        return (SUM,) if role == "regularizer" else (MEAN,)
    if returns.startswith("tuple"):
        return (MEAN, ARRAY)
    return (ARRAY,)


def wrap_doc_line(text: str, indent: str = "    ") -> str:
    """Return ``text`` wrapped to the docstring width, continuation lines indented."""
    return textwrap.fill(
        text,
        width=96,
        initial_indent=indent,
        subsequent_indent=indent + "    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _density_power(e: sp.Expr) -> tuple[sp.Expr, sp.Expr, int] | None:
    """Return (t, u, k) if product ``e`` has t**k / (1 + t)**(2k) with t = exp(-|u|)."""
    powers: dict[sp.Expr, sp.Expr] = {}
    for f in e.args:  # not as_powers_dict: it splits exp(u) into E**u
        base, k = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
        powers[base] = powers.get(base, 0) + k
    for t, k in powers.items():
        if isinstance(t, sp.exp) and k.is_Integer and k > 0 and isinstance(-t.args[0], sp.Abs):
            if powers.get(1 + t) == -2 * k:
                return t, (-t.args[0]).args[0], int(k)
    return None


def cosh_densities(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """Print the logistic density sigmoid(u) sigmoid(-u), lowered as t / (1 + t)**2 with
    t = exp(-|u|), as 1 / (2 + 2 cosh u) where nothing else in the function needs t: three
    numpy passes (cosh, add, divide) instead of six (abs, negative, exp, add, square, divide).
    Exact in the tails; cosh overflows to inf only where the density is below the smallest
    normal number (|u| > 89 in float32, 710 in float64), and 1/inf is its limit 0."""

    def rule(e: sp.Expr, t: sp.Expr) -> sp.Expr:
        found = _density_power(e) if e.is_Mul else None
        if found is None or found[0] != t:
            return e
        _, u, k = found
        return e / (t**k * (1 + t) ** (-2 * k)) * sp.S.Half**k * (1 + cosh_(u)) ** -k

    candidates = {
        found[0]
        for e in exprs
        for m in atoms_of(e, sp.Mul)
        if (found := _density_power(m)) is not None
    }
    for t in sorted(candidates, key=sp.default_sort_key):
        rewritten = [bottom_up(e, lambda node, t=t: rule(node, t)) for e in exprs]
        if not any(has_node(e, t) for e in rewritten):  # t shared with sigmoid/softplus: keep it
            exprs = rewritten
    return exprs


class Emitter:
    """CSE a list of expressions and print them as ``t0 = ...`` statements."""

    def __init__(
        self,
        derived: Derived,
        exprs: list[sp.Expr],
        printer: type = SymgradPrinter,
        sizes: Callable[..., list[str]] | None = None,
    ) -> None:
        scalars = frozenset(s for s, _ in derived.spec.hyper) | {INV_N, N_CLASSES}
        self.printer = printer(scalars=scalars)
        lowered = [lower_primitives(e) for e in exprs]
        # a deep composition: canonical order sorts every sum's and product's arguments by
        # their size as trees (exponential; sympy's own argument order is deterministic too),
        # and sums sympy distributed are factored back (scaled.py)
        huge = any(tree_size(e, FORMULA_NODES + 1) > FORMULA_NODES for e in lowered)
        names = numbered("t")
        lowered, shared = factor_scaled_sums(lowered, names) if huge else (lowered, [])
        prepared = [_real_constants(fold_numbers(e)) for e in [*(d for _, d in shared), *lowered]]
        if self.printer.COSH_DENSITY:
            prepared = cosh_densities(prepared)
        replacements, reduced = sp.cse(
            prepared,
            symbols=names,
            order="none" if huge else "canonical",
        )
        if shared:
            defined = zip((s for s, _ in shared), reduced[: len(shared)], strict=True)
            replacements = schedule(replacements, list(defined))
            reduced = reduced[len(shared) :]
        spec = derived.spec
        used = set().union(
            *(e.free_symbols for _, e in replacements), *(e.free_symbols for e in reduced)
        )
        self.replacements = replacements
        self.used = used
        self.lines: list[str] = (sizes or _size_lines)(spec, used)
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


def _size_lines(spec, used: set) -> list[str]:
    """Return the statements defining ``n_classes`` and ``inv_n`` if the body uses them.

    An emitted loss sets ``inv_n`` through the run-time's ``_weighting`` instead: its mean
    divides by the caller's ``count`` when given (so blocks of one batch, or micro-batches,
    each return their share of the whole batch's mean), else by the sum of the weights.
    """
    x = spec.wrt.name
    lines = []
    if N_CLASSES in used:
        lines.append(f"n_classes = np.shape({x})[-1]")
    if INV_N in used:
        n = f"np.size({x}) / np.shape({x})[-1]" if spec.class_axis else f"np.size({x})"
        lines.append(f"inv_n = 1 / ({n})" if spec.class_axis else f"inv_n = 1 / {n}")
    return lines


#: Marks a function that uses the buffer helpers in ``templates/runtime.py.jinja``.
RUNTIME = "runtime"
#: Marks a loss function, which uses the ``weight=`` helpers in ``templates/weights.py.jinja``.
WEIGHTS = "weights"

#: How an emitted function finishes each expression: written into ``out``, or reduced
#: (ROWS: one value per row of a class-axis loss, into ``out`` of the inputs' shape[:-1]).
ARRAY, MEAN, SUM, ROWS = "array", "mean", "sum", "rows"

#: How a loss's emitted functions weigh per-sample values (``weight=``) and form the mean.
WEIGHT_DOC = (
    "weight=w (one per element; per row for a class-axis loss) weighs each sample: the mean is "
    "sum(w*l) / sum(w), or sum(w*l) / count when count= is given (so blocks add up), and the "
    "derivatives are w times the unweighted ones over the same divisor."
)


def _inplace_body(
    derived: Derived,
    em: Emitter,
    name: str,
    finishes: tuple[str, ...],
    extra: tuple[str, ...],
    mean: bool = True,
) -> list[str]:
    """Return the body that evaluates ``em``'s CSE one ufunc at a time into reused buffers."""
    spec = derived.spec
    arrays = [s.name for s in spec.inputs] + list(extra)
    builder = InplaceBuilder(em.printer, frozenset(arrays), dict(spec.hyper))
    em.printer.ranks.clear()
    for sym, e in em.replacements:
        builder.assign(sym, e)
    weighted = spec.role == "loss"
    result_regs: list[int] = []
    returns: list[str] = []
    for i, (expr, finish) in enumerate(zip(em.outputs, finishes, strict=True)):
        if finish in (ARRAY, ROWS):
            kind = FULL if finish == ARRAY else ROW
            op = builder.value(expr)
            if isinstance(op, str) or builder.kind_of(op) != kind:
                op = builder.emit("np.copyto({d}, {0})", (op,), kind, alias=())
            result_regs.append(op)
            returns.append("out")
            continue
        var = f"value{i}"
        size = f"{'out' if ARRAY in finishes else 'b0'}.size"
        count = f"({size} // np.shape({spec.wrt.name})[-1])" if spec.class_axis else size
        builder.total(expr, var, count, "weight" if weighted else None)
        if finish == MEAN:
            builder.line(f"{var} *= inv_n")
        returns.append(f"float({var})")
    result = {ARRAY: "out", ROWS: "rows"}.get(finishes[-1], "")
    if weighted and result:
        builder.line(f"if weight is not None:\n    np.multiply({result}, weight, out={result})")
    names, count = allocate(builder.program, result_regs)
    rename = {names[result_regs[0]]: result} if result_regs else {}
    first = "out" if ARRAY in finishes else "b0"
    given = "out" if ARRAY in finishes else "None"
    classes = ", classes=True" if spec.class_axis else ""
    head = [
        f"{', '.join([first, *arrays])} = _prepare({name!r}, {given}, {', '.join(arrays)}{classes})"
    ]
    head += [
        f"{s.name} = _hyper({name!r}, {s.name!r}, {s.name}, {spec.domain(s.name)!r})"
        for s, _ in spec.hyper
    ]
    used = set(em.used)  # not the un-CSE'd trees' free symbols: a full walk of unshared trees
    if MEAN in finishes:
        used.add(INV_N)
    head += _size_lines(spec, used - {INV_N} if weighted else used)
    if weighted:
        head += _weight_lines(spec, name, first, finishes, mean)
    full_names = [f"b{i}" for i in range(count[FULL])]
    scratch = [n for n in full_names if rename.get(n, n) != first]
    row_shape = f"{first}.shape[:-1] + (1,)"
    row_names = [f"r{i}" for i in range(count[ROW])]
    groups = (
        (scratch, f"{first}.shape", f", {first}.dtype"),
        ([f"m{i}" for i in range(count[MASK])], f"{first}.shape", ", bool"),
        ([n for n in row_names if rename.get(n) != "rows"], row_shape, f", {first}.dtype"),
        ([f"rm{i}" for i in range(count[ROW_MASK])], row_shape, ", bool"),
    )
    for group, shape, dtype in groups:
        if group:
            names_text = f"{group[0]}," if len(group) == 1 else ", ".join(group)
            head.append(f"{names_text} = _scratch({shape}, {len(group)}{dtype})")
    body = render(builder.program, names, rename)
    if returns:
        body.append(f"return {', '.join(returns)}")
    return head + body


def _weight_lines(spec, name: str, first: str, finishes: tuple[str, ...], mean: bool) -> list:
    """Return the statements that check a loss's ``weight=`` (and set the mean's ``inv_n``)."""
    rows = bool(spec.class_axis)
    if not mean:
        head = [f"out, rows = _row_out({name!r}, out, {first}.shape, {first}.dtype)"]
        head = head if ROWS in finishes else []
        return [*head, f"weight = _weights({name!r}, weight, {first}.shape, {rows})"]
    return [f"weight, inv_n = _weighting({name!r}, weight, {first}.shape, count, {rows})"]


def plan_functions(derived: Derived) -> list[FunctionPlan]:
    """Return the functions one kernel emits, in a fixed order."""
    spec = derived.spec
    role = spec.role
    plans = []
    formula = shown(spec.expr)
    head = spec.doc.strip()
    x = spec.wrt

    def doc(first: str, lines: list[str], numpy_lines: list[str]) -> str:
        parts = [first]
        if head and first.startswith("Evaluate"):
            parts += ["", *(f"    {line}" if line else "" for line in head.splitlines())]
        parts += ["", *(wrap_doc_line(line) for line in lines), *numpy_lines, "    "]
        return "\n".join(parts)

    def emit(
        name: str,
        exprs: list[sp.Expr],
        finish,
        first: str,
        lines: list[str],
        *,
        returns: str = "np.ndarray",
        extra: tuple[str, ...] = (),
        rows: bool = False,
    ) -> None:
        em = Emitter(derived, exprs)
        readable = [*em.lines, finish(em)]
        finishes = (ROWS,) if rows else _finishes(returns, role)
        mean = not name.endswith(PER_SAMPLE)
        body = _inplace_body(derived, em, name, finishes, extra, mean)
        where = "into ``out`` and reused buffers" if ARRAY in finishes else "into reused buffers"
        numpy_lines = [
            "",
            f"    As plain numpy (the body runs this one ufunc at a time, {where}):",
            "",
            *(f"        {line}" for line in readable),
        ]
        plans.append(
            FunctionPlan(
                name,
                _signature(derived, extra, out=ARRAY in finishes or rows, mean=mean),
                returns,
                doc(first, lines, numpy_lines),
                tuple(body),
                frozenset(em.printer.helpers)
                | {RUNTIME}
                | ({WEIGHTS} if role == "loss" else set()),
            )
        )

    fx = f"{spec.name}({', '.join(s.name for s in spec.inputs)})"
    grad_txt = shown(derived.grad) if derived.grad is not None else ""
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
                [f"f = {formula}", f"vjp = {shown(derived.vjp)}"],
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
                [f"d2f/d{x.name}2 = {shown(derived.hess)}"],
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
            [f"d2R/d{x.name}2 = {shown(derived.hess)}"],
        )
    else:
        per = "sample" if spec.class_axis else "element"
        reduce_txt = "mean over samples of" if spec.class_axis else "mean over elements of"
        value_lines = [f"L = {reduce_txt} {formula}", WEIGHT_DOC]
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
            [scale_by_inv_n(derived.grad)],
            lambda em: f"return {em.shaped(0, x)}",
            f"Return dL/d{x.name} of the mean loss (the 1/n is included).",
            grad_lines,
        )
        emit(
            f"{spec.name}_value_and_grad",
            [derived.value, scale_by_inv_n(derived.grad)],
            lambda em: f"return float(np.mean({em.text(0)})), {em.shaped(1, x)}",
            f"Return ({spec.name}, {spec.name}_grad) computed with shared work.",
            value_lines + grad_lines,
            returns="tuple[float, np.ndarray]",
        )
        if derived.hess is not None:
            rest = (
                f"per sample; {spec.name}_hvp applies the whole per-sample Hessian"
                if spec.class_axis
                else "the loss is separable, so that is all of it"
            )
            emit(
                f"{spec.name}_hess",
                [scale_by_inv_n(derived.hess)],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return the diagonal of d2L/d{x.name}2 ({rest}).",
                [f"diag d2L/d{x.name}2 = ({shown(derived.hess)}) / n_{per}s"],
            )
        if derived.hvp is not None:
            emit(
                f"{spec.name}_hvp",
                [scale_by_inv_n(derived.hvp)],
                lambda em: f"return {em.shaped(0, x)}",
                f"Return the Hessian of the mean loss in {x.name} times ``vector``, per sample.",
                [f"Hv = ({shown(derived.hvp)}) / n_samples"],
                extra=("vector",),
            )
        rows = bool(spec.class_axis)
        emit(
            f"{spec.name}{PER_SAMPLE}",
            [_per_row(derived) if rows else derived.value],
            (lambda em: f"return ({em.text(0)})[..., 0]")
            if rows
            else (lambda em: f"return {em.shaped(0, x)}"),
            f"Return the loss per {per} of {fx}, before the mean (times ``weight`` if given).",
            [
                f"l = {formula}",
                "With count=1 the _grad and _hess functions give per-sample "
                "derivatives to match (no 1/n), times weight= if given.",
            ],
            rows=rows,
        )
    return plans


#: Suffix of the function giving a loss per element (per row for a class-axis loss).
PER_SAMPLE = "_per_sample"


def _per_row(derived: Derived) -> sp.Expr:
    """Return a class-axis loss's value per row: its full-size terms summed over the classes."""
    printer = SymgradPrinter(scalars=frozenset(s for s, _ in derived.spec.hyper) | {N_CLASSES})
    terms = sp.Add.make_args(lower_primitives(derived.value))
    return sp.Add(*(axis_sum(t) if printer.rank(t) == 2 else t for t in terms))
