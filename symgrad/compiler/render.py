"""Render kernel plans into Python source through the jinja2 templates, deterministically."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from symgrad.compiler.lower import RUNTIME, WEIGHTS, FunctionPlan
from symgrad.compiler.printer import HELPER_IMPORTS, HELPERS
from symgrad.compiler.spec import Spec
from symgrad.resources import templates_dir


@cache
def environment() -> jinja2.Environment:
    """Return the one jinja2 environment, strict about undefined names."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def kernel_metadata(spec: Spec, plans: list[FunctionPlan]) -> dict[str, Any]:
    """Return what the run-time needs to know about one kernel without importing the compiler."""
    return {
        "role": spec.role,
        "inputs": tuple(s.name for s in spec.inputs),
        "hyper": {s.name: v for s, v in spec.hyper},
        "class_axis": spec.class_axis,
        "domains": dict(sorted(spec.meta.get("domains", {}).items())),
        "link": spec.meta.get("link"),
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


def render_module(
    functions: list[FunctionPlan],
    *,
    kernels: str,
    source: str,
    command: str,
    title: str,
    target: str = "numpy",
) -> str:
    """Return the source of one generated module holding ``functions`` in the given order."""
    helpers = sorted(set().union(*(f.helpers for f in functions))) if functions else []
    if target != "numpy":
        return _render_other(
            functions, helpers, target, source=source, command=command, title=title
        )
    return (
        environment()
        .get_template("module.py.jinja")
        .render(
            source=source,
            command=command,
            title=title,
            imports=sorted(
                {HELPER_IMPORTS[h] for h in helpers if h in HELPER_IMPORTS}
                | ({"threading"} if RUNTIME in helpers else set())
            ),
            names=[f.name for f in functions],
            kernels=kernels,
            helpers=[HELPERS[h] for h in helpers if h not in (RUNTIME, WEIGHTS)],
            runtime=RUNTIME in helpers,
            weights=WEIGHTS in helpers,
            functions=functions,
        )
    )


def _render_other(
    functions: list[FunctionPlan], helpers: list[str], target: str, **header: str
) -> str:
    """Return the source of a module for the array-api or cupy target."""
    from symgrad.compiler.array_api import XP_HELPERS
    from symgrad.compiler.cuda import PREAMBLE

    template = {"array-api": "array_api.py.jinja", "cupy": "cupy.py.jinja"}[target]
    return (
        environment()
        .get_template(template)
        .render(
            **header,
            names=[f.name for f in functions],
            helpers=[XP_HELPERS[h] for h in helpers if h in XP_HELPERS],
            functions=functions,
            preamble=PREAMBLE,
            uses_math=any("math." in line for f in functions for line in f.body),
        )
    )
