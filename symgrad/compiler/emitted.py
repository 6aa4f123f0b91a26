"""What each role emits, declared once: every target loops over this table.

A row says which functions a kernel gets (suffix), which derived forms each returns and how
each output finishes (an array, a mean, a sum, one value per row), how it is documented, which
extra array arguments it takes and when it applies. The parameters every target's function
takes follow from the row alone (``parameters``), so the numpy, array-api and cupy modules
have the same functions in the same order with the same signatures. A target supplies only how
to emit one function (``symgrad.compiler.targets``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from symgrad.compiler.kernel import INV_N, Derived
from symgrad.compiler.primitives import N_CLASSES, axis_sum
from symgrad.compiler.printer import formula

#: How an emitted function finishes each output: an array of the first input's shape, the
#: (weighted) mean, the sum, or one value per row of a class-axis loss.
ARRAY, MEAN, SUM, ROWS = "array", "mean", "sum", "rows"


@dataclass(frozen=True)
class FunctionPlan:
    """Everything a template needs to write one function, already printed."""

    name: str
    #: the ``def`` line(s), wrapped one parameter per line past the line length
    definition: str
    doc: str
    body: tuple[str, ...]
    helpers: frozenset[str]


@dataclass(frozen=True)
class Emitted:
    """One function a role emits: ``<kernel name><suffix>``."""

    suffix: str
    #: (derived form, finish) per output, in return order; forms are ``Derived`` attributes or
    #: ``per_sample`` (the loss per element, or per row of a class-axis loss)
    outputs: tuple[tuple[str, str], ...]
    #: the docstring's first line; fields: name, x (the differentiated input), fx, per
    first: str
    #: formula lines; fields as ``first`` plus the printed forms (f, grad, hess, vjp, hvp)
    lines: tuple[str, ...]
    #: array arguments after the spec's inputs
    extra: tuple[str, ...] = ()
    #: a loss function whose outputs are over the mean's divisor (``count=``; 1/n inside)
    counted: bool = False
    applies: Callable[[Derived], bool] = lambda d: True

    @property
    def forms(self) -> tuple[str, ...]:
        return tuple(form for form, _ in self.outputs)

    @property
    def finishes(self) -> tuple[str, ...]:
        return tuple(finish for _, finish in self.outputs)


def _has(form: str) -> Callable[[Derived], bool]:
    return lambda d: getattr(d, form) is not None


_ELEMENTWISE = lambda d: d.vjp is None  # noqa: E731

ACTIVATION = (
    Emitted("", (("value", ARRAY),), "Evaluate {name} element-wise.", ("f = {f}",)),
    Emitted(
        "_grad",
        (("grad", ARRAY),),
        "Return d{name}/d{x} element-wise.",
        ("f = {f}", "df/d{x} = {grad}"),
        applies=_ELEMENTWISE,
    ),
    Emitted(
        "_hess",
        (("hess", ARRAY),),
        "Return d2{name}/d{x}2 element-wise.",
        ("d2f/d{x}2 = {hess}",),
        applies=_ELEMENTWISE,
    ),
    Emitted(
        "_vjp",
        (("vjp", ARRAY),),
        "Return grad_output pulled back through {name} (vector-Jacobian product).",
        ("f = {f}", "vjp = {vjp}"),
        extra=("grad_output",),
        applies=_has("vjp"),
    ),
)

REGULARIZER = (
    Emitted("", (("value", SUM),), "Evaluate {name}, summed over all elements.", ("R = sum({f})",)),
    Emitted("_grad", (("grad", ARRAY),), "Return dR/d{x}.", ("dR/d{x} = {grad}",)),
    Emitted(
        "_hess",
        (("hess", ARRAY),),
        "Return the diagonal of d2R/d{x}2 (R is separable, so that is all of it).",
        ("d2R/d{x}2 = {hess}",),
    ),
)

_VALUE = "L = mean over {per}s of {f}"
_GRAD = "dL/d{x} = ({grad}) / n_{per}s"
_HESS = "diag d2L/d{x}2 = ({hess}) / n_{per}s"

LOSS = (
    Emitted(
        "", (("value", MEAN),), "Evaluate {fx}, the mean over {per}s.", (_VALUE,), counted=True
    ),
    Emitted(
        "_grad",
        (("grad", ARRAY),),
        "Return dL/d{x} of the mean loss (the 1/n is included).",
        (_GRAD,),
        counted=True,
    ),
    Emitted(
        "_value_and_grad",
        (("value", MEAN), ("grad", ARRAY)),
        "Return the mean loss and its gradient, computed with shared work.",
        (_VALUE, _GRAD),
        counted=True,
    ),
    Emitted(
        "_hess",
        (("hess", ARRAY),),
        "Return the diagonal of d2L/d{x}2 ({hess_note}).",
        (_HESS,),
        counted=True,
        applies=_has("hess"),
    ),
    Emitted(
        "_grad_hess",
        (("grad", ARRAY), ("hess", ARRAY)),
        "Return the gradient and Hessian diagonal, computed with shared work.",
        (_GRAD, _HESS),
        counted=True,
        applies=_has("hess"),
    ),
    Emitted(
        "_hvp",
        (("hvp", ARRAY),),
        "Return the Hessian of the mean loss in {x} times ``vector``, per sample.",
        ("Hv = ({hvp}) / n_samples",),
        extra=("vector",),
        counted=True,
        applies=_has("hvp"),
    ),
    Emitted(
        "_per_sample",
        (("per_sample", ARRAY),),
        "Return the loss per {per}, before the mean (times ``weight`` if given).",
        ("l = {f}",),
    ),
)

#: role -> the functions each kernel of that role emits, in module order
TABLE = {"activation": ACTIVATION, "regularizer": REGULARIZER, "loss": LOSS}

#: Said once in each loss module's docstring, not in every function's.
WEIGHT_DOC = (
    "Every loss function takes weight=w (one per element; per row for a class-axis loss): the "
    "mean is sum(w*l) / sum(w), or sum(w*l) / count when count= is given (so blocks add up), "
    "and the derivatives are w times the unweighted ones over the same divisor. With count=1 "
    "the _grad, _hess and _grad_hess functions give per-sample derivatives (no 1/n), as "
    "gradient boosting needs."
)


def functions_of(derived: Derived) -> list[Emitted]:
    """Return the rows of the table ``derived``'s kernel emits, in module order."""
    return [fn for fn in TABLE[derived.spec.role] if fn.applies(derived)]


def finishes_of(fn: Emitted, derived: Derived) -> tuple[str, ...]:
    """Return how each output finishes; a class-axis loss's per-sample values are per row."""
    rows = bool(derived.spec.class_axis)
    return tuple(ROWS if form == "per_sample" and rows else f for form, f in fn.outputs)


def scale_by_inv_n(expr: sp.Expr) -> sp.Expr:
    """Multiply by 1/n term by term, so the factor joins each term's scalar coefficients."""
    return sp.Add(*(INV_N * term for term in sp.Add.make_args(expr)))


def per_row(derived: Derived) -> sp.Expr:
    """Return a class-axis loss's value per row: its full-size terms summed over the classes."""
    from symgrad.compiler.printer import SymgradPrinter
    from symgrad.compiler.rewrite import lower_primitives

    printer = SymgradPrinter(scalars=frozenset(s for s, _ in derived.spec.hyper) | {N_CLASSES})
    terms = sp.Add.make_args(lower_primitives(derived.value))
    return sp.Add(*(axis_sum(t) if printer.rank(t) == 2 else t for t in terms))


def expressions(fn: Emitted, derived: Derived, mean_scaled: bool = False) -> list[sp.Expr]:
    """Return the expression of each output: an array output of a counted loss function has
    the 1/n inside; a mean is the per-sample value (``mean_scaled``: times 1/n, for a target
    that finishes it with a plain sum)."""
    out = []
    for form, finish in zip(fn.forms, finishes_of(fn, derived), strict=True):
        if form == "per_sample":
            e = per_row(derived) if finish == ROWS else derived.value
        else:
            e = getattr(derived, form)
        if finish == MEAN:
            e = INV_N * e if mean_scaled else e
        elif fn.counted:
            e = scale_by_inv_n(e)
        out.append(e)
    return out


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """One parameter of an emitted function; ``kind`` picks the annotation a target prints."""

    name: str
    kind: str  # "array", "float", "count", "weight", "out", "outs" (a tuple of arrays)
    default: str | None = None
    keyword_only: bool = False


def out_forms(fn: Emitted, derived: Derived) -> tuple[str, ...]:
    """Return the forms of the function's array outputs, in return order: what ``out=`` holds
    (one array; a tuple of arrays, one per form, where there are several)."""
    pairs = zip(fn.forms, finishes_of(fn, derived), strict=True)
    return tuple(form for form, finish in pairs if finish in (ARRAY, ROWS))


def has_out(fn: Emitted, derived: Derived) -> bool:
    """Tell whether the function takes ``out=``: it returns at least one array (one: ``out=``
    is an array; several, as ``_grad_hess``: a tuple of them, ``out_forms``)."""
    return bool(out_forms(fn, derived))


def parameters(fn: Emitted, derived: Derived) -> tuple[Param, ...]:
    """Return the parameters of ``fn`` for ``derived``'s kernel, the same on every target."""
    spec = derived.spec
    arrays = [Param(s.name, "array") for s in spec.inputs] + [Param(n, "array") for n in fn.extra]
    keywords = [Param(s.name, "float", repr(v), True) for s, v in spec.hyper]
    if spec.role == "loss":
        keywords += [Param("count", "count", "None", True)] if fn.counted else []
        keywords.append(Param("weight", "weight", "None", True))
    if has_out(fn, derived):
        pair = len(out_forms(fn, derived)) > 1
        keywords.append(Param("out", "outs" if pair else "out", "None", True))
    return (*arrays, *keywords)


def hyper_lines(spec, name: str) -> list[str]:
    """Return the statements checking each hyper-parameter against its domain (``_hyper`` of
    ``templates/inputs.py.jinja``, the same on every target)."""
    return [
        f"{s.name} = _hyper({name!r}, {s.name!r}, {s.name}, {spec.domain(s.name)!r})"
        for s, _ in spec.hyper
    ]


#: Code lines of generated modules stay within this many columns.
LINE_LENGTH = 100


def definition(
    name: str, params: tuple[Param, ...], annotations: dict[str, str], returns: str = ""
) -> str:
    """Return the ``def`` line of an emitted function, wrapped one parameter per line when it
    would run past ``LINE_LENGTH``; ``annotations`` maps a parameter kind to its annotation."""
    texts = []
    star = False
    for p in params:
        if p.keyword_only and not star:
            texts.append("*")
            star = True
        note = annotations.get(p.kind)
        text = f"{p.name}: {note}" if note else p.name
        if p.default is not None:
            text += f" = {p.default}" if note else f"={p.default}"
        texts.append(text)
    tail = f" -> {returns}:" if returns else ":"
    line = f"def {name}({', '.join(texts)}){tail}"
    if len(line) <= LINE_LENGTH:
        return line
    return "\n".join([f"def {name}(", *(f"    {t}," for t in texts), f"){tail}"])


# ---------------------------------------------------------------- documentation


def doc_fields(derived: Derived) -> dict[str, str]:
    """Return the fields the table's doc lines use; printed forms are computed on first use."""
    spec = derived.spec

    class Fields(dict):
        def __missing__(self, key: str) -> str:
            self[key] = formula(spec.expr if key == "f" else getattr(derived, key))
            return self[key]

    return Fields(
        name=spec.name,
        x=spec.wrt.name,
        fx=f"{spec.name}({', '.join(s.name for s in spec.inputs)})",
        per="sample" if spec.class_axis else "element",
        hess_note=(
            f"per sample; {spec.name}_hvp applies the whole per-sample Hessian"
            if spec.class_axis
            else "the loss is separable, so that is all of it"
        ),
    )


def wrap_doc_line(text: str, indent: str = "    ", width: int = LINE_LENGTH - 4) -> str:
    """Return ``text`` wrapped to the docstring width, continuation lines indented."""
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "    ",
        break_long_words=True,  # only a single token longer than the line is split
        break_on_hyphens=False,
    )


_QUOTE = re.compile(r"'[^']*'|\"[^\"]*\"")
#: What stays before the parentheses of a wrapped statement: ``return``, a C declaration, an
#: assignment or an augmented one (``value0 += ...``: a parenthesized ``(value0 += ...)`` is
#: no statement, and the module would not parse).
_HEAD = re.compile(r"(return |const T \w+ = |[A-Za-z_][\w, ]* (?:[-+*/]|\*\*|//)?= )")


def _chunks(text: str, width: int) -> list[str]:
    """Split ``text`` at spaces outside string literals into pieces of at most ``width``
    characters where it can (a piece without spaces may be longer)."""
    quoted = [(m.start(), m.end()) for m in _QUOTE.finditer(text)]
    cuts = [i for i, c in enumerate(text) if c == " " and not any(a < i < b for a, b in quoted)]
    pieces, start, last = [], 0, None
    for cut in [*cuts, len(text)]:
        if cut - start > width and last is not None:
            pieces.append(text[start:last])
            start = last + 1
        last = cut
    pieces.append(text[start:])
    return [p for p in pieces if p]


def wrap_code(line: str, width: int = LINE_LENGTH - 4, c: bool = False) -> list[str]:
    """Return one statement as lines of at most ``width`` columns where it can: a Python
    expression wrapped in parentheses (black's style), a C expression continued on indented
    lines; breaks fall between tokens, at spaces outside string literals."""
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    body, _, comment = line.strip().partition("  # ")
    comment = f"  # {comment}" if comment else ""
    match = _HEAD.match(body)
    head = match.group(0) if match else ""
    expr = body[len(head) :]
    if c:
        pieces = _chunks(body, width - len(indent) - 4)
        return [f"{indent}{pieces[0]}", *(f"{indent}    {p}" for p in pieces[1:])]
    pieces = _chunks(expr, width - len(indent) - 4)
    return [f"{indent}{head}(", *(f"{indent}    {p}" for p in pieces), f"{indent}){comment}"]


def wrap_lines(lines, width: int = LINE_LENGTH - 4, c: bool = False) -> list[str]:
    """Return ``lines`` with each long statement wrapped (``wrap_code``)."""
    return [piece for line in lines for piece in wrap_code(line, width, c)]


def docstring(fn: Emitted, derived: Derived, notes: list[str] = ()) -> str:
    """Return the docstring of ``fn``: its first line, the spec's own doc (on the kernel's
    first function), the formula lines, then a target's ``notes`` (already indented)."""
    fields = doc_fields(derived)
    first = wrap_doc_line(fn.first.format_map(fields), "", LINE_LENGTH - 8).strip()
    parts = [first]
    head = derived.spec.doc.strip()
    if head and fn.suffix == "":
        parts += ["", *(f"    {line}" if line else "" for line in head.splitlines())]
    lines = dict.fromkeys(line.format_map(fields) for line in fn.lines)
    parts += ["", *(wrap_doc_line(line) for line in lines), *notes, "    "]
    return "\n".join(parts)
