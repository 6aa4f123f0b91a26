"""The numpy run-time stands apart from the compiler: importing it loads neither sympy nor jinja2,
and one function, ``symgrad.compiled.compile``, is its only door into the compiler."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import symgrad

RUNTIME = (
    "symgrad, symgrad.losses, symgrad.activations, symgrad.regularizers, symgrad.models, "
    "symgrad.optim, symgrad.fit, symgrad.newton, symgrad.blocked, symgrad.kernels, "
    "symgrad.domains, symgrad.compiled"
)
PACKAGE = Path(symgrad.__file__).parent
#: folders that may import the compiler; everywhere else only compiled.py's door does
COMPILER_SIDE = ("compiler", "library", "cli")
#: what compiler/ may import besides itself and the library: the leaves both floors share
SHARED_LEAVES = (
    "symgrad._version",
    "symgrad._specref",
    "symgrad.errors",
    "symgrad.domains",
    "symgrad.resources",
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
    assert _loaded("import symgrad\nsymgrad.loss") == ["sympy"]
    assert _loaded("import symgrad\nsymgrad.compile") == []  # the door opens when called
    assert set(
        _loaded("import symgrad, symgrad.library\nsymgrad.compile(symgrad.library.losses.mse)")
    ) == {
        "sympy",
        "jinja2",
    }


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """Return (module imported, enclosing function or None) for every import in ``path`` that
    runs: statements at any depth (inside functions too), ``importlib.import_module`` and
    ``__import__`` of a literal; blocks under ``if TYPE_CHECKING:`` never run and are skipped.
    A ``from a import b`` counts as importing both ``a`` and ``a.b``."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if _type_checking(node):
            for child in node.orelse:
                visit(child, function)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name if function is None else function
        if isinstance(node, ast.Import):
            found.extend((alias.name, function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, function))
            found.extend((f"{base}.{alias.name}", function) for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else None
            callee = node.func.id if isinstance(node.func, ast.Name) else callee
            first = node.args[0]
            if callee in ("import_module", "__import__") and isinstance(first, ast.Constant):
                found.append((str(first.value), function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _runtime_files() -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in COMPILER_SIDE and p.name != "compiled.py"
    ]


@pytest.mark.parametrize("path", _runtime_files(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_the_door_imports_the_compiler(path):
    """Outside compiler/, library/ and cli/ only compiled.py imports the compiler, even inside
    a function. The package root's table of lazy public names (``symgrad.loss`` ...) is the
    one other place that names it: a user's attribute access, not a run-time import."""
    crossings = [
        f"{name} (in {function or 'module scope'})"
        for name, function in _imports(path)
        if _in(name, "symgrad.compiler") or _in(name, "symgrad.library")
    ]
    assert crossings == [], f"{path.name} reaches the compiler; call symgrad.compiled.compile"
    if path.name == "__init__.py" and path.parent == PACKAGE:
        lazy = {name for name, module in symgrad._LAZY.items() if _in(module, "symgrad.compiler")}
        assert "compile" not in lazy


def test_the_door_is_one_function():
    """compiled.py reaches the compiler from exactly one function: ``compile``."""
    crossings = {
        (name, function)
        for name, function in _imports(PACKAGE / "compiled.py")
        if _in(name, "symgrad.compiler")
    }
    assert {function for _, function in crossings} == {"compile"}


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "compiler").rglob("*.py")),
    ids=lambda p: p.relative_to(PACKAGE).as_posix(),
)
def test_the_compiler_imports_no_runtime_module(path):
    """compiler/ imports itself, the built-in library and the shared leaves only: no circle
    through the door (``compiled`` <-> ``codegen``), and never the package root (which loads
    the run-time: ``fit``, ``optim``)."""
    allowed = ("symgrad.compiler", "symgrad.library", *SHARED_LEAVES)
    outside = sorted(
        {
            name
            for name, _ in _imports(path)
            if _in(name, "symgrad") and not any(_in(name, ok) for ok in allowed)
        }
    )
    assert outside == [], f"{path.name} imports the run-time"


def test_version_is_defined_once():
    """``__version__`` is assigned in symgrad/_version.py only; the wheel reads it from there."""
    assigned = [
        p.relative_to(PACKAGE).as_posix()
        for p in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
    ]
    assert assigned == ["_version.py"]
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and 'path = "symgrad/_version.py"' in pyproject


@pytest.mark.parametrize("role", ["activation", "loss", "regularizer"])
def test_kernel_table_describes_every_emitted_function(role):
    from symgrad.kernels import builtin_module, builtins

    module = builtin_module(role)
    listed = sorted(f for info in builtins(role).values() for f in info.functions)
    assert listed == sorted(module.__all__)
    for info in builtins(role).values():
        assert info.role == role
        assert all(callable(getattr(module, f)) for f in info.functions)
