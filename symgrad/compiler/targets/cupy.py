"""The CuPy target: each element-wise function as one C body in a fused ElementwiseKernel.

The body is the same CSE as the numpy target (one ``const T tK = ...;`` per shared value, then
one assignment per output), printed in C; ``T`` is the kernel's float type (float or double).
A loss's outputs are multiplied by its weight in the kernel, and its mean is one reduction
pass (``sum``) times 1/n. A function with a class axis (softmax, softmax cross-entropy) becomes
a few kernels run in order: each row reduction a ReductionKernel over the last axis, then the
element-wise part as one ElementwiseKernel per output shape (``row_stages``). The wrapper
checks its inputs by the same rules as every target (``templates/inputs.py.jinja``).
"""

from __future__ import annotations

from symgrad.compiler.cuda import (
    PREAMBLE,
    REDUCE,
    WEIGHT,
    CPrinter,
    KernelPlan,
    c_body,
    c_names,
    no_sizes,
    row_stages,
    split_rows,
)
from symgrad.compiler.emitted import (
    ARRAY,
    LINE_LENGTH,
    MEAN,
    ROWS,
    Derived,
    Emitted,
    FunctionPlan,
    definition,
    docstring,
    expressions,
    finishes_of,
    hyper_lines,
    out_forms,
    parameters,
    wrap_lines,
)
from symgrad.compiler.lower import Emitter
from symgrad.compiler.primitives import N_CLASSES
from symgrad.errors import SpecError

TEMPLATE = "cupy.py.jinja"
ANNOTATIONS = {"float": "float", "count": "float | None"}
#: Marks a loss function, which uses the ``weight=`` helpers of the template.
WEIGHTS = "weights"
#: What the module docstring says about the target after the title.
NOTE = """CuPy target: each element-wise function is one fused ElementwiseKernel.

Value, gradient and second derivative each run as a single pass over memory (a loss's value and
gradient together); a loss value then takes one reduction pass (``sum``). ``T`` is the inputs'
promoted float type, float32 or float64. CuPy is imported on first use, so this file imports
without it. The C bodies in ``C_KERNELS`` are compiled on the CPU by the tests on every run.
A function over a class axis (softmax, softmax cross-entropy) runs as kernels in ``C_STAGES``:
row reductions over the last axis (ReductionKernel: the row max, sums over classes), then
one ElementwiseKernel per output shape; their C is compiled on the CPU by the tests too."""


def _outputs(fn: Emitted) -> list[str]:
    """Return the kernel's output names: ``total`` for a reduced output (summed after the
    kernel), ``out_<form>`` for an array."""
    return [f"out_{form}" if finish == ARRAY else "total" for form, finish in fn.outputs]


def _results(fn: Emitted, derived: Derived, outputs: list[str], finishes) -> str:
    """Return the wrapper's ``return`` expression over the kernel's outputs."""
    name = derived.spec.name + fn.suffix
    forms = out_forms(fn, derived)
    results = []
    for out, finish in zip(outputs, finishes, strict=True):
        text = "total.sum()" if out == "total" else f"{out}[..., 0]" if finish == ROWS else out
        text = f"inv_n * {text}" if finish == MEAN else text
        if finish in (ARRAY, ROWS) and len(forms) == 1:
            text = f"_written({name!r}, out, None, {text})"
        results.append(text)
    if len(forms) > 1:  # every output is an array: out= is a tuple of them
        return f"_written({name!r}, out, {forms!r}, {', '.join(results)})"
    return ", ".join(results)


def _prologue(fn: Emitted, derived: Derived, arrays: list[str]) -> list[str]:
    """Return the wrapper's first lines: inputs checked and as CuPy arrays, hyper-parameters
    checked, weight= (and the mean's 1/n)."""
    spec = derived.spec
    name = spec.name + fn.suffix
    x = spec.wrt.name
    classes = ", classes=True" if spec.class_axis else ""
    body = [f"{', '.join(arrays)}, = _arrays({name!r}, {', '.join(arrays)}{classes})"]
    body += hyper_lines(spec, name)
    rows = bool(spec.class_axis)
    if spec.role == "loss" and fn.counted:
        body.append(f"weight, inv_n = _weighting({name!r}, weight, {x}, count, {rows})")
    elif spec.role == "loss":
        body.append(f"weight = _weights({name!r}, weight, {x}, {rows})")
    return body


def emit(derived: Derived, fn: Emitted) -> FunctionPlan:
    """Return one function of the CuPy target: a wrapper and its kernel (in params, out
    params, C body), or for a class-axis spec its stages; the template writes both."""
    spec = derived.spec
    try:
        return _emit_rows(derived, fn) if spec.class_axis else _emit(derived, fn)
    except ValueError as exc:  # a function or symbol with no C spelling
        raise SpecError(spec.name, f"cupy target: {exc}", spec.origin) from None


def _emitter(derived: Derived, fn: Emitted) -> Emitter:
    exprs = expressions(fn, derived)
    loss = derived.spec.role == "loss"
    return Emitter(derived, [WEIGHT * e for e in exprs] if loss else exprs, CPrinter, no_sizes)


def _emit(derived: Derived, fn: Emitted) -> FunctionPlan:
    spec = derived.spec
    name = spec.name + fn.suffix
    x = spec.wrt.name
    arrays = [s.name for s in spec.inputs]
    loss = spec.role == "loss"
    finishes = finishes_of(fn, derived)
    outputs = _outputs(fn)
    em = _emitter(derived, fn)
    used = {s.name for s in em.used}
    if N_CLASSES.name in used:
        raise ValueError(f"{name}: n_classes has no element-wise meaning")
    scalars = [s.name for s, _ in spec.hyper] + (["inv_n"] if "inv_n" in used else [])
    weights = ["weight"] if loss else []  # an array, or the scalar 1 when weight= is not given
    in_params = ", ".join(f"T {a}" for a in arrays + weights + scalars)
    text = "\n".join(wrap_lines(c_body(em, outputs).split("\n"), LINE_LENGTH, c=True))
    kernel = (in_params, ", ".join(f"T {o}" for o in outputs), text)
    body = _prologue(fn, derived, arrays)
    ops = arrays + weights + [f"_scalar({x}, {s})" for s in scalars]
    body.append(f"{', '.join(outputs)} = _kernel({name!r})({', '.join(ops)})")
    body.append(f"return {_results(fn, derived, outputs, finishes)}")
    return KernelPlan(
        name,
        definition(name, parameters(fn, derived), ANNOTATIONS),
        docstring(fn, derived),
        tuple(wrap_lines(body)),
        frozenset({WEIGHTS} if loss else ()),
        kernel,
    )


def _emit_rows(derived: Derived, fn: Emitted) -> FunctionPlan:
    """Return a class-axis function as row reductions (row max, sums over classes) and one or
    two element-wise maps, in the order the wrapper runs them."""
    spec = derived.spec
    name = spec.name + fn.suffix
    x = spec.wrt.name
    arrays = [s.name for s in spec.inputs]
    loss = spec.role == "loss"
    finishes = finishes_of(fn, derived)
    outputs = _outputs(fn)
    em = _emitter(derived, fn)
    em.printer.ranks[WEIGHT] = 1  # one weight per row
    rows = split_rows(em)
    scalars = [*(s.name for s, _ in spec.hyper), "n_classes", "inv_n"]
    reduced = [sym.name for _, sym, _ in rows.reductions]
    order = [*arrays, *fn.extra, *reduced, *(["weight"] if loss else []), *scalars]
    ranks = [2 if f == ARRAY else 1 for f in finishes]
    stages = [
        (kind, ins, outs, "\n".join(wrap_lines(text.split("\n"), LINE_LENGTH, c=True)))
        if kind == "map"
        else (kind, ins, outs, text)
        for kind, ins, outs, text in row_stages(
            rows, list(zip(outputs, ranks, strict=True)), order, x
        )
    ]
    used = set().union(*(c_names(st[1]) for st in stages))
    body = _prologue(fn, derived, [*arrays, *fn.extra])
    if "n_classes" in used:
        body.append(f"n_classes = {x}.shape[-1]")
    for i, (kind, ins, outs, _) in enumerate(stages):
        args = [f"_scalar({x}, {n})" if n in scalars else n for n in c_names(ins)]
        axis = "" if kind == "map" else ", axis=-1, keepdims=True"
        call = f"_stage({name!r}, {i})({', '.join(args)}{axis})"
        body.append(f"{', '.join(c_names(outs))} = {call}")
    body.append(f"return {_results(fn, derived, outputs, finishes)}")
    return KernelPlan(
        name,
        definition(name, parameters(fn, derived), ANNOTATIONS),
        docstring(fn, derived),
        tuple(wrap_lines(body)),
        frozenset({WEIGHTS} if loss else ()),
        stages=tuple(stages),
    )


def context(functions: list[FunctionPlan], helpers: list[str]) -> dict:
    """Return what the template needs beyond the header and the functions."""
    return {"preamble": PREAMBLE, "reduce": REDUCE, "weights": WEIGHTS in helpers}
