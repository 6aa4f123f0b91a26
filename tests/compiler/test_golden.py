"""Golden cases: each file in tests/data/specs is a spec and the exact functions it emits."""

from __future__ import annotations

import pytest
from golden import SPECS, compare_directories, run_case, unified

import symgrad as sg
from symgrad.cli.generate import header_fields
from symgrad.cli.targets import builtin_targets
from symgrad.resources import generated_dir

CASES = sorted(SPECS.glob("*.py"))


def test_there_are_golden_cases():
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path):
    expected, emitted = run_case(path)
    assert emitted == expected, (
        f"{path.name}: emitted code changed (SYMGRAD_UPDATE_GOLDEN=1 pytest "
        f"tests/compiler/test_golden.py rewrites it)\n{unified(expected, emitted, 'expected', 'emitted')}"
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_is_valid_python_that_runs(path):
    _, emitted = run_case(path)
    compile(emitted, path.name, "exec")


def test_generated_folder_equals_a_fresh_generation(tmp_path):
    from symgrad.cli.generate import SUFFIXES

    for target in builtin_targets():
        for lowering, suffix in SUFFIXES.items():  # numpy, array-api, cupy
            source, command = header_fields(target, generated_dir(), generated_dir(), lowering)
            text = sg.generate_source(
                target.specs, source=source, title=target.title, command=command, target=lowering
            )
            (tmp_path / f"{target.stem}{suffix}.py").write_text(text)
    compare_directories(generated_dir(), tmp_path, "symgrad generate")
