"""Every emitted function in float32: dtype kept, finite and warning-free where float64 is finite,
and within a few float32 ulps of the same function evaluated in float64 on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import emitted_args

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R

EPS32 = float(np.finfo(np.float32).eps)
BIG32 = float(np.finfo(np.float32).max)
TINY32 = float(np.finfo(np.float32).tiny)
STRICT = dict(over="raise", divide="raise", invalid="raise")
#: float32 error allowed, in ulps of the result (elementwise) and of the largest result (normwise)
ULPS = 64


def _functions(module):
    return sorted(n for n in module.__all__)


def _parts(out):
    return out if isinstance(out, tuple) else (out,)


def _check(name: str, r32, r64) -> None:
    """Assert float32 ``r32`` is within ULPS ulps of ``r64`` elementwise, or of 1/16 of its largest
    magnitude (a sum of terms of both signs, e.g. Phi(x) + x phi(x), cancels in either dtype)."""
    r32, r64 = np.asarray(r32, dtype=np.float64), np.asarray(r64)
    representable = np.isfinite(r64) & (np.abs(r64) < BIG32 / 4)
    assert np.all(np.isfinite(r32[representable])), f"{name}: not finite in float32"
    scale = np.max(np.abs(r64[representable]), initial=0.0)
    err = np.abs(r32 - r64)[representable]
    tol = ULPS * EPS32 * (np.abs(r64[representable]) + scale / 16) + TINY32
    worst = np.argmax(err / tol) if err.size else 0
    assert np.all(err <= tol), (
        f"{name}: float32 off by {err[worst]:.3g} at result {r64[representable][worst]:.6g}"
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for m in (A, L, R) for n in _functions(m)],
    ids=lambda v: v if isinstance(v, str) else v.__name__.rsplit(".", 1)[-1],
)
def test_float32_follows_float64(module, name, rng):
    fn = getattr(module, name)
    args64 = [a.astype(np.float32).astype(np.float64) for a in emitted_args(module, name, rng)]
    args32 = [a.astype(np.float32) for a in args64]
    with np.errstate(**STRICT):
        out64 = _parts(fn(*args64))
    with np.errstate(over="ignore"):  # float64 results beyond float32's range overflow
        out32 = _parts(fn(*args32))
    for r32, r64 in zip(out32, out64, strict=True):
        if isinstance(r64, np.ndarray):
            assert r32.dtype == np.float32, f"{name} returned {r32.dtype} for float32 input"
            assert r32.shape == r64.shape
        _check(name, r32, r64)


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for m in (A, L, R) for n in _functions(m)],
    ids=lambda v: v if isinstance(v, str) else v.__name__.rsplit(".", 1)[-1],
)
def test_float32_warning_free(module, name, rng):
    """The stability tests in float32: no FP error and finite results wherever the float64
    results on the same inputs are finite and within float32's range."""
    fn = getattr(module, name)
    args = [a.astype(np.float32) for a in emitted_args(module, name, rng)]
    with np.errstate(**STRICT):
        want = _parts(fn(*(a.astype(np.float64) for a in args)))
    if any(np.max(np.abs(w)) > BIG32 / 4 for w in want):
        pytest.skip("the true value is beyond float32's range at these points")
    with np.errstate(**STRICT):
        for part in _parts(fn(*args)):
            assert np.all(np.isfinite(part)), name


@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_grad", "softplus", "silu_grad", "tanh_grad"])
def test_float32_tails_keep_relative_precision(name):
    """The stabilized forms keep full float32 relative precision deep in the tails."""
    x = np.linspace(-85.0, -20.0, 66)
    fn = getattr(A, name)
    r32 = fn(x.astype(np.float32)).astype(np.float64)
    r64 = fn(x)
    ok = np.abs(r64) > TINY32
    np.testing.assert_allclose(r32[ok], r64[ok], rtol=8 * EPS32 * 90)  # cond = |x| at most 85


@pytest.mark.parametrize(("dtype", "reach"), [(np.float32, 110.0), (np.float64, 760.0)])
def test_sigmoid_grad_cosh_form_against_mpmath(dtype, reach):
    """sigmoid' = 1/(2 + 2 cosh x) (three passes) is within 4 ulps of mpmath wherever the result
    is a normal number, 0 or a denormal beyond, and free of floating-point errors: cosh's
    overflow to inf is masked where it gives the limit 0 (|x| > 89 in float32, 710 in float64)."""
    import mpmath

    x = np.concatenate([np.linspace(-reach, reach, 1201), [-100.0, -1e-30, 0.0, 3e4, -1e30]])
    x = x.astype(dtype)
    with np.errstate(all="raise", under="ignore"):
        got = A.sigmoid_grad(x).astype(np.float64)
    with mpmath.workdps(40):
        want = np.array([float(1 / (2 + 2 * mpmath.cosh(mpmath.mpf(float(v))))) for v in x])
    tiny = float(np.finfo(dtype).tiny)
    normal = want >= tiny
    ulp = np.spacing(want[normal].astype(dtype)).astype(np.float64)
    assert np.all(np.abs(got[normal] - want[normal]) <= 4 * ulp)
    assert np.all((got[~normal] >= 0) & (got[~normal] <= tiny))
    assert got[x == -100][0] == pytest.approx(
        3.720075976020836e-44 if dtype == np.float64 else 0.0, rel=4e-16, abs=tiny
    )


@pytest.mark.parametrize("x", [0.1, 0.7, 1.5, 3.0, 5.0, 9.0, -0.3, -2.0, -6.0])
def test_float32_erf_helpers(x):
    """The erf/erfc helpers reach float32 precision in float32 arithmetic."""
    import mpmath

    xs = np.float32(x) * np.linspace(0.9, 1.1, 21, dtype=np.float32)
    from symgrad.compiler.special import ERF_SOURCE, ERFC_SOURCE

    helpers = {"np": np}
    exec(ERFC_SOURCE + "\n\n" + ERF_SOURCE, helpers)  # noqa: S102 - the emitted helpers
    erfc32, erf32 = helpers["_erfc"](xs), helpers["_erf"](xs)
    assert erfc32.dtype == np.float32 and erf32.dtype == np.float32
    for v, c, e in zip(xs.tolist(), erfc32.tolist(), erf32.tolist(), strict=True):
        assert c == pytest.approx(float(mpmath.erfc(v)), rel=8 * EPS32, abs=TINY32)
        assert e == pytest.approx(float(mpmath.erf(v)), rel=8 * EPS32, abs=TINY32)


def test_mixed_inputs_promote_like_numpy(rng):
    yhat = rng.normal(size=8).astype(np.float32)
    y = (rng.uniform(size=8) > 0.5).astype(np.float64)
    g = L.binary_cross_entropy_with_logits_grad(yhat, y)
    assert g.dtype == np.result_type(yhat, y) == np.float64
    assert L.binary_cross_entropy_with_logits_grad(yhat, y.astype(np.int64)).dtype == np.float64
    assert L.binary_cross_entropy_with_logits_grad(yhat, y.astype(np.float32)).dtype == np.float32
    assert A.sigmoid(np.arange(4)).dtype == np.float64  # integers give float64


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_dtype", [np.float32, np.float64])
def test_out_of_either_float_dtype(in_dtype, out_dtype, rng):
    yhat, y = (rng.normal(size=64).astype(in_dtype) for _ in range(2))
    out = np.empty(64, out_dtype)
    got = L.huber_grad(yhat, y, out=out)
    assert got is out
    ref = L.huber_grad(yhat.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=4 * EPS32, atol=4 * EPS32 / 64)
    value, got = L.binary_cross_entropy_with_logits_value_and_grad(yhat, y, out=out)
    assert got is out and got.dtype == out_dtype


def _models():
    from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression

    return [
        (LogisticRegression(regularizer="l2"), {"n_features": 6}, "binary"),
        (SoftmaxRegression(n_classes=3), {"n_features": 6}, "multiclass"),
        (LinearRegression(), {"n_features": 6}, "regression"),
        (MLP([6, 8, 3], activation="tanh", loss="softmax_cross_entropy"), {}, "multiclass"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_models_and_fit_keep_float32_params(case, rng):
    """init(dtype=np.float32) gives float32 params, gradients and fitted params; the loss
    matches the float64 model on the same (rounded) params to float32 precision."""
    from symgrad.fit import fit

    model, sizes, task = _models()[case]
    X = rng.normal(size=(64, 6))
    y = {"binary": X[:, 0] > 0, "multiclass": (X[:, 0] > 0) + (X[:, 1] > 0)}.get(task, X[:, 0])
    y = y.astype(np.float64) if task != "multiclass" else y.astype(np.int64)
    params = model.init(0, dtype=np.float32, **sizes)
    assert {p.dtype for p in params.values()} == {np.dtype(np.float32)}
    loss32, grads = model.objective(params, X, y)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    loss64, grads64 = model.objective(params64, X, y)
    assert {g.dtype for g in grads64.values()} == {np.dtype(np.float64)}
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    result = fit(model.objective, params, X, y, optimizer="adam", epochs=3, batch_size=16)
    assert {p.dtype for p in result.params.values()} == {np.dtype(np.float32)}
    assert model.objective(result.params, X, y)[0] < loss64


def test_init_rejects_other_dtypes():
    from symgrad.models import LogisticRegression

    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        LogisticRegression().init(n_features=2, dtype=np.int32)
