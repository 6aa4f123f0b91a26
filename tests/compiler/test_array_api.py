"""The array-api target: every built-in function on numpy, array-api-strict and torch (CPU)
arrays, in float64 and float32, equal to the numpy target's result to rounding."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import emitted_args, kernel_of

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from symgrad.resources import generated_dir

xps = pytest.importorskip("array_api_strict")
pytest.importorskip("array_api_compat")


def _load(stem: str):
    path = generated_dir() / f"{stem}_xp.py"
    spec = importlib.util.spec_from_file_location(f"symgrad_test_{stem}_xp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


XP = {A: _load("activations"), L: _load("losses"), R: _load("regularizers")}


def _torch():
    torch = pytest.importorskip("torch")
    return torch.asarray, lambda t: t.numpy()


BACKENDS = {
    "numpy": lambda: (np.asarray, np.asarray),
    "array-api-strict": lambda: (xps.asarray, np.asarray),
    "torch": _torch,
}
CASES = [(m, n) for m in (A, L, R) for n in sorted(m.__all__)]


def _parts(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("module", [A, L, R], ids=["activations", "losses", "regularizers"])
def test_every_function_matches_the_numpy_target(module, backend, dtype, rng):
    to_array, to_numpy = BACKENDS[backend]()
    xp_module = XP[module]
    assert sorted(xp_module.__all__) == sorted(module.__all__)  # the same functions
    eps = float(np.finfo(dtype).eps)
    for name in sorted(module.__all__):
        args = [a.astype(dtype) for a in emitted_args(module, name, rng)]
        with np.errstate(all="ignore"):
            want = _parts(getattr(module, name)(*args))
            got = _parts(getattr(xp_module, name)(*(to_array(a) for a in args)))
        _assert_close(name, want, got, to_numpy, eps)


def _assert_close(name, want, got, to_numpy, eps):
    """Assert each part of ``got`` equals the numpy target's ``want`` to 256 ulps relative or
    64 ulps of the largest value, with the same dtype and the same non-finite places."""
    for w, g in zip(want, got, strict=True):
        g = np.asarray(to_numpy(g))
        assert g.dtype == np.asarray(w).dtype or np.ndim(w) == 0, (name, g.dtype)
        w = np.asarray(w, dtype=np.float64)
        g = g.astype(np.float64)
        finite = np.isfinite(w)
        assert np.array_equal(finite, np.isfinite(g)), f"{name}: finite in one target only"
        scale = np.max(np.abs(w[finite]), initial=0.0)
        np.testing.assert_allclose(
            g[finite], w[finite], rtol=256 * eps, atol=64 * eps * scale, err_msg=name
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_weight_matches_the_numpy_target(backend, dtype, rng):
    """weight= (one per element, per row for a class-axis loss; some zero), alone and with
    count=, gives the numpy target's weighted mean and derivatives on every loss function."""
    to_array, to_numpy = BACKENDS[backend]()
    eps = float(np.finfo(dtype).eps)
    for name in sorted(L.__all__):
        args = [a.astype(dtype) for a in emitted_args(L, name, rng)]
        units = np.shape(getattr(L, f"{kernel_of(L, name)}_per_sample")(*args[:2]))
        weight = rng.uniform(0, 2, size=units) * (rng.uniform(size=units) > 0.2)
        weight = weight.astype(dtype)
        for extra in ({}, {} if name.endswith("_per_sample") else {"count": 37}):
            with np.errstate(all="ignore"):
                want = _parts(getattr(L, name)(*args, weight=weight, **extra))
                got = getattr(XP[L], name)(
                    *(to_array(a) for a in args), weight=to_array(weight), **extra
                )
            _assert_close(f"{name} {extra}", want, _parts(got), to_numpy, eps)


def test_weight_errors_name_the_problem(rng):
    yhat, y = xps.asarray(rng.normal(size=(4, 3))), xps.asarray(rng.normal(size=(4, 3)))
    with pytest.raises(
        ValueError, match="weight of shape \\(5,\\) does not broadcast to one per row"
    ):
        XP[L].softmax_cross_entropy(yhat, y, weight=xps.ones(5))
    with pytest.raises(TypeError, match="weight has dtype"):
        XP[L].huber_grad(yhat, y, weight=xps.asarray([[1 + 1j] * 3] * 4))
    assert float(XP[L].huber(yhat, y, weight=xps.ones((4, 3)))) == pytest.approx(
        float(XP[L].huber(yhat, y)), rel=1e-15
    )


def test_hyper_parameters_and_count(rng):
    yhat, y = rng.normal(size=(2, 50))
    got = XP[L].huber_value_and_grad(xps.asarray(yhat), xps.asarray(y), delta=0.3, count=200)
    want = L.huber_value_and_grad(yhat, y, delta=0.3, count=200)
    assert float(got[0]) == pytest.approx(want[0], rel=1e-14)
    np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-14)


def test_torch_func_traces_the_functions(rng):
    """The functions have no value-dependent Python control flow: torch.func traces them."""
    torch = pytest.importorskip("torch")
    from torch.func import grad

    x = torch.asarray(rng.normal(size=20))
    y = torch.asarray((rng.uniform(size=20) > 0.5) * 1.0)
    auto = grad(lambda v: XP[L].binary_cross_entropy_with_logits(v, y))(x)
    emitted = XP[L].binary_cross_entropy_with_logits_grad(x, y)
    np.testing.assert_allclose(auto.numpy(), emitted.numpy(), rtol=1e-12, atol=1e-15)


def test_compile_with_array_api_target(rng):
    import sympy as sp

    import symgrad as sg

    @sg.activation
    def cube_tanh(x):
        return sp.tanh(x) ** 3

    module = sg.compile(cube_tanh, target="array-api")
    v = rng.normal(size=7)
    got = module.cube_tanh_grad(xps.asarray(v))
    np.testing.assert_allclose(np.asarray(got), 3 * np.tanh(v) ** 2 / np.cosh(v) ** 2, rtol=1e-13)


@pytest.mark.parametrize("backend", ["array-api-strict", "torch"])
def test_models_and_fit_run_in_the_inputs_namespace(backend, rng):
    """Models and fit take array-api-strict arrays and torch tensors as they are, compute in
    that library and give its arrays back, equal to the numpy result to rounding (more in
    tests/runtime/test_xp_models.py)."""
    from symgrad.fit import fit
    from symgrad.models import LogisticRegression

    to_array, to_numpy = BACKENDS[backend]()
    model = LogisticRegression(regularizer="l2")
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] > 0) * 1.0
    params = model.init(n_features=3)
    loss, grads = model.objective(params, to_array(X), to_array(y))
    want_loss, want_grads = model.objective(params, X, y)
    kind = type(to_array(X))
    assert isinstance(loss, kind) and isinstance(grads["W"], kind)
    assert abs(float(loss) - want_loss) < 1e-15
    np.testing.assert_allclose(to_numpy(grads["W"]), want_grads["W"], rtol=1e-13)
    got = fit(model.objective, params, to_array(X), to_array(y), optimizer="adam", epochs=2)
    want = fit(model.objective, params, X, y, optimizer="adam", epochs=2)
    assert isinstance(got.params["W"], kind)
    np.testing.assert_allclose(to_numpy(got.params["W"]), want.params["W"], rtol=1e-12)


def test_generate_target_writes_each_lowering(tmp_path, rng):
    """``symgrad generate SPEC --backend array-api --target cupy`` writes SPEC_xp.py and
    SPEC_cupy.py, whose headers name the command that regenerates them; --check then passes."""
    import os
    import subprocess
    import sys

    from cli_specs import SPECS

    ROOT = Path(__file__).resolve().parents[2]

    (tmp_path / "mine.py").write_text(SPECS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "symgrad", "generate", "mine.py", "-o", "out"]
    lowerings = ["--backend", "array-api", "--target", "cupy"]  # --target is an alias
    done = subprocess.run([*args, *lowerings], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine_cupy.py", "mine_xp.py"]
    header = (tmp_path / "out" / "mine_xp.py").read_text().splitlines()
    assert header[0] == "# symgrad-generated: v1"
    assert header[2] == (
        "# Regenerate with: symgrad generate ../mine.py --backend array-api -o . "
        "(run in this file's folder)"
    )
    check = [*args, *lowerings, "--check"]
    assert subprocess.run(check, cwd=tmp_path, env=env, capture_output=True).returncode == 0
    spec = importlib.util.spec_from_file_location("mine_xp", tmp_path / "out" / "mine_xp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = rng.normal(size=5)
    swish = x / (1 + np.exp(-x))
    np.testing.assert_allclose(np.asarray(module.swish(xps.asarray(x))), swish, rtol=1e-14)
