"""Generated code reads well in review: code lines fit 100 columns, weight=/count= are explained
once per module, each body statement that completes a docstring temporary says which (``# tN``),
and changing one constant in one spec changes only that kernel's lines."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import re

import numpy as np
import pytest
import sympy as sp
from conftest import emitted_args

import symgrad as sg
import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from symgrad.compiler.emitted import LINE_LENGTH, WEIGHT_DOC
from symgrad.compiler.targets import TARGETS
from symgrad.resources import generated_dir

FILES = sorted(generated_dir().glob("*.py"))


def test_there_are_generated_modules_for_every_target():
    assert len(FILES) == 3 * len(TARGETS)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_lines_fit_the_line_length(path):
    long = [(i, line) for i, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 100]
    assert LINE_LENGTH == 100 and not long, long[:3]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_weight_is_explained_once_in_the_module_docstring(path):
    tree = ast.parse(path.read_text())
    said = "Every loss function takes weight=w"
    module_doc = ast.get_docstring(tree)
    docs = [ast.get_docstring(f) or "" for f in tree.body if isinstance(f, ast.FunctionDef)]
    assert not any(said in d or "weight=w (one per element" in d for d in docs)
    has_losses = path.name.startswith("losses")
    assert (" ".join(WEIGHT_DOC.split()) in " ".join(module_doc.split())) == has_losses


NUMPY_FILES = [p for p in FILES if p.stem in ("activations", "losses", "regularizers")]


@pytest.mark.parametrize("path", NUMPY_FILES, ids=[p.name for p in NUMPY_FILES])
def test_body_statements_name_the_docstring_temporaries_they_complete(path):
    """Every tN of a docstring's plain-numpy form is a body line ``tN = ...`` (a scalar) or
    completed by one statement that ends with ``# tN``, except a class sum the body only ever
    folds into a weighted total (it computes no array for it)."""
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    named = folded = 0
    for fn in (f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name[0] != "_"):
        doc = ast.get_docstring(fn)
        temps = re.findall(r"^\s+(t\d+) = ", doc, flags=re.MULTILINE)
        body = lines[fn.body[1].lineno - 1 : fn.end_lineno]
        tags = re.findall(r"  # (t\d+)$", "\n".join(body), flags=re.MULTILINE)
        assert set(tags) <= set(temps) and len(tags) == len(set(tags)), fn.name
        for t in temps:
            if any(line.strip().startswith(f"{t} = ") for line in body) or t in tags:
                named += 1
            else:
                assert re.search(rf"^\s+{t} = np\.einsum\(", doc, flags=re.MULTILINE), (fn.name, t)
                folded += 1
    assert folded <= named // 10  # regularizers have no temporaries at all


def _module(c: float) -> str:
    @sg.loss
    def cauchy(yhat, y, s=1.0):
        """Cauchy loss."""
        r = (yhat - y) / s
        return s**2 / 2 * sp.log(1 + r**2)

    @sg.loss
    def welsch(yhat, y):
        """Welsch loss."""
        return 1 - sp.exp(-c * (yhat - y) ** 2)

    @sg.activation
    def swish(x):
        return x / (1 + sp.exp(-x))

    return sg.generate_source([cauchy, welsch, swish], source="specs")


def test_one_constant_changes_only_its_kernels_lines():
    before, after = _module(0.5), _module(0.75)
    assert before != after
    tree = ast.parse(after)
    kernel = [
        (f.lineno, f.end_lineno)
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name.startswith("welsch")
    ]
    changed = []
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), False)
    for op, _, _, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            changed += range(j1 + 1, max(j2, j1 + 1) + 1)
    assert changed
    outside = [n for n in changed if not any(a <= n <= b for a, b in kernel)]
    assert not outside, [after.splitlines()[n - 1] for n in outside]


def _load(stem: str):
    path = generated_dir() / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"symgrad_test_layout_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plain_function(fn) -> str:
    """Return the docstring's plain-numpy form of emitted function ``fn`` as a function."""
    doc = fn.__doc__.split("As plain numpy", 1)[1].split("\n", 2)[2]
    lines = [line[8:] for line in doc.rstrip().splitlines()]
    signature = inspect.signature(fn).replace(return_annotation=inspect.Signature.empty)
    return f"def plain{signature}:\n" + "\n".join(f"    {line}" for line in lines) + "\n"


@pytest.mark.parametrize("module", [A, L, R], ids=["activations", "losses", "regularizers"])
def test_the_docstring_plain_form_computes_what_the_body_does(module, rng):
    """The plain form is the body read back (one tree): run as numpy, it gives the function's
    own results, for every emitted function."""
    generated = _load(module.__name__.rsplit(".", 1)[-1])
    for name in module.__all__:
        fn = getattr(generated, name)
        namespace = dict(vars(generated))  # np and the helpers (_erfc)
        exec(_plain_function(fn), namespace)  # noqa: S102 - text this project generated
        args = emitted_args(module, name, rng)
        with np.errstate(all="ignore"):
            want = fn(*args)
            got = namespace["plain"](*args)
        for w, g in zip(*(x if isinstance(x, tuple) else (x,) for x in (want, got)), strict=True):
            w, g = (
                np.asarray(w, np.float64),
                np.broadcast_to(np.asarray(g, np.float64), np.shape(w)),
            )
            scale = np.max(np.abs(w[np.isfinite(w)]), initial=0.0)
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13 * scale, err_msg=name)


def test_each_lowering_rule_prints_the_same_in_docstring_and_body():
    """Exact strings: the body's statements and the docstring's plain form of one function."""
    fn = L.binary_cross_entropy_hess
    doc = fn.__doc__
    assert "return (y / yhat / yhat - (y - 1) / (1 - yhat) / (1 - yhat)) * inv_n" in doc
    source = inspect.getsource(fn)
    body = source[source.index('"""\n', source.index('r"""') + 4) :]
    for statement in [
        "np.divide(y, yhat, out=out)",
        "np.divide(out, yhat, out=out)",
        "np.subtract(y, 1, out=b1)",
        "np.subtract(1, yhat, out=b2)",
        "np.divide(b1, b2, out=b1)",
        "np.subtract(out, b1, out=out)",
        "np.multiply(out, inv_n, out=out)",
    ]:
        assert statement in body
