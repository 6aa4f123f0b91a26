"""Every example in README.md and docs/ runs as copied.

Each ``python`` block runs on its own in a fresh interpreter, in an empty folder, as a reader
who pastes that one block would run it (blocks that only show code are fenced ``py``).
README's ``bash`` blocks: each ``symgrad`` command runs in a scratch folder and must exit 0,
except ``symgrad generate``, which regenerates the built-ins only inside a checkout: it runs
here as ``--check`` (``pip install`` steps are what CI itself proves). The pre-commit snippet
names the hook this repository ships and no tag that does not exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w[\w-]*)\n(.*?)^```", re.S | re.M)
#: the longest a block may take alone (the slowest train on small data in a few seconds)
BLOCK_TIMEOUT_S = 300


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


PYTHON_BLOCKS = [
    pytest.param(page, i, code, id=f"{page.name}[{i}]")
    for page in PAGES
    for i, code in enumerate(blocks(page, "python"))
]


def test_the_pages_have_python_blocks():
    assert len(PYTHON_BLOCKS) >= 30


@pytest.mark.parametrize("page, index, code", PYTHON_BLOCKS)
def test_python_block_runs_alone_in_a_fresh_interpreter(page, index, code, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{page.name} python block {index}:\n{proc.stderr[-3000:]}"


def test_readme_has_commands():
    assert len(readme_commands()) >= 5


def as_run(command: str) -> tuple[str, ...]:
    """Return the arguments a README command runs with here (``generate`` as ``--check``)."""
    args = tuple(shlex.split(command)[1:])
    if args[:1] == ("generate",) and "--check" not in args:
        args = (*args, "--check")
    return args


@pytest.mark.parametrize("args", sorted({as_run(c) for c in readme_commands()}), ids=" ".join)
def test_readme_command_runs(args, tmp_path):
    # the built-ins are generated only inside this checkout: run generate there, else a
    # scratch folder
    cwd = ROOT if args[0] == "generate" else tmp_path
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "symgrad", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert proc.returncode == 0, (
        f"symgrad {' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )


def test_pre_commit_snippet_matches_the_shipped_hook():
    shipped = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    snippets = [yaml.safe_load(b) for b in blocks(ROOT / "docs" / "cli.md", "yaml")]
    repos = [r for s in snippets if isinstance(s, dict) for r in s.get("repos", [])]
    hooks = [(r, h) for r in repos for h in r["hooks"]]
    assert hooks, "docs/cli.md shows no pre-commit configuration"
    tags = subprocess.run(
        ["git", "tag"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    for repo, hook in hooks:
        assert hook["id"] in shipped, f"hook {hook['id']!r} is not in .pre-commit-hooks.yaml"
        if repo["repo"] == "local":  # a local hook spells out what the shipped one runs
            for key in ("entry", "pass_filenames", "types"):
                assert hook[key] == shipped[hook["id"]][key], key
            continue
        rev = str(repo["rev"])
        assert rev in tags or re.fullmatch(r"<.*sha.*>|[0-9a-f]{40}", rev), (
            f"rev {rev!r} is neither a tag of this repository nor a commit sha"
        )
