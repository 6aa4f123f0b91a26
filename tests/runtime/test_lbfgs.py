"""symgrad.lbfgs: scipy's L-BFGS-B on a model's objective reaches scikit-learn's optimum."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression as SkLogistic
from sklearn.preprocessing import StandardScaler

from symgrad.errors import ConvergenceWarning
from symgrad.lbfgs import fit_lbfgs
from symgrad.models import LinearRegression, LogisticRegression, SoftmaxRegression


def test_logistic_reaches_sklearn_optimum():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(regularizer=("l2", {"lam": 1 / len(X)}))  # scikit-learn's C=1
    result = fit_lbfgs(model, model.init(n_features=X.shape[1]), X, y)
    sk = SkLogistic(tol=1e-10, max_iter=10_000).fit(X, y)
    assert result.stop_reason == "tol" and "CONVERGENCE" in result.message
    np.testing.assert_allclose(result.params["W"], sk.coef_[0], atol=1e-5)
    np.testing.assert_allclose(result.params["b"], sk.intercept_[0], atol=1e-5)
    ours = model.objective(result.params, X, y)[0]
    theirs = model.objective({"W": sk.coef_[0], "b": sk.intercept_[0]}, X, y)[0]
    assert ours <= theirs * (1 + 1e-6)
    hist = result.history.as_arrays()
    assert len(hist["loss"]) == result.n_steps == result.n_epochs > 5
    assert np.all(np.diff(hist["loss"]) <= 1e-12)  # L-BFGS-B's line search never goes up


def test_softmax_validation_history_and_callback_stop():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = SoftmaxRegression(3, regularizer=("l2", {"lam": 1e-2}))
    seen = []

    def stop_at_three(i, info):
        seen.append((i, info.stop_reason, len(info.history)))
        return i == 2

    result = fit_lbfgs(
        model, model.init(n_features=13), X[:150], y[:150], validation=(X[150:], y[150:]),
        callbacks=[stop_at_three],
    )  # fmt: skip
    assert result.stop_reason == "callback" and result.n_epochs == 3
    assert seen == [(0, "running", 1), (1, "running", 2), (2, "running", 3)]
    assert np.all(np.isfinite(result.history.val_loss))
    start = model.objective(model.init(n_features=13), X[:150], y[:150])[0]
    assert model.objective(result.params, X[:150], y[:150])[0] < start


def test_a_non_finite_loss_stops_with_the_last_finite_params():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    y = X @ [1.0, 2.0] + 1e300  # the squared error overflows
    model = LinearRegression()
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="not finite"):
        result = fit_lbfgs(model, model.init(n_features=2), X, y, max_iter=5)
    assert result.stop_reason == "non_finite" and "non-finite" in result.message
    assert not result.converged and result.warnings
    assert np.all(result.params["W"] == 0) and result.params["b"] == 0


def test_max_iter_bounds_the_run():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression()
    result = fit_lbfgs(model, model.init(n_features=X.shape[1]), X, y, max_iter=3)
    assert result.stop_reason == "epochs" and result.n_steps == 3
    with pytest.raises(ValueError, match="parameters expect 2"):
        fit_lbfgs(model, {"W": np.zeros(2), "b": 0.0}, X, y)
