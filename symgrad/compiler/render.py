"""Render kernel plans into Python source through the jinja2 templates, deterministically."""

from __future__ import annotations

import ast
import builtins
import textwrap
from typing import Any

from symgrad.compiler.emitted import LINE_LENGTH, WEIGHT_DOC, FunctionPlan
from symgrad.compiler.spec import Spec
from symgrad.compiler.targets import target as target_module
from symgrad.compiler.templates import environment
from symgrad.domains import BOUNDS, describe
from symgrad.errors import CodegenError

#: The exact first line of every file symgrad generates: only files that carry it, exactly,
#: are ever overwritten or pruned. The version changes if the header's layout does.
MARKER = "# symgrad-generated: v1"
_BUILTINS = frozenset(dir(builtins))


def versions() -> str:
    """Return the tool versions that shape the output, as the header records them."""
    import sympy

    from symgrad._version import __version__

    return f"symgrad {__version__}, sympy {sympy.__version__}"


def kernel_metadata(spec: Spec, plans: list[FunctionPlan]) -> dict[str, Any]:
    """Return what the run-time needs to know about one kernel without importing the compiler."""
    return {
        "role": spec.role,
        "inputs": tuple(s.name for s in spec.inputs),
        "hyper": {s.name: v for s, v in spec.hyper},
        "class_axis": spec.class_axis,
        "domains": dict(sorted(spec.meta.get("domains", {}).items())),
        "link": spec.meta.get("link"),
        "curvature": spec.curvature,
        "convex": spec.meta.get("convex"),
        "functions": tuple(p.name for p in plans),
    }


def kernel_table(planned: list[tuple[Spec, list[FunctionPlan]]]) -> str:
    """Print the ``KERNELS`` metadata table: one entry per spec, one key per line."""
    lines = ["{"]
    for spec, plans in planned:
        lines.append(f"    {spec.name!r}: {{")
        for key, value in kernel_metadata(spec, plans).items():
            if key == "functions":
                lines.append("        'functions': (")
                lines += [f"            {name!r}," for name in value]
                lines.append("        ),")
            else:
                lines.append(f"        {key!r}: {value!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


def comment_text(text: str) -> str:
    """Return ``text`` safe to sit in a one-line comment: itself if printable, else its repr."""
    return text if text.isprintable() else repr(text)


def docstring_literal(text: str) -> str:
    """Return a Python literal for the docstring ``text``: triple-quoted when that is exact
    (printable, no quote or backslash), else ``repr`` (escaped by construction)."""
    plain = all(c.isprintable() or c == "\n" for c in text) and not set(text) & set('"\\\r')
    return f'"""{text}"""' if plain and text else repr(text)


def hyper_domains() -> str:
    """Print the table the emitted functions check hyper-parameters against: domain ->
    (low, low allowed, high, high allowed, words for the error)."""
    words = {
        d: "a finite real number" if d == "real" else f"a finite number {describe(d)}"
        for d in BOUNDS
    }
    rows = "".join(f"    {d!r}: {(*BOUNDS[d], words[d])!r},\n" for d in sorted(BOUNDS))
    return "{\n" + rows + "}"


def module_doc(title: str, note: str, weights: bool) -> str:
    """Return a module docstring: the title, the target's ``note`` and, for a module of
    losses, what ``weight=`` and ``count=`` do (said once here, not in every function)."""
    parts = [title]
    if note:
        parts.append(note.strip())
    if weights:
        parts.append(textwrap.fill(WEIGHT_DOC, LINE_LENGTH - 4, break_on_hyphens=False))
    return "\n\n".join(parts) + "\n" if len(parts) > 1 else title


def render_module(
    functions: list[FunctionPlan],
    *,
    kernels: str,
    source: str,
    command: str,
    title: str,
    target: str = "numpy",
) -> str:
    """Return the source of one generated module holding ``functions`` in the given order.

    ``source`` and ``command`` go into header comments as given (the caller quotes them with
    ``repr`` or :func:`comment_text`); they and ``title`` are checked to stay on one line, and the
    result is parsed and its top-level names checked before anyone can write it.
    """
    for what, text in (("source", source), ("command", command)):
        if not text.isprintable():
            raise CodegenError(f"the header's {what} {text!r} is not one printable line")
    helpers = sorted(set().union(*(f.helpers for f in functions))) if functions else []
    module = target_module(target)
    extra = module.context(functions, helpers)
    names = [f.name for f in functions]
    text = (
        environment()
        .get_template(module.TEMPLATE)
        .render(
            marker=MARKER,
            source=source,
            command=command,
            versions=versions(),
            title=docstring_literal(module_doc(title, module.NOTE, extra["weights"])),
            names=names,
            functions=functions,
            kernels=kernels,
            domains=hyper_domains(),
            **extra,
        )
    )
    check_module(text, names)
    return text


_ALLOWED_TOP = (ast.Import, ast.ImportFrom, ast.Assign, ast.FunctionDef)


def check_module(text: str, names: list[str]) -> None:
    """Raise CodegenError unless ``text`` parses, starts with the marker line and a docstring,
    holds only imports, assignments and plain functions, binds each top-level name once, shadows
    no builtin, and defines exactly the functions ``names`` that ``__all__`` lists."""
    if text.split("\n", 1)[0] != MARKER:
        raise CodegenError("the generated module does not start with the marker line")
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise CodegenError(
            f"the generated module does not parse: line {exc.lineno}: {exc.msg}"
        ) from None
    body = tree.body
    if not body or not isinstance(body[0], ast.Expr) or ast.get_docstring(tree) is None:
        raise CodegenError("the generated module does not start with its docstring")
    bound: list[str] = []
    functions: list[str] = []
    for node in body[1:]:
        if not isinstance(node, _ALLOWED_TOP):
            raise CodegenError(f"unexpected {type(node).__name__} statement at line {node.lineno}")
        if isinstance(node, ast.FunctionDef):
            _check_function(node)
            functions.append(node.name)
            bound.append(node.name)
        elif isinstance(node, ast.Assign):
            if not all(isinstance(t, ast.Name) for t in node.targets):
                raise CodegenError(f"unexpected assignment at line {node.lineno}")
            bound += [t.id for t in node.targets]
        else:
            bound += [(a.asname or a.name).split(".")[0] for a in node.names]
    clash = sorted({n for n in bound if bound.count(n) > 1} | (set(bound) & _BUILTINS))
    if clash:
        raise CodegenError(f"top-level name {clash[0]!r} is bound twice or shadows a builtin")
    public = [n for n in functions if not n.startswith("_")]
    if public != list(names) or ast.literal_eval(_all_node(body)) != list(names):
        raise CodegenError("the generated functions do not match the kernels' emitted names")


def _all_node(body: list[ast.stmt]) -> ast.expr:
    for node in body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "__all__"
        ]:
            return node.value
    raise CodegenError("the generated module has no __all__")


def _check_function(node: ast.FunctionDef) -> None:
    """Raise CodegenError if a function is decorated or a parameter shadows a builtin."""
    if node.decorator_list:
        raise CodegenError(f"function {node.name!r} is decorated")
    args = node.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    shadowed = sorted(set(params) & _BUILTINS)
    if shadowed:
        raise CodegenError(f"parameter {shadowed[0]!r} of {node.name!r} shadows a builtin")
