"""Check the models: gradients against finite differences, optima against scikit-learn, stability."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from conftest import ACTIVATIONS
from fd import check_gradient
from sklearn.linear_model import LogisticRegression as SkLogistic
from sklearn.linear_model import Ridge

import symgrad as sg
import symgrad.activations as A
import symgrad.regularizers as R
from symgrad import optim
from symgrad.fit import fit
from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression

# The MLP must be checked for every built-in element-wise activation.
MLP_ACTIVATIONS = sorted(
    n for n in A.__all__ if not n.endswith(("_grad", "_hess", "_vjp")) and n != "softmax"
)
assert MLP_ACTIVATIONS == ACTIVATIONS


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy (Lorentzian) loss log(1 + (r / c)^2)."""
    return sp.log(1 + ((yhat - y) / c) ** 2)


@sg.activation
def square_plus(x, b=4.0):
    """(x + sqrt(x^2 + b)) / 2, a smooth relu."""
    return (x + sp.sqrt(x**2 + b)) / 2


@sg.regularizer
def quartic(w, lam=1e-2):
    """lam * sum(w^4)."""
    return lam * w**4


@sg.loss
def my_softmax_ce(yhat, y):
    """Cross-entropy of logits against target rows, written by hand."""
    return -sg.axis_sum(y * (yhat - sg.logsumexp(yhat)))


def assert_gradients(model, params, X, y):
    """Check every gradient leaf of ``model.objective`` against central differences."""
    loss, grads = model.objective(params, X, y)
    assert np.isfinite(loss)
    assert list(grads) == list(params)
    for key, value in params.items():
        assert np.shape(grads[key]) == np.shape(value), key

        def f(x, key=key):
            return model.objective({**params, key: x}, X, y)[0]

        check_gradient(f, grads[key], np.asarray(value, dtype=float))


def randomize(params, rng, scale=0.5):
    """Return params with every leaf (biases too) drawn at random, away from zero."""
    return {k: rng.normal(scale=scale, size=np.shape(v)) for k, v in params.items()}


@pytest.fixture
def data(rng):
    X = rng.normal(size=(17, 4))
    return X, rng.integers(0, 3, size=17)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("activation", MLP_ACTIVATIONS)
@pytest.mark.parametrize("regularizer", [None, ("l2", {"lam": 0.3})])
def test_mlp_gradients_for_every_activation(activation, regularizer, data, rng):
    X, y = data
    model = MLP([4, 6, 5, 3], activation=activation, regularizer=regularizer)
    params = randomize(model.init(1), rng)
    assert_gradients(model, params, X, y)


@pytest.mark.parametrize(
    "loss, output, k",
    [
        ("binary_cross_entropy_with_logits", None, 1),
        ("binary_cross_entropy_with_logits", None, 2),
        ("sigmoid_focal", None, 1),
        ("mse", None, 1),
        ("huber", None, 2),
        ("categorical_cross_entropy", "softmax", 3),
        ("binary_cross_entropy", "sigmoid", 1),
        ("mse", ("softplus", {"beta": 2.0}), 1),
        (("softmax_cross_entropy", {"label_smoothing": 0.1}), None, 3),
        # compose() renames the activation's alpha, which clashes with the loss's
        (("sigmoid_focal", {"alpha": 0.3}), ("leaky_relu", {"alpha": 0.2}), 1),
    ],
)
def test_mlp_gradients_for_losses_and_outputs(loss, output, k, rng):
    X = rng.normal(size=(13, 3))
    model = MLP([3, 5, k], activation="tanh", loss=loss, output=output)
    if model.task == "multiclass":
        y = rng.integers(0, k, size=13)
    elif model.task == "binary":
        y = rng.integers(0, 2, size=(13, k)).squeeze(-1) if k == 1 else rng.integers(0, 2, (13, k))
    else:
        y = rng.normal(size=13) if k == 1 else rng.normal(size=(13, k))
    assert_gradients(model, randomize(model.init(0), rng), X, y)


def test_output_hyper_parameters_reach_the_fused_kernel(rng):
    X, y = rng.normal(size=(9, 3)), rng.uniform(size=9)
    losses = []
    for alpha in (0.01, 0.5):
        model = MLP([3, 1], loss="sigmoid_focal", output=("leaky_relu", {"alpha": alpha}))
        params = {"W0": -np.ones((3, 1)), "b0": np.array([-5.0])}  # negative pre-activations
        losses.append(model.objective(params, X, y)[0])
    assert model._loss.hyper == {"leaky_relu_alpha": 0.5}
    assert losses[0] != losses[1]


@pytest.mark.parametrize(
    "regularizer",
    [None, "l2", ("l1", {"lam": 0.2}), ("elastic_net", {"lam": 0.3, "l1_ratio": 0.25})],
)
@pytest.mark.parametrize("loss", ["mse", ("huber", {"delta": 0.5}), "log_cosh"])
def test_linear_regression_gradients(loss, regularizer, rng):
    X = rng.normal(size=(15, 3))
    y = rng.normal(size=15)
    model = LinearRegression(loss=loss, regularizer=regularizer)
    assert_gradients(model, randomize(model.init(n_features=3), rng), X, y)
    Y = rng.normal(size=(15, 2))
    assert_gradients(model, randomize(model.init(n_features=3, n_outputs=2), rng), X, Y)


def test_linear_regression_without_intercept(rng):
    model = LinearRegression(fit_intercept=False, regularizer="l2")
    params = model.init(n_features=3)
    assert list(params) == ["W"]
    assert_gradients(model, randomize(params, rng), rng.normal(size=(9, 3)), rng.normal(size=9))


@pytest.mark.parametrize("regularizer", [None, ("l2", {"lam": 0.5}), "l1"])
def test_logistic_and_softmax_gradients(regularizer, data, rng):
    X, y = data
    logistic = LogisticRegression(regularizer=regularizer)
    assert_gradients(logistic, randomize(logistic.init(n_features=4), rng), X, y % 2)
    soft = SoftmaxRegression(3, regularizer=regularizer)
    assert_gradients(soft, randomize(soft.init(n_features=4), rng), X, y)


def test_user_specs_work_in_models(data, rng):
    X, labels = data
    y = rng.normal(size=len(X))
    lin = LinearRegression(loss=(cauchy, {"c": 0.7}), regularizer=(quartic, {"lam": 0.1}))
    assert_gradients(lin, randomize(lin.init(n_features=4), rng), X, y)
    net = MLP([4, 5, 3], activation=(square_plus, {"b": 2.0}), loss=my_softmax_ce)
    params = randomize(net.init(0), rng)
    assert_gradients(net, params, X, labels)
    builtin = MLP([4, 5, 3], activation=(square_plus, {"b": 2.0}))
    assert np.allclose(net.objective(params, X, labels)[0], builtin.objective(params, X, labels)[0])
    with_hyper = MLP(
        [4, 5, 1], activation="relu", loss=cauchy, output=("leaky_relu", {"alpha": 0.2})
    )
    assert_gradients(with_hyper, randomize(with_hyper.init(0), rng), X, y)


def test_integer_labels_equal_one_hot_rows(data, rng):
    X, y = data
    model = MLP([4, 5, 3])
    params = model.init(3)
    by_label = model.objective(params, X, y)
    by_row = model.objective(params, X, np.eye(3)[y])
    by_float = model.objective(params, X, y.astype(float))
    for other in (by_row, by_float):
        assert by_label[0] == other[0]
        for key in params:
            assert np.array_equal(by_label[1][key], other[1][key])


# --------------------------------------------------------------------------- regularizers


@pytest.mark.parametrize("regularizer", ["l1", "l2", "elastic_net"])
def test_regularizer_applies_to_weights_not_biases(regularizer, data, rng):
    X, y = data
    lam = {"lam": 0.7}
    plain, reg = MLP([4, 6, 3]), MLP([4, 6, 3], regularizer=(regularizer, lam))
    params = randomize(plain.init(0), rng)
    loss0, g0 = plain.objective(params, X, y)
    loss1, g1 = reg.objective(params, X, y)
    value, grad = getattr(R, regularizer), getattr(R, f"{regularizer}_grad")
    expected = sum(value(params[f"W{i}"], **lam) for i in range(2))
    assert loss1 == pytest.approx(loss0 + expected, rel=1e-12)
    for i in range(2):
        assert np.array_equal(g1[f"b{i}"], g0[f"b{i}"])
        assert np.allclose(
            g1[f"W{i}"], g0[f"W{i}"] + grad(params[f"W{i}"], **lam), rtol=1e-13, atol=0
        )
    for model in (LinearRegression, LogisticRegression):
        m0, m1 = model(), model(regularizer=(regularizer, lam))
        p = randomize(m0.init(n_features=4), rng)
        target = y % 2
        assert np.array_equal(
            m0.objective(p, X, target)[1]["b"], m1.objective(p, X, target)[1]["b"]
        )


# --------------------------------------------------------------------------- convergence


def regression_data(n=120, d=4, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + 1.3 + 0.3 * rng.normal(size=n)
    return X, y


def gd_lr(X, curvature=2.0, lam=0.0):
    """Return 1 / L for full-batch GD: L bounds the objective's Hessian (intercept included)."""
    A1 = np.column_stack([X, np.ones(len(X))])
    return 1.0 / (curvature * np.linalg.eigvalsh(A1.T @ A1 / len(X)).max() + lam)


def relative_error(params, coef, intercept):
    got = np.append(params["W"], params["b"])
    ref = np.append(coef, intercept)
    return np.linalg.norm(got - ref) / np.linalg.norm(ref)


def test_linear_regression_reaches_the_normal_equations():
    X, y = regression_data()
    A1 = np.column_stack([X, np.ones(len(X))])
    exact = np.linalg.solve(A1.T @ A1, A1.T @ y)
    model = LinearRegression()
    opt = optim.sgd(lr=gd_lr(X), momentum=0.9, nesterov=True)
    res = fit(model.objective, model.init(n_features=4), X, y, optimizer=opt, epochs=20_000,
              tol=1e-12, progress=False)  # fmt: skip
    assert res.stop_reason == "tol"
    assert relative_error(res.params, exact[:-1], exact[-1]) < 1e-6


def test_ridge_matches_sklearn():
    # sklearn Ridge minimises ||y - Xw - b||^2 + alpha ||w||^2 (b unpenalised). Divided by n:
    # mean((y - Xw - b)^2) + (alpha / n) ||w||^2 = mse + lam / 2 ||w||^2 with lam = 2 alpha / n.
    X, y = regression_data()
    alpha = 15.0
    lam = 2 * alpha / len(X)
    ref = Ridge(alpha=alpha, solver="cholesky").fit(X, y)
    model = LinearRegression(regularizer=("l2", {"lam": lam}))
    opt = optim.sgd(lr=gd_lr(X, lam=lam), momentum=0.9, nesterov=True)
    res = fit(model.objective, model.init(n_features=4), X, y, optimizer=opt, epochs=20_000,
              tol=1e-12, progress=False)  # fmt: skip
    assert res.stop_reason == "tol"
    assert relative_error(res.params, ref.coef_, ref.intercept_) < 1e-6


def classification_data(n=300, d=5, classes=2, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(d, classes)) + rng.normal(size=classes)
    y = np.array([rng.choice(classes, p=np.exp(z) / np.exp(z).sum()) for z in logits])
    return X, y


def test_logistic_regression_matches_sklearn():
    # sklearn minimises C * sum(logloss) + 1/2 ||w||^2 (intercept unpenalised); divided by C n:
    # mean(logloss) + 1 / (2 C n) ||w||^2, i.e. the l2 regularizer with lam = 1 / (C n).
    X, y = classification_data()
    C = 0.5
    lam = 1 / (C * len(X))
    ref = SkLogistic(C=C, tol=1e-12, max_iter=100_000).fit(X, y)
    model = LogisticRegression(regularizer=("l2", {"lam": lam}))
    opt = optim.sgd(lr=gd_lr(X, curvature=0.25, lam=lam), momentum=0.9, nesterov=True)
    res = fit(model.objective, model.init(n_features=5), X, y, optimizer=opt, epochs=20_000,
              tol=1e-10, progress=False)  # fmt: skip
    assert res.stop_reason == "tol"
    assert relative_error(res.params, ref.coef_.ravel(), ref.intercept_) < 1e-4
    assert np.array_equal(model.predict(res.params, X), ref.predict(X))
    assert np.allclose(model.predict_proba(res.params, X), ref.predict_proba(X)[:, 1], atol=1e-6)


def test_softmax_regression_matches_sklearn_multinomial():
    # Same mapping as the binary case; intercepts are only defined up to a common shift.
    X, y = classification_data(classes=3, seed=5)
    C = 0.5
    lam = 1 / (C * len(X))
    ref = SkLogistic(C=C, tol=1e-12, max_iter=100_000).fit(X, y)
    model = SoftmaxRegression(3, regularizer=("l2", {"lam": lam}))
    opt = optim.sgd(lr=gd_lr(X, curvature=0.5, lam=lam), momentum=0.9, nesterov=True)
    res = fit(model.objective, model.init(n_features=5), X, y, optimizer=opt, epochs=20_000,
              tol=1e-10, progress=False)  # fmt: skip
    assert res.stop_reason == "tol"
    W, b = res.params["W"], res.params["b"]
    assert np.linalg.norm(W - ref.coef_.T) / np.linalg.norm(ref.coef_) < 1e-4
    assert np.allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-4)
    assert np.allclose(model.predict_proba(res.params, X), ref.predict_proba(X), atol=1e-6)


# --------------------------------------------------------------------------- stability


def test_classifiers_are_stable_at_huge_logits():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([0, 1, 1, 0])  # every sample confidently wrong half the time
    logistic = LogisticRegression()
    p_log = {"W": np.array([1000.0, -1000.0]), "b": np.array(0.0)}
    soft = SoftmaxRegression(3)
    p_soft = {"W": np.array([[1000.0, -1000.0, 0.0], [-1000.0, 0.0, 1000.0]]), "b": np.zeros(3)}
    net = MLP([2, 3], activation="relu")
    p_net = {"W0": p_soft["W"], "b0": np.zeros(3)}
    cases = [(logistic, p_log, y), (soft, p_soft, np.array([0, 1, 2, 2])), (net, p_net, y)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            for model, params, target in cases:
                loss, grads = model.objective(params, X, target)
                assert np.isfinite(loss) and loss > 100
                assert all(np.all(np.isfinite(g)) for g in grads.values())
                proba = model.predict_proba(params, X)
                assert np.all(np.isfinite(proba)) and np.all((proba >= 0) & (proba <= 1))
    # gradient at the logits is p - y: at +-1000 each sample contributes exactly -1, 0 or +1
    _, grads = logistic.objective(p_log, X, y)
    assert np.allclose(grads["b"] * len(X), np.sum(A.sigmoid(X @ p_log["W"]) - y))


# --------------------------------------------------------------------------- init and API


def test_mlp_init_is_seeded_and_scaled():
    model = MLP([200, 300, 10], activation="relu")
    a, b = model.init(4), model.init(4)
    assert list(a) == ["W0", "b0", "W1", "b1"]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W0"], model.init(5)["W0"])
    assert a["W0"].std() == pytest.approx(np.sqrt(2 / 200), rel=0.05)  # He
    assert np.abs(a["W1"]).max() <= np.sqrt(6 / 310)  # Glorot on the output layer
    assert not a["b0"].any() and not a["b1"].any()
    assert MLP([200, 300, 10], activation="tanh").init(0)["W0"].std() == pytest.approx(
        np.sqrt(2 / 500), rel=0.05
    )


def test_predictions(data, rng):
    X, y = data
    soft = SoftmaxRegression(3)
    params = randomize(soft.init(n_features=4), rng)
    assert np.array_equal(soft.predict(params, X), soft.predict_proba(params, X).argmax(1))
    assert np.allclose(soft.predict_proba(params, X).sum(1), 1)
    lin = LinearRegression()
    p = randomize(lin.init(n_features=4), rng)
    assert np.allclose(lin.predict(p, X), X @ p["W"] + p["b"])
    reg = MLP([4, 3, 1], loss="mse")
    assert reg.predict(reg.init(0), X).shape == (len(X),)
    binary = MLP([4, 3, 1], loss="binary_cross_entropy_with_logits")
    assert set(binary.predict(binary.init(0), X)) <= {0, 1}
    with pytest.raises(ValueError, match="classification"):
        reg.predict_proba(reg.init(0), X)


@pytest.mark.parametrize(
    "build, match",
    [
        (
            lambda: MLP([4, 3], activation="rleu"),
            "unknown activation 'rleu'; choose one of: .*relu",
        ),
        (lambda: MLP([4, 3], loss="nope"), "unknown loss 'nope'; choose one of: .*mse"),
        (lambda: LinearRegression(regularizer="l3"), "choose one of: elastic_net, l1, l2"),
        (lambda: LinearRegression(regularizer=("l2", {"alpha": 1})), "no hyper-parameter 'alpha'"),
        (lambda: LinearRegression(regularizer=("l2", 1)), "pair"),
        (lambda: MLP([4, 3], activation="softmax"), "element-wise"),
        (lambda: LinearRegression(loss="softmax_cross_entropy"), "element-wise loss"),
        (lambda: MLP([4, 3], loss=square_plus), "expected a loss spec"),
        (lambda: MLP([4]), "sizes"),
        (lambda: MLP([4, 0, 2]), "sizes"),
        (lambda: SoftmaxRegression(1), "n_classes"),
        (lambda: LinearRegression().init(n_features=0), "n_features"),
    ],
)
def test_bad_configuration_raises_clear_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_inputs_raise_clear_errors(data):
    X, y = data
    net = MLP([4, 5, 3])
    params = net.init(0)
    with pytest.raises(ValueError, match="3 features but the parameters expect 4"):
        net.objective(params, X[:, :3], y)
    with pytest.raises(ValueError, match="2-D"):
        net.objective(params, X[0], y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        net.objective(params, X, y + 1)
    with pytest.raises(ValueError, match="y: class labels must be whole numbers"):
        net.objective(params, X, y + 0.5)
    with pytest.raises(ValueError, match=r"params\['W1'\] has shape"):
        net.objective({**params, "W1": np.zeros((5, 2))}, X, y)
    with pytest.raises(ValueError, match="params has no 'b0'"):
        net.objective({k: v for k, v in params.items() if k != "b0"}, X, y)
    lin = LinearRegression()
    with pytest.raises(ValueError, match=r"y has shape \(17, 1\), expected \(17,\)"):
        lin.objective(lin.init(n_features=4), X, y[:, None].astype(float))
    logistic = LogisticRegression()
    with pytest.raises(ValueError, match="0/1"):
        logistic.objective(logistic.init(n_features=4), X, y)
