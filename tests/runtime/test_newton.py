"""Check the Newton optimizers: scikit-learn's optima in a few steps, one-step least squares, damping."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogistic
from sklearn.linear_model import Ridge

import symgrad as sg
from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression, flatten
from symgrad.newton import NewtonState, damped_newton, fit_newton, newton, newton_cg

METHODS = ["newton", "damped", "cg"]


def classification_data(n=300, d=5, classes=2, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(d, classes)) + rng.normal(size=classes)
    y = np.array([rng.choice(classes, p=np.exp(z) / np.exp(z).sum()) for z in logits])
    return X, y


def regression_data(n=120, d=4, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + 1.3 + 0.3 * rng.normal(size=n)
    return X, y


def relative_error(got, ref):
    return np.linalg.norm(got - ref) / np.linalg.norm(ref)


# --------------------------------------------------------------------------- convex models


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("C", [0.05, 1.0, 1e4])
def test_logistic_regression_reaches_sklearn_in_few_steps(C, method):
    # sklearn minimises C * sum(logloss) + 1/2 ||w||^2: the l2 regularizer with lam = 1 / (C n)
    X, y = classification_data()
    ref = SkLogistic(C=C, solver="newton-cholesky", tol=1e-15, max_iter=1000).fit(X, y)
    model = LogisticRegression(regularizer=("l2", {"lam": 1 / (C * len(X))}))
    res = fit_newton(model, model.init(n_features=5), X, y, method=method, max_iter=15)
    assert res.stop_reason == "tol"
    assert res.n_steps <= 15
    got = flatten(res.params)
    assert relative_error(got, np.append(ref.coef_.ravel(), ref.intercept_)) < 1e-8
    # quadratic convergence: the gradient norm at least squares (roughly) near the end
    norms = res.history.grad_norm
    assert norms[-1] < 1e-10 and norms[-2] < 1e-4


@pytest.mark.parametrize("method", METHODS)
def test_softmax_regression_reaches_sklearn_multinomial(method):
    X, y = classification_data(classes=3, seed=5)
    C = 0.5
    ref = SkLogistic(C=C, solver="newton-cholesky", tol=1e-15, max_iter=1000).fit(X, y)
    model = SoftmaxRegression(3, regularizer=("l2", {"lam": 1 / (C * len(X))}))
    res = fit_newton(model, model.init(n_features=5), X, y, method=method, max_iter=15)
    assert res.stop_reason == "tol"
    W, b = res.params["W"], res.params["b"]
    assert relative_error(W, ref.coef_.T) < 1e-8
    # the objective is flat along a common shift of b; Newton must not wander along it
    assert abs(b.mean()) < 1e-8
    assert np.allclose(b, ref.intercept_ - ref.intercept_.mean(), atol=1e-8)


@pytest.mark.parametrize("intercept", [True, False])
def test_newton_solves_least_squares_in_one_step(intercept):
    X, y = regression_data()
    A = np.column_stack([X, np.ones(len(X))]) if intercept else X
    exact = np.linalg.solve(A.T @ A, A.T @ y)
    model = LinearRegression(fit_intercept=intercept)
    opt = newton(lambda p: model.hessian(p, X, y))
    res = sg.fit(model.objective, model.init(n_features=4), X, y, optimizer=opt, epochs=1,
                 progress=False)  # fmt: skip
    assert res.n_steps == 1
    assert relative_error(flatten(res.params), exact) < 1e-12


def test_newton_solves_ridge_in_one_step():
    X, y = regression_data()
    alpha = 15.0
    ref = Ridge(alpha=alpha, solver="cholesky").fit(X, y)
    model = LinearRegression(regularizer=("l2", {"lam": 2 * alpha / len(X)}))
    res = fit_newton(model, model.init(n_features=4), X, y, max_iter=1)
    assert relative_error(flatten(res.params), np.append(ref.coef_, ref.intercept_)) < 1e-12


def test_newton_cg_solves_least_squares_in_one_step():
    X, y = regression_data()
    A = np.column_stack([X, np.ones(len(X))])
    exact = np.linalg.solve(A.T @ A, A.T @ y)
    model = LinearRegression()
    opt = newton_cg(lambda p: model.hvp_operator(p, X, y), cg_tol=1e-14)
    params = model.init(n_features=4)
    state = opt.init(params)
    new, state = opt.update(model.objective(params, X, y)[1], state, params)
    assert relative_error(flatten(new), exact) < 1e-10
    assert state.count == 1 and 1 <= state.cg_iters <= 5  # CG is exact in <= 5 dimensions


def test_newton_works_with_the_runner_directly():
    X, y = classification_data()
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-2}))
    opt = newton(lambda p: model.hessian(p, X, y), objective=lambda p: model.objective(p, X, y))
    res = sg.fit(model.objective, model.init(n_features=5), X, y, optimizer=opt, epochs=20,
                 tol=1e-10, progress=False)  # fmt: skip
    assert res.stop_reason == "tol" and res.n_steps <= 10
    assert isinstance(res.opt_state, NewtonState)
    assert res.opt_state.step_size == 1.0  # full Newton steps near the optimum
    assert res.history.lr == [1.0] * len(res.history)


# --------------------------------------------------------------------------- non-convex MLP


def mlp_problem():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = np.sin(X @ np.array([1.0, -2.0, 0.5])) + 0.1 * rng.normal(size=60)
    model = MLP([3, 8, 1], activation="tanh", loss="mse")
    return model, model.init(0), X, y


def test_undamped_newton_can_go_uphill_on_a_non_convex_mlp():
    model, params, X, y = mlp_problem()
    assert np.linalg.eigvalsh(model.hessian(params, X, y)).min() < 0  # indefinite at init
    opt = newton(lambda p: model.hessian(p, X, y))
    state, losses = opt.init(params), [model.objective(params, X, y)[0]]
    for _ in range(4):
        params, state = opt.update(model.objective(params, X, y)[1], state, params)
        losses.append(model.objective(params, X, y)[0])
    assert np.any(np.diff(losses) > 0)  # why the damped variants exist


@pytest.mark.parametrize("method", METHODS)
def test_damped_and_line_searched_steps_keep_an_mlp_decreasing(method):
    model, params, X, y = mlp_problem()
    res = fit_newton(model, params, X, y, method=method, max_iter=25)
    # the history holds the loss at each point reached, after its step
    losses = np.array([model.objective(params, X, y)[0], *res.history.loss])
    assert losses[-1] == model.objective(res.params, X, y)[0] == res.objective
    assert np.all(np.isfinite(losses))
    assert np.all(np.diff(losses) <= 1e-12 * losses[:-1])
    # Levenberg-Marquardt and truncated CG make fast progress; plain Newton with a line
    # search only falls back to gradient steps where the Hessian is indefinite
    assert losses[-1] < (0.5 if method == "newton" else 0.05) * losses[0]
    assert all(np.all(np.isfinite(p)) for p in res.params.values())


def test_levenberg_marquardt_adapts_its_damping():
    model, params, X, y = mlp_problem()
    opt = damped_newton(
        lambda p: model.hessian(p, X, y), lambda p: model.objective(p, X, y), damping=0.0
    )
    state = opt.init(params)
    dampings = []
    for _ in range(6):
        params, state = opt.update(model.objective(params, X, y)[1], state, params)
        dampings.append(state.damping)
    # the indefinite Hessian at init forces lambda > 0 ...
    assert dampings[0] > 0
    # ... and a stationary point is left unchanged, never uphill
    stuck = {"W0": np.zeros((3, 8)), "b0": np.zeros(8), "W1": np.zeros((8, 1)), "b1": np.zeros(1)}
    X0, y0 = X, np.zeros(len(X))
    opt0 = damped_newton(lambda p: model.hessian(p, X0, y0), lambda p: model.objective(p, X0, y0))
    new, st = opt0.update(model.objective(stuck, X0, y0)[1], opt0.init(stuck), stuck)
    assert model.objective(new, X0, y0)[0] <= model.objective(stuck, X0, y0)[0]


# --------------------------------------------------------------------------- API


def test_updates_do_not_modify_their_inputs():
    X, y = classification_data()
    model = LogisticRegression(regularizer="l2")
    params = {"W": np.full(5, 0.1), "b": np.array(0.2)}
    before = {k: v.copy() for k, v in params.items()}
    grads = model.objective(params, X, y)[1]
    g_before = {k: v.copy() for k, v in grads.items()}
    for opt in (
        newton(lambda p: model.hessian(p, X, y), damping=0.1),
        damped_newton(lambda p: model.hessian(p, X, y), lambda p: model.objective(p, X, y)),
        newton_cg(
            lambda p: model.hvp_operator(p, X, y), objective=lambda p: model.objective(p, X, y)
        ),
    ):
        new, _ = opt.update(grads, opt.init(params), params)
        assert new is not params and list(new) == ["W", "b"]
        assert all(np.array_equal(params[k], before[k]) for k in params)
        assert all(np.array_equal(grads[k], g_before[k]) for k in grads)


def test_fixed_damping_shortens_the_newton_step():
    X, y = regression_data()
    model = LinearRegression()
    params = model.init(n_features=4)
    grads = model.objective(params, X, y)[1]
    steps = []
    for damping in (0.0, 1.0, 100.0):
        opt = newton(lambda p: model.hessian(p, X, y), damping=damping)
        new, _ = opt.update(grads, opt.init(params), params)
        steps.append(np.linalg.norm(flatten(new) - flatten(params)))
    assert steps[0] > steps[1] > steps[2] > 0


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda h: newton(h, lr=0), "lr must be > 0"),
        (lambda h: newton(h, damping=-1), "damping must be >= 0"),
        (lambda h: newton(h, shrink=1.5), "shrink"),
        (lambda h: damped_newton(h, h, factor=1.0), "factor"),
        (lambda h: newton_cg(h, cg_iters=0), "cg_iters"),
        (lambda h: newton_cg(h, cg_tol=float("nan")), "cg_tol"),
    ],
)
def test_bad_settings_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build(lambda p: None)


def test_fit_newton_rejects_bad_arguments():
    X, y = classification_data(n=20)
    model = LogisticRegression()
    with pytest.raises(ValueError, match="method"):
        fit_newton(model, model.init(n_features=5), X, y, method="bfgs")
    with pytest.raises(ValueError, match="full batches"):
        fit_newton(model, model.init(n_features=5), X, y, batch_size=4)
    opt = newton(lambda p: np.eye(3))
    with pytest.raises(ValueError, match=r"hessian returned shape \(3, 3\), expected \(6, 6\)"):
        params = model.init(n_features=5)
        opt.update(model.objective(params, X, y)[1], opt.init(params), params)
