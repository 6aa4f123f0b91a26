"""Every example in README.md and docs/ runs as written.

``python`` blocks run in order, one namespace per file, from the repository root (blocks that
only show code are fenced ``py``). README's ``bash`` blocks: each ``symgrad`` command runs in a
scratch folder and must exit 0 (``pip install`` steps are what CI itself proves).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w[\w-]*)\n(.*?)^```", re.S | re.M)


def blocks(path: Path, language: str) -> list[str]:
    """Return the code blocks of ``path`` fenced with ``language``, in order."""
    return [m.group(2) for m in FENCE.finditer(path.read_text()) if m.group(1) == language]


def readme_commands() -> list[str]:
    """Return every ``symgrad`` command in README's bash blocks, comments stripped."""
    commands = []
    for block in blocks(ROOT / "README.md", "bash"):
        for line in block.splitlines():
            for part in line.split("#", 1)[0].split("&&"):
                if part.strip().startswith("symgrad "):
                    commands.append(part.strip())
    return commands


PYTHON_PAGES = [p for p in PAGES if blocks(p, "python")]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[p.name for p in PYTHON_PAGES])
def test_python_blocks_run(page, monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": f"doc_{page.stem}"}
    for i, code in enumerate(blocks(page, "python")):
        exec(compile(code, f"{page.name}[python block {i}]", "exec"), namespace)  # noqa: S102


def test_readme_has_commands():
    assert len(readme_commands()) >= 5


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, tmp_path):
    argv = [sys.executable, "-m", "symgrad", *shlex.split(command)[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
