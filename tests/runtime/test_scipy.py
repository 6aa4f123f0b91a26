"""symgrad.scipy: flat objectives for scipy.optimize reach scikit-learn's optima; derivatives
checked against finite differences."""

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

from scipy.optimize import approx_fprime, check_grad  # noqa: E402
from scipy.optimize import minimize as scipy_minimize  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogistic  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import symgrad.scipy as sgs  # noqa: E402
from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression  # noqa: E402


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Keep BLAS on one thread (small dense solves crawl when a busy machine wakes a pool)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _data(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("L-BFGS-B", {"gtol": 1e-10, "ftol": 64 * np.finfo(float).eps, "maxiter": 1000}),
        ("trust-ncg", {"gtol": 1e-10}),
        ("trust-exact", {"gtol": 1e-10}),
    ],
)
@pytest.mark.parametrize("C", [1.0, 0.05])
def test_minimize_reaches_logistic_regression_optimum(method, options, C):
    X, y = _data(load_breast_cancer)
    n = len(y)
    ref = SkLogistic(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    model = LogisticRegression(regularizer=("l2", {"lam": 1 / (C * n)}))
    params, res = sgs.minimize(model, X, y, method=method, options=options)
    assert np.linalg.norm(res.jac) < 1e-7, res.message
    assert _rel(params["W"], ref.coef_[0]) < 1e-6
    assert abs(params["b"] - ref.intercept_[0]) < 1e-6 * np.max(np.abs(ref.coef_))


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG"])
def test_minimize_reaches_multinomial_optimum(method):
    X, y = _data(load_iris)
    C, n = 1.0, len(y)
    ref = SkLogistic(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    model = SoftmaxRegression(3, regularizer=("l2", {"lam": 1 / (C * n)}))
    options = {"gtol": 1e-10}
    if method == "L-BFGS-B":
        options |= {"ftol": 64 * np.finfo(float).eps, "maxiter": 2000}
    params, res = sgs.minimize(model, X, y, method=method, options=options)
    assert _rel(params["W"].T, ref.coef_) < 1e-6
    assert _rel(model.predict_proba(params, X), ref.predict_proba(X)) < 1e-6


def test_objective_by_hand_matches_the_one_call():
    X, y = _data(load_breast_cancer)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    f = sgs.objective(model, X, y)
    res = scipy_minimize(f.fun, f.x0, jac=True, hessp=f.hessp, method="trust-ncg")
    params, res2 = sgs.minimize(model, X, y, method="trust-ncg")
    np.testing.assert_allclose(f.unravel(res.x)["W"], params["W"])
    assert f.x0.dtype == np.float64 and f.x0.shape == (X.shape[1] + 1,)
    assert set(f.unravel(res.x)) == {"W", "b"}


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(regularizer=("l2", {"lam": 1e-2})),
        SoftmaxRegression(3, regularizer=("elastic_net", {"lam": 1e-2})),
        MLP((4, 5, 3), activation="tanh", regularizer=("l2", {"lam": 1e-2})),
    ],
    ids=["logistic", "softmax", "mlp"],
)
def test_gradient_and_hessian_match_finite_differences(model):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)[::5]
    y = (y[::5] > 0).astype(int) if isinstance(model, LogisticRegression) else y[::5]
    f = sgs.objective(model, X, y, seed=3)
    x = f.x0 + np.random.default_rng(0).normal(0, 0.3, f.x0.size)
    assert check_grad(f.value, lambda v: f.fun(v)[1], x) < 1e-5 * max(
        1, np.linalg.norm(f.fun(x)[1])
    )
    H = f.hess(x)
    step = 1e-6
    H_fd = np.column_stack(
        [approx_fprime(x, lambda v, i=i: f.fun(v)[1][i], step) for i in range(x.size)]
    ).T
    np.testing.assert_allclose(H, H_fd, atol=1e-4)
    p = np.random.default_rng(1).normal(size=x.size)
    np.testing.assert_allclose(f.hessp(x, p), H @ p, rtol=1e-10, atol=1e-12)


def test_mlp_with_lbfgs_decreases_the_objective():
    X, y = _data(load_iris)
    model = MLP((4, 8, 3), activation="tanh", regularizer=("l2", {"lam": 1e-4}))
    f = sgs.objective(model, X, y, seed=0)
    params, res = sgs.minimize(model, X, y, method="L-BFGS-B", options={"maxiter": 200})
    assert res.fun < 0.2 * f.value(f.x0)
    assert np.mean(model.predict(params, X) == y) > 0.95


def test_sample_weight_equals_repeating_rows():
    X, y = _data(load_breast_cancer)
    w = np.random.default_rng(2).integers(0, 4, len(y))
    model = LinearRegression(loss="mse", regularizer=("l2", {"lam": 1e-3}))
    weighted = sgs.objective(model, X, y.astype(float), sample_weight=w)
    repeated = sgs.objective(model, X.repeat(w, axis=0), y.repeat(w).astype(float))
    x = np.random.default_rng(3).normal(size=weighted.x0.size)
    value_w, grad_w = weighted.fun(x)
    value_r, grad_r = repeated.fun(x)
    assert value_w == pytest.approx(value_r, rel=1e-12)
    np.testing.assert_allclose(grad_w, grad_r, rtol=1e-10)
    np.testing.assert_allclose(weighted.hess(x), repeated.hess(x), rtol=1e-10, atol=1e-14)


def test_derivative_free_method_gets_values_only():
    X, y = _data(load_breast_cancer)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-1}))
    params, res = sgs.minimize(model, X[:, :2], y, method="Nelder-Mead")
    _, ref = sgs.minimize(model, X[:, :2], y, method="trust-exact")
    assert res.fun == pytest.approx(ref.fun, rel=1e-6)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG"])
def test_a_non_finite_run_is_never_a_success(method):
    from symgrad.errors import ConvergenceWarning

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    y = X @ [1.0, 2.0] + 1e300  # the squared error overflows at the start
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="non-finite"):
        params, res = sgs.minimize(LinearRegression(), X, y, method=method)
    assert not res.success and "non-finite" in res.warnings[0]


def test_a_finite_run_raises_no_warning():
    import warnings

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, res = sgs.minimize(LogisticRegression(regularizer="l2"), X, y, method="L-BFGS-B")
    assert res.success and res.warnings == ()
