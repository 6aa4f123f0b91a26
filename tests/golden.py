"""Shared test helpers: golden spec cases and SymForce-style directory comparison.

A golden case is a file under ``tests/data/specs/``: a spec written as a user would, a line
``# output``, then the functions symgrad must emit for it, byte for byte. Set
``SYMGRAD_UPDATE_GOLDEN=1`` to rewrite the expectations (then review the diff).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import symgrad as sg

SPECS = Path(__file__).resolve().parent / "data" / "specs"
MARK = "# output\n"
UPDATE = os.environ.get("SYMGRAD_UPDATE_GOLDEN") == "1"


def emitted_functions(source: str) -> str:
    """Return the part of a generated module after its run-time helpers: the functions."""
    first = re.search(r"^def (?!_)", source, re.M)
    assert first, "no public function in the generated source"
    return source[first.start() :]


def run_case(path: Path) -> tuple[str, str]:
    """Return (expected, emitted) for one golden case file."""
    text = path.read_text()
    code, _, expected = text.partition(MARK)
    namespace: dict = {}
    exec(compile(code, str(path), "exec"), namespace)  # noqa: S102 - our own test data
    specs = [v for v in namespace.values() if isinstance(v, sg.Spec)]
    assert specs, f"{path.name} defines no spec"
    source = sg.generate_source(specs, source=path.name)
    emitted = emitted_functions(source)
    if UPDATE and emitted != expected:
        path.write_text(code + MARK + emitted)
        expected = emitted
    return expected, emitted


def unified(expected: str, got: str, a: str, b: str) -> str:
    """Return a unified diff without timestamps."""
    return "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True), a, b, n=2))


def compare_directories(expected: Path, fresh: Path, update_command: str) -> None:
    """Fail with the file lists and a unified diff unless both folders hold the same files."""
    names = sorted(p.name for p in expected.glob("*.py"))
    new_names = sorted(p.name for p in fresh.glob("*.py"))
    assert names == new_names, (
        f"{expected} holds {names}, the generator writes {new_names}: run `{update_command}`"
    )
    for name in names:
        old, new = (expected / name).read_text(), (fresh / name).read_text()
        if old != new:
            diff = unified(old, new, f"{name} (on disk)", f"{name} (generated)")
            raise AssertionError(f"{name} is stale: run `{update_command}`\n{diff}")
