"""Hostile specs: every entry point (decorators, compose, Spec(...), compile) validates the same
way, and nothing a spec carries reaches the generated text unescaped."""

from __future__ import annotations

import keyword
import os
from pathlib import Path

import pytest
import sympy as sp

import symgrad as sg
from symgrad.compiler.render import check_module, docstring_literal
from symgrad.errors import CodegenError
from tests.hostile.corpus import BAD_DEFAULTS, BAD_NAMES, BREAKOUTS

X = sp.Symbol("x", real=True)
YHAT, Y = sp.symbols("yhat y", real=True)
C = sp.Symbol("c", real=True)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch):
    """Run in an empty folder so an injected ``open("PWNED", "w")`` would be seen."""
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / "PWNED").exists(), "an injected statement ran"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text, text
    return text


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_kernel_names_are_refused_everywhere(name: str):
    with pytest.raises(sg.SpecError) as info:
        sg.activation(lambda x: x**2, name=name)
    assert "spec" in one_line(info.value)
    with pytest.raises(sg.SpecError):
        sg.Spec(name, "activation", (X,), (), X**2)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_parameter_names_are_refused(name: str):
    sym = sp.Symbol(name, real=True)
    with pytest.raises(sg.SpecError):
        sg.Spec("k", "activation", (X,), ((sym, 1.0),), X * sym)
    if name.isidentifier() and not keyword.iskeyword(name):
        namespace: dict = {}
        exec(f"def k(x, {name}=1.0):\n    return x * {name}", namespace)  # noqa: S102
        with pytest.raises(sg.SpecError):
            sg.activation(namespace["k"])


@pytest.mark.parametrize("default", BAD_DEFAULTS, ids=repr)
def test_bad_defaults_are_refused(default):
    with pytest.raises(sg.SpecError) as info:
        sg.Spec("k", "activation", (X,), ((C, default),), X * C)
    one_line(info.value)

    def k(x, c=default):
        return x * c

    with pytest.raises(sg.SpecError):
        sg.activation(k)


@pytest.mark.parametrize("doc", BREAKOUTS, ids=repr)
def test_docstrings_compile_or_are_refused_and_never_inject(doc: str):
    try:
        spec = sg.activation(lambda x: x**2, name="sq", doc=doc)
    except sg.SpecError as exc:
        one_line(exc)
        return
    module = sg.compile(spec)
    assert module.sq([3.0]) == [9.0]
    assert all(word in module.sq.__doc__ for word in doc.split())  # it arrived as written
    with pytest.raises(sg.SpecError):  # the same doc is refused or accepted by Spec(...) too
        if '"""' in doc or not doc.isprintable():
            sg.Spec("sq", "activation", (X,), (), X**2, doc)
        raise sg.SpecError("sq", "accepted")


@pytest.mark.parametrize(
    "fields",
    [
        {"role": "optimizer"},
        {"role": None},
        {"inputs": [X]},
        {"inputs": (sp.Symbol("x"),)},  # not real
        {"inputs": ("x",)},
        {"hyper": ((C,),)},
        {"expr": "x**2"},
        {"expr": sp.Matrix([X])},
        {"doc": 3},
        {"doc": 'end"""'},
        {"origin": 3},
        {"meta": []},
        {"meta": {"domains": {"c": "positive"}}},  # no such parameter
        {"meta": {"domains": "positive"}},
        {"meta": {"domains": {"x": "huge"}}},
        {"meta": {"link": "tanh"}},
    ],
    ids=repr,
)
def test_spec_built_directly_is_validated(fields: dict):
    base = {"name": "k", "role": "activation", "inputs": (X,), "hyper": (), "expr": X**2}
    with pytest.raises(sg.SpecError) as info:
        sg.Spec(**(base | fields))
    one_line(info.value)


def test_domains_are_declared_checked_and_recorded():
    @sg.loss(domains={"c": "positive"})
    def cauchy(yhat, y, c=1.0):
        return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)

    module = sg.compile(cauchy)
    assert "c = _hyper('cauchy', 'c', c, 'positive')" in module.__source__
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "1", [1.0], 1j):
        with pytest.raises(ValueError, match=r"^cauchy: c must be a finite number > 0, got "):
            module.cauchy([0.0], [1.0], c=bad)
    assert module.cauchy([0.0], [1.0], c=2) == pytest.approx(2 * sp.log(1.25).evalf())
    with pytest.raises(sg.SpecError, match="domain 'huge' of 'c' is not one of"):
        sg.loss(lambda yhat, y, c=1.0: c * (yhat - y) ** 2, name="k", domains={"c": "huge"})
    with pytest.raises(sg.SpecError, match=r"default -1.0, which is not > 0"):
        sg.loss(lambda yhat, y, c=-1.0: c * (yhat - y) ** 2, name="k", domains={"c": "positive"})
    with pytest.raises(sg.SpecError, match="its domain must be one of"):
        sg.loss(lambda yhat, y, c=1.0: c * (yhat - y) ** 2, name="k", domains={"c": "simplex"})
    spec = sg.Spec("k", "activation", (X,), ((C, 2.0),), C * X, meta={"domains": {"c": "positive"}})
    with pytest.raises(ValueError, match="k_grad: c must be a finite number > 0, got 0"):
        sg.compile(spec).k_grad([1.0], c=0)


def test_builtin_domains():
    import numpy as np

    import symgrad.losses as L
    import symgrad.regularizers as R

    x = np.zeros(3)
    with pytest.raises(ValueError, match="huber: delta must be a finite number > 0, got -1"):
        L.huber(x, x, delta=-1)
    with pytest.raises(ValueError, match=r"pinball_grad: tau must be a finite number in \[0, 1\]"):
        L.pinball_grad(x, x, tau=1.5)
    with pytest.raises(ValueError, match="l2: lam must be a finite number >= 0"):
        R.l2(x, lam=-0.1)


def test_compile_and_compose_refuse_non_specs():
    with pytest.raises(TypeError, match="pass them as separate arguments"):
        sg.compile([sg.losses and __import__("symgrad.library.losses").library.losses.mse])
    with pytest.raises(TypeError, match="decorate the function"):
        sg.compile(lambda x: x)
    with pytest.raises(TypeError, match="at least one"):
        sg.compile()
    with pytest.raises(sg.SpecError, match="takes a loss spec then an activation spec"):
        sg.compose(lambda x: x, None)
    with pytest.raises(sg.SpecError, match="decorates a function"):
        sg.loss(3)


def test_check_module_refuses_what_escaping_would_let_through():
    ok = sg.generate_source([sg.activation(lambda x: x**2, name="sq")], source="t")
    check_module(ok, ["sq", "sq_grad", "sq_hess"])
    bad = [
        ok.replace('"""', '"""\nimport os\n"""', 1),  # a statement between header and body
        ok.replace("def sq(", "@staticmethod\ndef sq(", 1),
        ok.replace("def sq(x", "def sq(float", 1),
        ok + "\ndef float(x):\n    return x\n",
        ok + "\nprint('hi')\n",
        ok.replace("# symgrad-generated: v1", "# symgrad-generated: v2", 1),
        ok + "\ndef (:\n",
    ]
    for text in bad:
        with pytest.raises(CodegenError):
            check_module(text, ["sq", "sq_grad", "sq_hess"])
    for text in BREAKOUTS:
        literal = docstring_literal(text)
        assert eval(literal) == text  # noqa: S307 - our own literal


@pytest.mark.parametrize("source", BREAKOUTS[:6], ids=repr)
def test_header_text_cannot_break_out(source: str):
    spec = sg.activation(lambda x: x**2, name="sq")
    with pytest.raises(CodegenError):
        sg.generate_source([spec], source=source)
    text = sg.generate_source([spec], source=repr(source), title=source)
    namespace: dict = {}
    exec(compile(text, "<hostile>", "exec"), namespace)  # noqa: S102
    assert namespace["__doc__"] == source
    assert not os.path.exists("PWNED")


class EvilFloat(float):
    """A number whose ``repr`` (and ``__float__``) is code that writes PWNED when run."""

    def __repr__(self) -> str:
        return "(open('PWNED', 'w').close() or 1.0)"

    def __float__(self) -> float:
        return self


class EvilInt(int):
    def __repr__(self) -> str:
        return "(open('PWNED', 'w').close() or 2)"

    def __int__(self) -> int:
        return self


EVIL_C, EVIL_D = EvilFloat(1.5), EvilInt(2)


def test_number_subclass_defaults_are_printed_as_plain_numbers():
    """Issue 19.13: a float subclass's repr reached the signature and KERNELS and ran."""

    def k(x, c=EVIL_C, d=EVIL_D):
        return c * x**d

    built = [
        sg.Spec("k", "activation", (X,), ((C, EvilFloat(1.5)),), C * X**2),
        sg.activation(k),
    ]
    for spec in built:
        assert all(type(v) in (float, int) for _, v in spec.hyper), spec.hyper
        module = sg.compile(spec)
        assert "PWNED" not in module.__source__
        assert "c: float = 1.5" in module.__source__
        assert module.KERNELS["k"]["hyper"]["c"] == 1.5
        assert module.k([2.0]) == [6.0]
    assert not os.path.exists("PWNED")


def test_compose_with_every_pre_activation_name_taken_is_one_spec_error():
    """Issue 19.14: compose raised a bare StopIteration."""

    @sg.loss
    def taken(yhat, z, logits, z_=1.0):
        return (yhat - z) ** 2 + logits * z_

    with pytest.raises(sg.SpecError, match="already uses every pre-activation name") as info:
        sg.compose(taken, sg.activation(lambda x: x**2, name="sq"))
    one_line(info.value)


def test_spec_not_real_anywhere_is_a_spec_error_and_cli_exit_2(tmp_path: Path):
    """Issue 19.15: log(Max(0, log(log(sigmoid(x))))) raised a raw ValueError at compile, and
    the CLI exited 123."""
    import subprocess
    import sys

    def nowhere(x):
        return sp.log(sp.Max(0, sp.log(sp.log(1 / (1 + sp.exp(-x))))))

    with pytest.raises(sg.SpecError, match="not real-valued anywhere") as info:
        sg.activation(nowhere)
    one_line(info.value)
    (tmp_path / "bad.py").write_text(
        "import sympy as sp\nimport symgrad as sg\n\n\n@sg.activation\ndef nowhere(x):\n"
        "    return sp.log(sp.Max(0, sp.log(sp.log(1 / (1 + sp.exp(-x))))))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("SYMGRAD_TRACEBACK", None)
    proc = subprocess.run(
        [sys.executable, "-m", "symgrad", "generate", "bad.py", "-o", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "not real-valued anywhere" in proc.stderr and "Traceback" not in proc.stderr
