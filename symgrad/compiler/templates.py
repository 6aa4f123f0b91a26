"""The one jinja2 environment over templates/, shared by every stage that renders text."""

from __future__ import annotations

from functools import cache

import jinja2

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
