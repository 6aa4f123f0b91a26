"""`symgrad list`, `show` and `verify` through real processes, and the verify logic in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.testing import format_table, verify_module, verify_spec

ROOT = Path(__file__).resolve().parents[2]

USER = '''\
import sympy as sp
import symgrad as sg


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy loss."""
    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)


@sg.loss
def neg_log(yhat, y):
    """-y log p on probabilities: only defined for p in (0, 1]."""
    return -y * sp.log(yhat)


@sg.regularizer
def l1(w, lam=0.1):
    """Same name as the built-in regularizer."""
    return lam * sp.Abs(w)
'''


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m symgrad ARGS`` in ``cwd`` with the checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "symgrad", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def user(tmp_path: Path) -> Path:
    (tmp_path / "my_losses.py").write_text(USER)
    return tmp_path


def test_list_builtins_and_a_user_file(user: Path):
    proc = run("list", cwd=user)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["kernel", "role", "inputs", "hyper-parameters"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["losses.huber"].split() == ["losses.huber", "loss", "yhat,", "y", "delta=1.0"]
    assert "loss (class axis)" in rows["losses.softmax_cross_entropy"]
    assert rows["regularizers.elastic_net"].endswith("lam=0.01, l1_ratio=0.5")
    assert rows["activations.relu"].split()[1:] == ["activation", "x", "-"]
    assert len(rows) == 32
    mine = run("list", "my_losses.py", cwd=user)
    assert mine.returncode == 0
    assert [line.split()[0] for line in mine.stdout.splitlines()[1:]] == [
        "my_losses.cauchy",
        "my_losses.l1",
        "my_losses.neg_log",
    ]
    missing = run("list", "nope.py", cwd=user)
    assert missing.returncode == 2 and missing.stderr == "error: nope.py: no such file\n"


def test_show_pretty_latex_and_code(user: Path):
    pretty = run("show", "huber", cwd=user)
    assert pretty.returncode == 0, pretty.stderr
    out = pretty.stdout
    assert out.startswith("losses.huber: loss huber(yhat, y, *, delta=1.0)\n")
    assert "d/dyhat (huber_grad divides by n):" in out and "d2/dyhat2" in out
    latex = run("show", "losses.huber", "--latex", cwd=user)
    assert latex.returncode == 0
    assert r"\frac{\partial L}{\partial \hat{y}} = " in latex.stdout
    assert r"\begin{cases}" in latex.stdout
    code = run("show", "softmax", "--code", cwd=user)
    assert code.returncode == 0
    namespace: dict = {}
    exec(compile(code.stdout, "<show>", "exec"), namespace)  # the code runs as printed
    x = np.array([[1.0, 2.0, 700.0]])
    assert np.allclose(namespace["softmax"](x), sg.activations.softmax(x))
    assert set(namespace["__all__"]) == {"softmax", "softmax_vjp"}
    vjp = run("show", "softmax", cwd=user)
    assert "vector-Jacobian product" in vjp.stdout


def test_show_names_ambiguity_unknowns_and_user_targets(user: Path):
    ambiguous = run("show", "l1", cwd=user)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == (
        "error: l1: ambiguous, it could be losses.l1, regularizers.l1; give the module too\n"
    )
    typo = run("show", "hubr", cwd=user)
    assert typo.returncode == 2 and "did you mean huber?" in typo.stderr
    emitted = run("show", "huber_grad", cwd=user)
    assert emitted.returncode == 2 and "it is emitted by losses.huber" in emitted.stderr
    mine = run("show", "neg_log", "-t", "my_losses.py", "--latex", cwd=user)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.startswith("% my_losses.neg_log: loss neg_log(yhat, y)")
    both = run("show", "l1", "-t", "my_losses.py", "-t", "symgrad.library.regularizers", cwd=user)
    assert both.returncode == 2 and "my_losses.l1, regularizers.l1" in both.stderr


def test_verify_user_file_and_builtins(user: Path):
    proc = run("verify", "my_losses.py", cwd=user)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == [
        "kernel",
        "functions checked",
        "points",
        "max rel err (rtol 1e-05)",
        "result",
    ]
    rows = {line.split("|")[0].strip(): line for line in lines[2:]}
    assert set(rows) == {"my_losses.cauchy", "my_losses.l1", "my_losses.neg_log"}
    assert all(line.rstrip().endswith("pass") for line in rows.values())
    assert "skipped" in rows["my_losses.l1"]  # the kink at 0 is skipped, not failed
    assert proc.stderr.endswith("3 kernels checked, 0 failed\n")
    builtins = run("verify", cwd=user)
    assert builtins.returncode == 0, builtins.stdout + builtins.stderr
    assert builtins.stderr.endswith("32 kernels checked, 0 failed\n")
    poisson = next(r for r in builtins.stdout.splitlines() if r.startswith("losses.poisson_nll"))
    assert "e+" not in poisson  # its derivative reaches 1e300: relative errors only
    strict = run(
        "verify", "my_losses.py", "--seed", "3", "--rtol", "0", "--atol", "1e-15", cwd=user
    )
    assert strict.returncode == 1  # finite differences cannot meet a zero tolerance
    assert "FAIL my_losses.cauchy" in strict.stderr
    bad = run("verify", "nope.py", cwd=user)
    assert bad.returncode == 2 and bad.stderr == "error: nope.py: no such file\n"


def test_verify_exits_1_on_a_wrong_derivative(user: Path, monkeypatch, capsys):
    from types import SimpleNamespace

    from symgrad import cli, compiled

    real = compiled.compile

    def tampered(*specs, **options):
        # a copy: compile returns the one module registered for this source, shared by all
        module = SimpleNamespace(**vars(real(*specs, **options)))
        good = module.cauchy_grad
        module.cauchy_grad = lambda yhat, y, **kw: good(yhat, y, **kw) * 1.001
        return module

    monkeypatch.setattr(compiled, "compile", tampered)
    monkeypatch.chdir(user)
    assert cli.main(["verify", "my_losses.py"]) == 1
    out, err = capsys.readouterr()
    row = next(line for line in out.splitlines() if line.startswith("my_losses.cauchy"))
    assert row.rstrip().endswith("FAIL")
    assert "FAIL my_losses.cauchy: cauchy_grad at yhat=" in err
    assert err.endswith("3 kernels checked, 1 failed\n")


# ------------------------------------------------------------------ verify logic, in-process


@sg.loss
def bce_probs(yhat, y):
    return -(sg.xlogy(y, yhat) + sg.xlogy(1 - y, 1 - yhat))


def test_verify_samples_probabilities_inside_0_1():
    result = verify_spec(bce_probs, sg.compile(bce_probs))
    assert result.ok, result.problems()
    assert result.domains["yhat"] == "unit"
    assert result.checked > 60


def test_verify_flags_wrong_second_derivative_and_raising_kernels():
    module = sg.compile(bce_probs)
    good = module.bce_probs_hess
    module.bce_probs_hess = lambda yhat, y: good(yhat, y) + 1e-3 / np.size(yhat)
    result = verify_spec(bce_probs, module)
    assert not result.ok
    assert [c.function for c in result.checks if not c.ok] == ["bce_probs_hess"]

    def broken(yhat, y):
        raise ZeroDivisionError("nope")

    module.bce_probs_grad = broken
    result = verify_spec(bce_probs, module)
    assert not result.ok and "raised ZeroDivisionError: nope" in result.problems()[0]


def test_verify_table_has_one_row_per_kernel():
    from symgrad.library import regularizers

    results = verify_module(regularizers.SPECS, sg.regularizers, prefix="regularizers.")
    table = format_table(results).splitlines()
    assert len(table) == 2 + len(regularizers.SPECS)
    assert all(r.ok for r in results)


SPEC_MISTAKES = {
    "np.cosh(yhat - y)": "; use sympy functions such as sp.cosh, not numpy's",
    "math.cosh(yhat - y)": "; use sympy functions such as sp.cosh, not math's",
    "(yhat - y) if yhat > y else (y - yhat)": "; use sp.Piecewise for a condition",
    "max(yhat, y)": "; use sp.Piecewise for a condition (sp.Max, sp.Min for max, min)",
}


@pytest.mark.parametrize("body", sorted(SPEC_MISTAKES))
def test_spec_mistakes_hint_at_the_fix(tmp_path: Path, capsys, monkeypatch, body: str):
    from symgrad.cli.app import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(
        "import math\nimport numpy as np\nimport symgrad as sg\n\n\n@sg.loss\n"
        f"def bad(yhat, y):\n    return {body}\n"
    )
    assert main(["list", "mine.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mine.py: spec 'bad': building the expression raised")
    assert SPEC_MISTAKES[body] in err, err


def test_unknown_kernel_names_point_to_your_own_spec(tmp_path: Path, capsys, monkeypatch):
    from symgrad.cli.app import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "iris", "--model", "mlp", "--activation", "swish2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown activation 'swish2'; choose one of: elu")
    assert err.rstrip().endswith("; for your own spec use FILE.py:NAME")
