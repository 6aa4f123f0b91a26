"""The Array API target: each function is its CSE printed with standard-only operations.

Each emitted function takes its namespace from its inputs (``array_api_compat``) and has no
Python control flow on values, so one module runs on numpy, CuPy, torch and JAX arrays and is
jit-able. The statements are the same CSE the numpy target's docstring shows.
"""

from __future__ import annotations

from symgrad.compiler.array_api import XP_HELPERS, ArrayApiPrinter
from symgrad.compiler.emitted import (
    ARRAY,
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
    hyper_lines,
    out_forms,
    parameters,
    wrap_lines,
)
from symgrad.compiler.lower import Emitter
from symgrad.compiler.primitives import N_CLASSES
from symgrad.compiler.printer import strip_outer_parens
from symgrad.compiler.special import helper_source

TEMPLATE = "array_api.py.jinja"
#: What the module docstring says about the target after the title.
NOTE = """Array API target: the same functions for numpy, CuPy, torch and JAX arrays.

Every function takes its array namespace from its inputs (array_api_compat) and computes in
their promoted float dtype with standard operations only; a loss value is a 0-d array. Inputs,
hyper-parameters, count= and weight= are checked by the same rules as the numpy target (values
of weight= only where the library can read them: not under jax.jit). out= is filled in place
where the library's arrays allow it. Needs: pip install 'symgrad[array-api]'."""
ANNOTATIONS = {"float": "float", "count": "float | None"}
#: Marks a loss function, which uses the ``weight=`` helpers of the template.
WEIGHTS = "weights"


def _sizes(spec, used: set) -> list[str]:
    """Return the statements defining ``n_classes`` from a static shape."""
    return [f"n_classes = {spec.wrt.name}.shape[-1]"] if N_CLASSES in used else []


def _shaped(em: Emitter, i: int, like: str) -> str:
    """Print output ``i`` broadcast to the shape of input ``like`` when it does not depend on it."""
    out = em.outputs[i]
    if any(s.name == like for s in em.depends(out)):
        return em.text(i)
    return f"xp.zeros_like({like}) + {em.operand(i)}"


def _reduced(em: Emitter, i: int, like: str) -> str:
    """Print output ``i`` for a sum: as is unless it is a scalar (then broadcast to ``like``)."""
    if em.printer.rank(em.outputs[i]) == 0:
        return _shaped(em, i, like)
    return em.text(i)


def emit(derived: Derived, fn: Emitted) -> FunctionPlan:
    """Return one function of the Array API target."""
    spec = derived.spec
    name = spec.name + fn.suffix
    x = spec.wrt.name
    loss = spec.role == "loss"
    finishes = finishes_of(fn, derived)
    em = Emitter(derived, expressions(fn, derived), ArrayApiPrinter, _sizes)
    names = [*(s.name for s in spec.inputs), *fn.extra]
    classes = ", classes=True" if spec.class_axis else ""
    body = [f"xp, dtype, {', '.join(names)} = _prepare({name!r}, {', '.join(names)}{classes})"]
    body += hyper_lines(spec, name)
    # hyper-parameters as 0-d arrays of the inputs' namespace and dtype: arithmetic on them
    # alone then follows IEEE (1/a at a = 0 is inf, as on the numpy target), never Python's
    # ZeroDivisionError
    body += [f"{s.name} = xp.asarray({s.name}, dtype=dtype)" for s, _ in spec.hyper]
    if loss:
        rows = bool(spec.class_axis)
        body.append(
            f"weight, inv_n = _weighting({name!r}, xp, dtype, weight, {x}.shape, count, rows={rows})"
            if fn.counted
            else f"weight = _weights({name!r}, xp, dtype, weight, {x}.shape, {rows})"
        )

    def weighed(text: str) -> str:
        return f"_weighed(weight, {strip_outer_parens(text)})" if loss else text

    results = []
    for i, finish in enumerate(finishes):
        if finish in (MEAN, SUM):
            total = f"xp.sum({weighed(_reduced(em, i, x))})"
            results.append(f"inv_n * {total}" if finish == MEAN else total)
        elif finish == ROWS:
            results.append(f"{weighed(em.text(i))}[..., 0]")
        else:
            results.append(weighed(_shaped(em, i, x)))
    forms = out_forms(fn, derived)
    if len(forms) > 1:  # every output is an array: out= is a tuple of them
        ret = f"return _written({name!r}, out, {forms!r}, {', '.join(results)})"
    else:
        if forms:
            i = next(i for i, f in enumerate(finishes) if f in (ARRAY, ROWS))
            results[i] = f"_written({name!r}, out, None, {results[i]})"
        ret = f"return {', '.join(results)}"
    body += [*em.lines, ret]
    return FunctionPlan(
        name,
        definition(name, parameters(fn, derived), ANNOTATIONS),
        docstring(fn, derived),
        tuple(wrap_lines(body)),
        frozenset(em.printer.helpers) | ({WEIGHTS} if loss else set()),
    )


def context(functions: list[FunctionPlan], helpers: list[str]) -> dict:
    """Return what the template needs beyond the header and the functions."""
    return {
        "helpers": [helper_source(h, "array-api") for h in helpers if h in XP_HELPERS],
        "weights": WEIGHTS in helpers,
        "uses_math": any("math." in line for f in functions for line in f.body),
    }
