"""Build the wheel and sdist, install the wheel into a fresh venv, and use it outside the checkout."""

# Set SYMGRAD_SKIP_PACKAGING=1 to skip locally; `.ci/run` always runs it.

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(
        os.environ.get("SYMGRAD_SKIP_PACKAGING") == "1", reason="SYMGRAD_SKIP_PACKAGING=1"
    ),
]

USER_FILE = '''\
import sympy as sp
import symgrad as sg


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy loss."""
    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)
'''

CHECK_INSTALLED = """\
import importlib.machinery, pathlib, sys
import numpy as np
import sympy as sp
import symgrad, symgrad.losses
from symgrad.resources import generated_dir, templates_dir

prefix = pathlib.Path(sys.prefix).resolve()
here = pathlib.Path(symgrad.__file__).resolve()
print("symgrad imported from", here)
assert prefix in here.parents, (here, prefix)
assert pathlib.Path(sys.argv[1]) not in here.parents, "imported the checkout"
assert prefix in generated_dir().resolve().parents and prefix in templates_dir().resolve().parents
site_packages = [sys.argv[2]]
assert importlib.machinery.PathFinder.find_spec("generated", site_packages) is None, "top-level"
assert importlib.machinery.PathFinder.find_spec("templates", site_packages) is None, "top-level"
assert abs(symgrad.losses.huber(np.array([0.0]), np.array([3.0])) - 2.5) < 1e-12

@symgrad.loss
def quartic(yhat, y):
    return (yhat - y) ** 4 / 4

k = symgrad.compile(quartic)
assert np.allclose(k.quartic_grad(np.array([2.0, 0.0]), np.zeros(2)), [4.0, 0.0])
print("symgrad.compile ok:", k.quartic_grad(np.array([2.0]), np.zeros(1)))
"""


def _run(cmd: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    shown = " ".join(
        Path(str(c)).name if i == 0 else ("'<script>'" if "\n" in str(c) else str(c))
        for i, c in enumerate(cmd)
    )
    print(f"$ {shown}  # exit {proc.returncode}\n{proc.stdout}{proc.stderr}", end="")
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Build the sdist and the wheel (from the sdist, as `python -m build` does)."""
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_wheel_ships_templates_and_generated_inside_the_package(dist: Path):
    names = zipfile.ZipFile(_one(dist, "symgrad-*.whl")).namelist()
    assert "symgrad/templates/module.py.jinja" in names
    for stem in ("activations", "losses", "regularizers"):
        assert f"symgrad/generated/{stem}.py" in names
    top = {n.split("/")[0] for n in names}
    assert top == {"symgrad", next(t for t in top if t.endswith(".dist-info"))}, top
    assert not any("__pycache__" in n for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "symgrad = symgrad.cli:main" in zipfile.ZipFile(_one(dist, "*.whl")).read(entry).decode()


def test_sdist_has_the_sources(dist: Path):
    with tarfile.open(_one(dist, "symgrad-*.tar.gz")) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in ("pyproject.toml", "README.md", "symgrad/cli/app.py", "templates/module.py.jinja",
                 "generated/losses.py", "symgrad/library/losses.py"):  # fmt: skip
        assert name in names, name


def test_installed_wheel_works_outside_the_checkout(dist: Path, tmp_path: Path):
    wheel = _one(dist, "symgrad-*.whl")
    venv = tmp_path / "venv"
    assert (
        _run(
            [sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path
        ).returncode
        == 0
    )
    bindir = Path(sysconfig.get_path("scripts", vars={"base": str(venv), "platbase": str(venv)}))
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    python, symgrad = bindir / "python", bindir / "symgrad"
    # numpy, sympy, jinja2 come from this interpreter's site-packages (no download); a path line
    # in a .pth file does not run that folder's own .pth files, so an editable install of the
    # checkout stays invisible.
    deps = [p for p in site.getsitepackages() if Path(p).resolve() != purelib.resolve()]
    (purelib / "_symgrad_smoke_deps.pth").write_text("\n".join(deps) + "\n")
    install = [python, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-index",
               "--quiet", wheel]  # fmt: skip
    assert _run(install, cwd=tmp_path).returncode == 0

    work = tmp_path / "elsewhere"
    work.mkdir()
    assert ROOT not in work.parents and work not in ROOT.parents
    (work / "user_file.py").write_text(USER_FILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SYMGRAD"))}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"

    gen = _run([symgrad, "generate", "user_file.py", "-o", "out"], cwd=work, env=env)
    assert gen.returncode == 0, gen.stderr
    text = (work / "out" / "user_file.py").read_text()
    assert text.startswith(
        "# symgrad-generated: v1\n# Generated by symgrad from file '../user_file.py'."
    )
    assert "def cauchy_grad(" in text
    check = _run([symgrad, "generate", "user_file.py", "-o", "out", "--check"], cwd=work, env=env)
    assert check.returncode == 0, check.stderr
    builtin = _run([symgrad, "generate", "--check"], cwd=work, env=env)  # the packaged copies
    assert builtin.returncode == 0, builtin.stderr
    verify = _run([symgrad, "verify", "user_file.py"], cwd=work, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    version = _run([python, "-m", "symgrad", "--version"], cwd=work, env=env)
    assert version.returncode == 0 and version.stdout.startswith("symgrad ")
    used = _run([python, "-c", CHECK_INSTALLED, ROOT, purelib], cwd=work, env=env)
    assert used.returncode == 0, used.stdout + used.stderr
    assert str(venv.resolve()) in used.stdout
