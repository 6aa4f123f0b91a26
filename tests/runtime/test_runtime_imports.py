"""The numpy run-time stands apart from the compiler: importing it loads neither sympy nor jinja2."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUNTIME = (
    "symgrad, symgrad.losses, symgrad.activations, symgrad.regularizers, symgrad.models, "
    "symgrad.optim, symgrad.fit, symgrad.newton, symgrad.blocked, symgrad.kernels, symgrad.domains"
)


def _loaded(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\nprint(' '.join(m for m in ('sympy', 'jinja2') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_runtime_imports_no_compiler():
    assert _loaded(f"import {RUNTIME}") == []


def test_models_train_on_builtins_without_the_compiler():
    code = (
        "import numpy as np, symgrad as sg\n"
        "from symgrad.models import LogisticRegression, MLP\n"
        "X = np.random.default_rng(0).normal(size=(50, 3)); y = (X[:, 0] > 0).astype(int)\n"
        "m = LogisticRegression(); p = m.init(0, n_features=3)\n"
        'sg.fit(m.objective, p, X, y, optimizer="adam", epochs=2)\n'
        "MLP([3, 4, 2]).objective(MLP([3, 4, 2]).init(0), X, y)"
    )
    assert _loaded(code) == []


def test_version_does_not_load_sympy():
    code = (
        "import contextlib, io\nfrom symgrad.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--version'])\n    except SystemExit:\n        pass"
    )
    assert _loaded(code) == []


def test_compiler_names_load_on_first_use():
    assert _loaded("import symgrad\nsymgrad.loss") == ["sympy", "jinja2"] or set(
        _loaded("import symgrad\nsymgrad.compile")
    ) == {"sympy", "jinja2"}


@pytest.mark.parametrize("role", ["activation", "loss", "regularizer"])
def test_kernel_table_describes_every_emitted_function(role):
    from symgrad.kernels import builtin_module, builtins

    module = builtin_module(role)
    listed = sorted(f for info in builtins(role).values() for f in info.functions)
    assert listed == sorted(module.__all__)
    for info in builtins(role).values():
        assert info.role == role
        assert all(callable(getattr(module, f)) for f in info.functions)
