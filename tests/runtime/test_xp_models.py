"""Models, optimizers and fit on torch CPU tensors and array-api-strict arrays.

The Array API path (the ``generated/*_xp.py`` kernels, a user's spec compiled for
``target="array-api"``) must give the numpy path's objective, gradients, loss history and
fitted params to rounding, as that library's arrays in the params' float dtype; torch autograd
of a loss written in torch is the independent reference for one MLP.
"""

from __future__ import annotations

import subprocess
import sys

import array_api_strict as xps
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import optim
from symgrad.fit import fit
from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression


@sg.loss
def xp_cauchy(yhat, y, c=1.0):
    """Cauchy loss log(1 + (r / c)^2), a user's spec."""
    return sp.log(1 + ((yhat - y) / c) ** 2)


@sg.activation
def xp_square_plus(x, b=4.0):
    """(x + sqrt(x^2 + b)) / 2, a user's smooth relu."""
    return (x + sp.sqrt(x**2 + b)) / 2


def _torch():
    torch = pytest.importorskip("torch")
    return torch.asarray, torch.Tensor


BACKENDS = {"torch": _torch, "array-api-strict": lambda: (xps.asarray, type(xps.asarray(0.0)))}


def _numpy(a):
    return np.asarray(a.numpy() if hasattr(a, "numpy") else a)


def _cases(rng, n=40):
    """Return (name, model, X, y, init kwargs) for each model with a regularizer or a spec."""
    X = rng.normal(size=(n, 4))
    labels = rng.integers(0, 3, n)
    return [
        ("linear", LinearRegression(regularizer="l2"), X, rng.normal(size=n), {"n_features": 4}),
        (
            "linear-spec",
            LinearRegression(loss=(xp_cauchy, {"c": 0.7})),
            X,
            rng.normal(size=n),
            {"n_features": 4},
        ),  # fmt: skip
        (
            "logistic",
            LogisticRegression(regularizer="l1"),
            X,
            (X[:, 0] > 0) * 1.0,
            {"n_features": 4},
        ),  # fmt: skip
        ("softmax", SoftmaxRegression(3, regularizer="l2"), X, labels, {"n_features": 4}),
        ("mlp", MLP([4, 6, 3], activation="tanh", regularizer="l2"), X, labels, {}),
        (
            "mlp-spec",
            MLP([4, 5, 1], activation=xp_square_plus, loss="mse"),
            X,
            rng.normal(size=n),
            {},
        ),  # fmt: skip
        (
            "mlp-output",
            MLP([4, 5, 3], activation="gelu", loss="categorical_cross_entropy", output="softmax"),
            X,
            labels,
            {},
        ),  # fmt: skip
    ]


def _random_params(model, init, rng, dtype):
    params = model.init(0, dtype=dtype, **init)
    return {k: (v + 0.3 * rng.normal(size=v.shape)).astype(dtype) for k, v in params.items()}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_objective_equals_the_numpy_path(backend, dtype, rng):
    """Every model's loss and gradients in torch / array-api-strict equal numpy's, as that
    library's arrays in the params' dtype, keys in the params' order."""
    to_array, kind = BACKENDS[backend]()
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for name, model, X, y, init in _cases(rng):
        params = _random_params(model, init, rng, dtype)
        want_loss, want = model.objective(params, X, y)
        xparams = {k: to_array(v) for k, v in params.items()}
        loss, grads = model.objective(xparams, to_array(X), to_array(y))
        assert isinstance(loss, kind) and loss.shape == (), name
        assert float(loss) == pytest.approx(want_loss, rel=rtol), name
        assert list(grads) == list(params), name
        for key, g in grads.items():
            assert isinstance(g, kind), (name, key)
            assert _numpy(g).dtype == dtype, (name, key)
            scale = np.max(np.abs(want[key])) + 1e-30
            np.testing.assert_allclose(_numpy(g), want[key], rtol=rtol, atol=rtol * scale,
                                       err_msg=f"{name} {key}")  # fmt: skip
        z = model.decision_function(xparams, to_array(X))
        assert isinstance(z, kind)
        np.testing.assert_allclose(_numpy(z), model.decision_function(params, X), rtol=rtol,
                                   atol=rtol)  # fmt: skip


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_sample_weight_count_and_penalty(backend, rng):
    """``sample_weight=``, ``count=`` and ``penalty=False`` mean what they mean for numpy."""
    to_array, _ = BACKENDS[backend]()
    for name, model, X, y, init in _cases(rng)[2:5]:
        params = _random_params(model, init, rng, np.float64)
        w = rng.uniform(0, 2, size=len(X))
        xparams = {k: to_array(v) for k, v in params.items()}
        for kw in ({"sample_weight": w}, {"count": 100.0, "penalty": False}):
            want_loss, want = model.objective(params, X, y, **kw)
            xkw = {k: to_array(v) if k == "sample_weight" else v for k, v in kw.items()}
            loss, grads = model.objective(xparams, to_array(X), to_array(y), **xkw)
            assert float(loss) == pytest.approx(want_loss, rel=1e-12), (name, kw)
            for key in params:
                np.testing.assert_allclose(_numpy(grads[key]), want[key], rtol=1e-11,
                                           atol=1e-14)  # fmt: skip


def test_numpy_params_with_torch_data_and_init_like(rng):
    """numpy params (``init``) with torch X run in torch; ``init(like=X)`` gives X's library
    and float dtype, the same values as ``init``."""
    torch = pytest.importorskip("torch")
    model = MLP([4, 6, 3], activation="relu")
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    params = model.init(3)
    loss, grads = model.objective(params, torch.asarray(X), torch.asarray(y))
    assert isinstance(grads["W0"], torch.Tensor)
    assert float(loss) == pytest.approx(model.objective(params, X, y)[0], rel=1e-13)
    like = model.init(3, like=torch.asarray(X, dtype=torch.float32))
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in like.values())
    np.testing.assert_array_equal(like["W0"].numpy(), params["W0"].astype(np.float32))
    lin = SoftmaxRegression(3).init(n_features=4, like=xps.asarray(X))
    assert isinstance(lin["W"], type(xps.asarray(0.0))) and lin["W"].dtype == xps.float64


def test_torch_autograd_agrees_with_the_mlp_gradient(rng):
    """An independent reference: torch.autograd.grad of the same objective written in torch
    (tanh MLP, softmax cross-entropy, l2 penalty lam/2 ||W||^2) equals the model's gradient."""
    torch = pytest.importorskip("torch")
    lam = 0.05
    model = MLP([4, 7, 3], activation="tanh", regularizer=("l2", {"lam": lam}))
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    params = {k: torch.asarray(v, requires_grad=True)
              for k, v in _random_params(model, {}, rng, np.float64).items()}  # fmt: skip
    Xt, yt = torch.asarray(X), torch.asarray(y)
    hidden = torch.tanh(Xt @ params["W0"] + params["b0"])
    logits = hidden @ params["W1"] + params["b1"]
    penalty = lam / 2 * (params["W0"].square().sum() + params["W1"].square().sum())
    ref_loss = torch.nn.functional.cross_entropy(logits, yt) + penalty
    ref = torch.autograd.grad(ref_loss, list(params.values()))
    with torch.no_grad():
        loss, grads = model.objective(params, Xt, yt)
    assert float(loss) == pytest.approx(float(ref_loss.detach()), rel=1e-13)
    for key, r in zip(params, ref, strict=True):
        torch.testing.assert_close(grads[key], r, rtol=1e-12, atol=1e-14)


FIT_CASES = [
    ("logistic", lambda: LogisticRegression(regularizer="l2"), {"n_features": 5}),
    ("softmax", lambda: SoftmaxRegression(3, regularizer="l2"), {"n_features": 5}),
    ("mlp", lambda: MLP([5, 8, 3], activation="tanh", regularizer="l2"), {}),
]


def _fit_data(name, rng, n=150):
    X = rng.normal(size=(n, 5))
    if name == "logistic":
        return X, (X[:, 0] + 0.5 * rng.normal(size=n) > 0) * 1.0
    return X, np.argmax(X[:, :3] + 0.5 * rng.normal(size=(n, 3)), axis=1)


OPTIMIZERS = {
    "adam": lambda: optim.adam(1e-2),
    "adamw": lambda: optim.adamw(1e-2, weight_decay=0.1),
    "sgd-momentum": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "chain": lambda: optim.as_optimizer(
        optim.chain(optim.clip_by_global_norm(0.5), optim.adam(1e-2), optim.ema_params(0.9))
    ),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_matches_the_numpy_run(backend, case, rng):
    """fit with shuffled mini-batches gives numpy's loss history (Python floats) and params
    (the backend's arrays, float64) to 1e-10, for each optimizer, with the same seed."""
    to_array, kind = BACKENDS[backend]()
    name, make, init = case
    model = make()
    X, y = _fit_data(name, rng)
    params = model.init(0, **init)
    for opt_name, make_opt in OPTIMIZERS.items():
        kw = dict(optimizer=make_opt(), epochs=4, batch_size=32, seed=5)
        want = fit(model.objective, params, X, y, **kw)
        got = fit(model.objective, params, to_array(X), to_array(y), **kw)
        assert all(type(v) is float for v in got.history.loss)
        np.testing.assert_allclose(got.history.loss, want.history.loss, rtol=1e-10, atol=0)
        np.testing.assert_allclose(got.history.grad_norm, want.history.grad_norm, rtol=1e-9)
        for key in params:
            assert isinstance(got.params[key], kind), (opt_name, key)
            np.testing.assert_allclose(_numpy(got.params[key]), want.params[key], rtol=1e-10,
                                       atol=1e-12, err_msg=f"{opt_name} {key}")  # fmt: skip


def test_fit_keeps_float32_torch_params_float32(rng):
    """float32 tensors in, float32 tensors out, and the run tracks numpy's float32 run."""
    torch = pytest.importorskip("torch")
    model = MLP([5, 8, 3], activation="tanh")
    X, y = _fit_data("mlp", rng)
    Xt = torch.asarray(X, dtype=torch.float32)
    params = model.init(0, like=Xt)
    kw = dict(optimizer="adam", epochs=3, batch_size=50, seed=1)
    got = fit(model.objective, params, Xt, torch.asarray(y), **kw)
    want = fit(model.objective, model.init(0, dtype=np.float32), X.astype(np.float32), y, **kw)
    assert all(v.dtype == torch.float32 for v in got.params.values())
    np.testing.assert_allclose(got.history.loss, want.history.loss, rtol=1e-5)


def test_fit_refuses_newton_on_torch_in_one_line(rng):
    """The Newton optimizers solve with numpy linear algebra: one clear error, not a crash."""
    torch = pytest.importorskip("torch")
    from symgrad.newton import newton

    model = LogisticRegression()
    X, y = _fit_data("logistic", rng)
    opt = newton(lambda p: model.hessian(p, X, y))
    with pytest.raises(TypeError, match="optimizer 'newton' solves with numpy linear algebra"):
        fit(model.objective, model.init(n_features=5), torch.asarray(X), y, optimizer=opt,
            epochs=1)  # fmt: skip


def test_numpy_path_never_imports_array_api_compat():
    """numpy inputs never load the optional array_api_compat (the check is an isinstance)."""
    code = (
        "import sys, numpy as np\n"
        "from symgrad.models import MLP\n"
        "from symgrad.fit import fit\n"
        "m = MLP([3, 4, 2]); X = np.ones((8, 3)); y = np.arange(8) % 2\n"
        "fit(m.objective, m.init(0), X, y, optimizer='adam', epochs=2, batch_size=4)\n"
        "print('array_api_compat' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_predictions_stay_in_the_namespace(backend, rng):
    """predict and predict_proba give numpy's answers as the backend's arrays."""
    to_array, kind = BACKENDS[backend]()
    for name, model, X, _, init in _cases(rng):
        params = _random_params(model, init, rng, np.float64)
        xparams = {k: to_array(v) for k, v in params.items()}
        methods = ["predict"] + (["predict_proba"] if hasattr(model, "predict_proba") else [])
        for method in methods:
            if method == "predict_proba" and getattr(model, "task", "") == "regression":
                continue
            got = getattr(model, method)(xparams, to_array(X))
            assert isinstance(got, kind), (name, method)
            np.testing.assert_allclose(_numpy(got), getattr(model, method)(params, X),
                                       rtol=1e-12, atol=1e-15)  # fmt: skip
    binary = MLP([4, 3, 1], loss="binary_cross_entropy_with_logits")
    params = _random_params(binary, {}, rng, np.float64)
    X = rng.normal(size=(30, 4))
    got = binary.predict({k: to_array(v) for k, v in params.items()}, to_array(X))
    np.testing.assert_array_equal(_numpy(got), binary.predict(params, X))
