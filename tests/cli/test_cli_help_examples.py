"""Every ``symgrad ...`` example shown by ``symgrad --help`` and each ``symgrad COMMAND --help`` runs.

The examples are read from the real help output, then run as written (in-process through
``symgrad.cli.app.main``, with a time limit each) in a temporary folder holding the user files
they name: my_losses.py (with ``my_loss``), the package mypkg.losses and data.csv, and a
pyproject.toml whose ``[tool.symgrad]`` names my_losses.py.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symgrad.cli.app import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("generate", "list", "show", "verify", "train", "predict")
TIME_LIMIT_S = 60

USER_SPECS = """\
import sympy as sp
import symgrad as sg


@sg.loss
def my_loss(yhat, y, c=1.0):
    \"\"\"Cauchy loss.\"\"\"
    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)
"""


def help_text(command: str | None) -> str:
    """Return the help ``symgrad [COMMAND] --help`` prints."""
    parser = build_parser()
    if command is None:
        return parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


def examples(text: str) -> list[str]:
    """Return the ``symgrad ...`` lines of the help's ``examples:`` section, comments removed."""
    lines = text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [" ".join(shlex.split(line, comments=True)) for line in lines if line.strip()]


def test_the_examples_are_found_and_name_real_commands():
    top = examples(help_text(None))
    assert len(top) >= 5 and {e.split()[1] for e in top} == set(COMMANDS)
    for command in COMMANDS:
        found = examples(help_text(command))
        assert found and all(e.split()[:2] == ["symgrad", command] for e in found), found
    assert "symgrad train --data diabetes" in examples(help_text("train"))
    # the text printed by the real program is the one read here
    proc = subprocess.run(
        [sys.executable, "-m", "symgrad", "train", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and examples(proc.stdout) == examples(help_text("train"))


@contextlib.contextmanager
def time_limit(seconds: int, what: str):
    def expire(signum, frame):
        raise TimeoutError(f"{what} ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def user_files(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "my_losses.py").write_text(USER_SPECS)
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "losses.py").write_text(USER_SPECS)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=80)
    rows = ["a,b,c,target"] + [f"{a},{b},{c},{t}" for (a, b, c), t in zip(X, y, strict=True)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    # a user's project: `symgrad generate` with no TARGET works on [tool.symgrad]'s targets
    (tmp_path / "pyproject.toml").write_text('[tool.symgrad]\ntargets = ["my_losses.py"]\n')
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "-q"]) == 0  # so `symgrad generate --check` finds them current
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield tmp_path
    for name in ("my_losses", "mypkg", "mypkg.losses"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_example_runs_as_written(user_files: Path, capsys, command: str | None):
    if command == "predict":  # the model file the examples read, as the top-level ones make it
        assert main(["train", "--data", "data.csv", "--label", "target"]) == 0
    for example in examples(help_text(command)):
        argv = shlex.split(example)[1:]
        with time_limit(TIME_LIMIT_S, example):
            code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"{example}\n{err}"
