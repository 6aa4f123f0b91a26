"""Find kernels by name across targets and describe them for ``symgrad list`` and ``symgrad show``."""

from __future__ import annotations

import difflib
import shutil
import sys
from dataclasses import dataclass

import sympy as sp

from symgrad.cli.targets import Target, TargetError
from symgrad.compiler.spec import Spec


@dataclass(frozen=True)
class Entry:
    """One kernel spec and the target (output module) it belongs to."""

    target: Target
    spec: Spec

    @property
    def name(self) -> str:
        """Return the qualified name, ``module.kernel``."""
        return f"{self.target.stem}.{self.spec.name}"


def entries(targets: list[Target]) -> list[Entry]:
    """Return every kernel of ``targets``, in target order then name order."""
    return [Entry(t, s) for t in targets for s in sorted(t.specs, key=lambda s: s.name)]


def _role(spec: Spec) -> str:
    return f"{spec.role} (class axis)" if spec.class_axis else spec.role


def _hyper(spec: Spec) -> str:
    return ", ".join(f"{s.name}={v!r}" for s, v in spec.hyper) or "-"


def format_list(items: list[Entry]) -> str:
    """Return a table of kernels: name, role, array inputs, hyper-parameters with defaults."""
    head = ("kernel", "role", "inputs", "hyper-parameters")
    rows = [
        (e.name, _role(e.spec), ", ".join(s.name for s in e.spec.inputs), _hyper(e.spec))
        for e in items
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)), r[3]]).rstrip()
        for r in [head, *rows]
    ]
    return "\n".join(lines) + "\n"


def find(name: str, targets: list[Target]) -> Entry:
    """Return the kernel called ``name`` (``module.kernel`` or a unique bare name)."""
    items = entries(targets)
    exact = [e for e in items if name in (e.name, f"{e.target.source}.{e.spec.name}")]
    if not exact and "." not in name:
        exact = [e for e in items if e.spec.name == name]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        names = ", ".join(e.name for e in exact)
        raise TargetError(f"{name}: ambiguous, it could be {names}; give the module too")
    emitted = [e for e in items if name.rsplit(".", 1)[-1].startswith(e.spec.name + "_")]
    if emitted:
        best = max(emitted, key=lambda e: len(e.spec.name))
        raise TargetError(f"{name}: no such kernel; it is emitted by {best.name}")
    close = difflib.get_close_matches(name, [e.name for e in items] + [e.spec.name for e in items])
    hint = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
    raise TargetError(f"{name}: no such kernel (see `symgrad list`){hint}")


def _pretty(expr: sp.Expr) -> str:
    unicode = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"
    width = shutil.get_terminal_size((100, 24)).columns
    return sp.pretty(expr, use_unicode=unicode, num_columns=max(60, width - 4))


def _indent(text: str) -> str:
    return "\n".join(f"    {line}".rstrip() for line in text.splitlines())


def sections(entry: Entry) -> list[tuple[str, str, sp.Expr]]:
    """Return (heading, latex lhs, expression) for the value and each derivative symgrad emits."""
    from symgrad.compiler.kernel import derive_kernel

    spec = entry.spec
    derived = derive_kernel(spec)
    x = spec.wrt.name
    xl = sp.latex(spec.wrt)
    sym = {"loss": "L", "activation": "f", "regularizer": "R"}[spec.role]
    per = {
        "loss": "per sample; the loss is the mean over samples"
        if spec.class_axis
        else "per element; the loss is the mean over elements",
        "activation": "element-wise" if not spec.class_axis else "over the last axis",
        "regularizer": "per weight; the regularizer is the sum over weights",
    }[spec.role]
    mean = spec.role == "loss"
    out = [(f"{spec.name} ({per})", sym, spec.expr)]
    if derived.grad is not None:
        note = f" ({spec.name}_grad divides by n)" if mean else ""
        out.append((f"d/d{x}{note}", rf"\frac{{\partial {sym}}}{{\partial {xl}}}", derived.grad))
    if derived.hess is not None:
        note = f" ({spec.name}_hess divides by n)" if mean else ""
        lhs = rf"\frac{{\partial^2 {sym}}}{{\partial {xl}^2}}"
        out.append((f"d2/d{x}2{note}", lhs, derived.hess))
    if derived.vjp is not None:
        out.append(("vector-Jacobian product with grad_output", r"\mathrm{vjp}", derived.vjp))
    if derived.hvp is not None:
        note = f" ({spec.name}_hvp divides by n)" if mean else ""
        out.append((f"Hessian-vector product with vector{note}", r"H v", derived.hvp))
    return out


def _signature(spec: Spec) -> str:
    args = [s.name for s in spec.inputs]
    if spec.hyper:
        args += ["*", *(f"{s.name}={v!r}" for s, v in spec.hyper)]
    return f"{spec.name}({', '.join(args)})"


def describe(entry: Entry) -> str:
    """Return the kernel's signature, docstring, expression and derivatives, pretty-printed."""
    spec = entry.spec
    lines = [f"{entry.name}: {_role(spec)} {_signature(spec)}", f"from {entry.target.source}"]
    if spec.doc:
        lines += ["", _indent(spec.doc)]
    for heading, _, expr in sections(entry):
        lines += ["", f"{heading}:", _indent(_pretty(expr))]
    return "\n".join(lines) + "\n"


def describe_latex(entry: Entry) -> str:
    """Return the kernel's expression and derivatives as LaTeX, one ``lhs = rhs`` per section."""
    lines = [f"% {entry.name}: {_role(entry.spec)} {_signature(entry.spec)}"]
    for heading, lhs, expr in sections(entry):
        lines += [f"% {heading}", f"{lhs} = {sp.latex(expr)}"]
    return "\n".join(lines) + "\n"


def code(entry: Entry) -> str:
    """Return the module source ``symgrad generate`` emits for this one kernel."""
    from symgrad.compiler.codegen import generate_source

    return generate_source(
        [entry.spec],
        source=entry.target.source,
        command=f"symgrad show {entry.name} --code",
        title=f"{entry.name}, as symgrad emits it.",
    )
