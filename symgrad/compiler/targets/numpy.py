"""The numpy target: each function's CSE evaluated one ufunc at a time into reused buffers,
with the plain-numpy form of the same statements in its docstring."""

from __future__ import annotations

from symgrad.compiler.emitted import (
    ARRAY,
    LINE_LENGTH,
    MEAN,
    ROWS,
    SUM,
    Derived,
    Emitted,
    FunctionPlan,
    definition,
    docstring,
    expressions,
    finishes_of,
    has_out,
    hyper_lines,
    out_forms,
    parameters,
    wrap_lines,
)
from symgrad.compiler.inplace import (
    FULL,
    MASK,
    ROW,
    ROW_MASK,
    InplaceBuilder,
    PlainForm,
    allocate,
    render,
)
from symgrad.compiler.kernel import INV_N
from symgrad.compiler.lower import Emitter, size_lines
from symgrad.compiler.printer import HELPERS
from symgrad.compiler.special import helper_source

TEMPLATE = "module.py.jinja"
#: parameter kind -> annotation
ANNOTATIONS = {
    "array": "np.ndarray",
    "float": "float",
    "count": "float | None",
    "weight": "np.ndarray | None",
    "out": "np.ndarray | None",
    "outs": "tuple[np.ndarray, ...] | None",
}
#: Marks a function that uses the buffer helpers in ``templates/runtime.py.jinja``.
RUNTIME = "runtime"
#: Marks a loss function, which uses the ``weight=`` helpers in ``templates/weights.py.jinja``.
WEIGHTS = "weights"
_RETURNS = {MEAN: "float", SUM: "float", ARRAY: "np.ndarray", ROWS: "np.ndarray"}


def returns(finishes: tuple[str, ...]) -> str:
    """Return the return annotation of a function whose outputs finish as ``finishes``."""
    kinds = [_RETURNS[f] for f in finishes]
    return kinds[0] if len(kinds) == 1 else f"tuple[{', '.join(kinds)}]"


def emit(derived: Derived, fn: Emitted) -> FunctionPlan:
    """Return one function of the numpy target."""
    spec = derived.spec
    name = spec.name + fn.suffix
    finishes = finishes_of(fn, derived)
    em = Emitter(derived, expressions(fn, derived))
    head, body = _inplace_body(derived, em, name, finishes, fn, has_out(fn, derived))
    arrays = [s.name for s in spec.inputs] + list(fn.extra)
    sizes = size_lines(spec, set(em.used) | ({INV_N} if MEAN in finishes else set()))
    plain = PlainForm(spec.wrt.name, arrays).read(body)
    readable = wrap_lines([*sizes, *plain], LINE_LENGTH - 8)
    body = [*head, *body]
    where = "into reused buffers"
    if ARRAY in finishes:
        where = f"into {'``out``' if has_out(fn, derived) else 'new arrays'} and reused buffers"
    notes = [
        "",
        f"    As plain numpy (the body runs this one ufunc at a time, {where}):",
        "",
        *(f"        {line}" for line in readable),
    ]
    return FunctionPlan(
        name,
        definition(name, parameters(fn, derived), ANNOTATIONS, returns(finishes)),
        docstring(fn, derived, notes),
        tuple(wrap_lines(body)),
        frozenset(em.printer.helpers) | {RUNTIME} | ({WEIGHTS} if spec.role == "loss" else set()),
    )


def _inplace_body(
    derived: Derived, em: Emitter, name: str, finishes: tuple[str, ...], fn: Emitted, out: bool
) -> tuple[list[str], list[str]]:
    """Return the body that evaluates ``em``'s CSE one ufunc at a time into reused buffers:
    its head (inputs, hyper-parameters, weights, buffers) and its statements."""
    spec = derived.spec
    arrays = [s.name for s in spec.inputs] + list(fn.extra)
    builder = InplaceBuilder(em.printer, frozenset(arrays), dict(spec.hyper))
    em.printer.ranks.clear()
    builder.mark_branches(em.replacements, em.outputs)
    for sym, e in em.replacements:
        builder.assign(sym, e)
    weighted = spec.role == "loss"
    result_regs: list[int] = []
    results: list[str] = []  # the array each array output is written into
    returns: list[str] = []
    for i, (expr, finish) in enumerate(zip(em.outputs, finishes, strict=True)):
        if finish in (ARRAY, ROWS):
            kind = FULL if finish == ARRAY else ROW
            op = builder.value(expr)
            if isinstance(op, str) or builder.kind_of(op) != kind or op in result_regs:
                op = builder.emit("np.copyto({d}, {0})", (op,), kind, alias=())
            result_regs.append(op)
            results.append("rows" if finish == ROWS else f"out{len(results) or ''}")
            returns.append("out" if finish == ROWS else results[-1])
            continue
        var = f"value{i}"
        size = f"{'out' if ARRAY in finishes else 'b0'}.size"
        count = f"({size} // np.shape({spec.wrt.name})[-1])" if spec.class_axis else size
        builder.total(expr, var, count, "weight" if weighted else None)
        if finish == MEAN:
            builder.line(f"{var} *= inv_n")
        returns.append(f"float({var})")
    if weighted and results:
        scaled = "".join(f"\n    np.multiply({r}, weight, out={r})" for r in results)
        builder.line(f"if weight is not None:{scaled}")
    names, count = allocate(builder.program, result_regs)
    rename = {names[r]: result for r, result in zip(result_regs, results, strict=True)}
    first = "out" if ARRAY in finishes else "b0"
    given = "out" if ARRAY in finishes and out else "None"
    classes = ", classes=True" if spec.class_axis else ""
    forms = out_forms(fn, derived)
    several = len(forms) > 1  # out= is a tuple, one array per result (``_prepare``'s forms)
    made = results if several else [first]
    tail = f"{classes}, forms={forms!r}" if several else classes
    head = [
        f"{', '.join([*made, *arrays])} = _prepare({name!r}, {given}, {', '.join(arrays)}{tail})"
    ]
    head += hyper_lines(spec, name)
    used = set(em.used)  # not the un-CSE'd trees' free symbols: a full walk of unshared trees
    if MEAN in finishes:
        used.add(INV_N)
    head += size_lines(spec, used - {INV_N} if weighted else used)
    if weighted:
        head += _weight_lines(spec, name, first, finishes, fn.counted)
    head += _scratch_lines(count, rename, first, results)
    body = render(builder.program, names, rename)
    if returns:
        body.append(f"return {', '.join(returns)}")
    return head, body


def _scratch_lines(count: dict, rename: dict, first: str, results: list[str]) -> list[str]:
    """Return the statements taking the body's scratch buffers (``_scratch``) by kind."""
    full_names = [f"b{i}" for i in range(count[FULL])]
    scratch = [n for n in full_names if rename.get(n, n) not in (first, *results)]
    row_shape = f"{first}.shape[:-1] + (1,)"
    row_names = [f"r{i}" for i in range(count[ROW])]
    groups = (
        (scratch, f"{first}.shape", f", {first}.dtype"),
        ([f"m{i}" for i in range(count[MASK])], f"{first}.shape", ", bool"),
        ([n for n in row_names if rename.get(n) != "rows"], row_shape, f", {first}.dtype"),
        ([f"rm{i}" for i in range(count[ROW_MASK])], row_shape, ", bool"),
    )
    lines = []
    for group, shape, dtype in groups:
        if group:
            names_text = f"{group[0]}," if len(group) == 1 else ", ".join(group)
            lines.append(f"{names_text} = _scratch({shape}, {len(group)}{dtype})")
    return lines


def _weight_lines(spec, name: str, first: str, finishes: tuple[str, ...], counted: bool) -> list:
    """Return the statements that check a loss's ``weight=`` (and set the mean's ``inv_n``)."""
    rows = bool(spec.class_axis)
    if not counted:
        head = [f"out, rows = _row_out({name!r}, out, {first}.shape, {first}.dtype)"]
        head = head if ROWS in finishes else []
        return [*head, f"weight = _weights({name!r}, weight, {first}.shape, {rows})"]
    return [f"weight, inv_n = _weighting({name!r}, weight, {first}.shape, count, {rows})"]


#: What the module docstring says about the target after the title (nothing: numpy is the default).
NOTE = ""


def context(functions: list[FunctionPlan], helpers: list[str]) -> dict:
    """Return what the template needs beyond the header and the functions."""
    return {
        "imports": sorted({"threading"} if RUNTIME in helpers else set()),
        "helpers": [helper_source(h) for h in helpers if h in HELPERS],
        "runtime": RUNTIME in helpers,
        "weights": WEIGHTS in helpers,
    }
