"""Render kernel plans into Python source through the jinja2 templates, deterministically."""

from __future__ import annotations

from functools import cache

import jinja2

from symgrad.compiler.lower import RUNTIME, FunctionPlan
from symgrad.compiler.printer import HELPER_IMPORTS, HELPERS
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


def render_module(
    functions: list[FunctionPlan], *, source: str, command: str, title: str, target: str = "numpy"
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
            helpers=[HELPERS[h] for h in helpers if h != RUNTIME],
            runtime=RUNTIME in helpers,
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
