"""symgrad.sklearn: estimator checks in full, scikit-learn's optima, pipelines, pickling, weights."""

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import symgrad as sg  # noqa: E402
from symgrad.sklearn import SymgradClassifier, SymgradRegressor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Keep BLAS on one thread: the small dense solves here are 100x slower on a busy machine
    when every call wakes a pool of threads."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@sg.loss
def pseudo_huber(yhat, y, delta=1.0):
    """Pseudo-Huber: quadratic near zero, linear in the tails, smooth everywhere."""
    return delta**2 * (sp.sqrt(1 + ((yhat - y) / delta) ** 2) - 1)


@sg.loss
def focal(yhat, y, gamma=2.0):
    """Binary focal loss on a logit, targets 0/1."""
    p = 1 / (1 + sp.exp(-yhat))
    return -(y * (1 - p) ** gamma * sp.log(p) + (1 - y) * p**gamma * sp.log(1 - p))


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def scale_by_inv_n(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@parametrize_with_checks(
    [SymgradRegressor(), SymgradClassifier(), SymgradRegressor(loss=(pseudo_huber, {"delta": 2.0}))]
)
def test_check_estimator(estimator, check):
    check(estimator)


# --------------------------------------------------------------------- scikit-learn's optima


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "trust-ncg"])
def test_regressor_reaches_ridge_optimum(solver):
    X, y = load_diabetes(return_X_y=True)
    a, n = 0.5, len(y)
    ref = Ridge(alpha=a, solver="cholesky").fit(X, y)
    est = SymgradRegressor(alpha=2 * a / n, solver=solver, tol=1e-12).fit(X, y)
    assert _rel(est.coef_, ref.coef_) < 1e-6
    assert abs(est.intercept_ - ref.intercept_) / abs(ref.intercept_) < 1e-6
    assert est.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-7)


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "trust-ncg"])
@pytest.mark.parametrize("loader", [load_breast_cancer, load_iris])
def test_classifier_reaches_logistic_optimum(loader, solver):
    """Binary (breast cancer) and multinomial (iris) logistic regression, C = 1 and 0.1."""
    X, y = scale_by_inv_n(loader)
    n = len(y)
    for C in (1.0, 0.1):
        ref = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        ref.fit(X, y)
        est = SymgradClassifier(alpha=1 / (C * n), solver=solver, tol=1e-12).fit(X, y)
        assert _rel(est.coef_.reshape(ref.coef_.shape), ref.coef_) < 1e-6
        assert _rel(est.predict_proba(X), ref.predict_proba(X)) < 1e-6
        np.testing.assert_array_equal(est.predict(X), ref.predict(X))
        assert est.score(X, y) == ref.score(X, y)


def test_sample_weight_matches_logistic_regression_and_repeats():
    X, y = scale_by_inv_n(load_breast_cancer)
    w = np.random.default_rng(0).integers(0, 4, len(y))
    C = 0.5
    ref = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    ref.fit(X, y, sample_weight=w)
    est = SymgradClassifier(alpha=1 / (C * w.sum()), tol=1e-12).fit(X, y, sample_weight=w)
    assert _rel(est.coef_, ref.coef_) < 1e-6
    repeated = SymgradClassifier(alpha=1 / (C * w.sum()), tol=1e-12)
    repeated.fit(X.repeat(w, axis=0), y.repeat(w))
    assert _rel(est.decision_function(X), repeated.decision_function(X)) < 1e-9


def test_sample_weight_with_a_user_loss_equals_repeating_rows():
    X, y = load_diabetes(return_X_y=True)
    w = np.random.default_rng(1).integers(0, 3, len(y))
    est = SymgradRegressor(loss=(pseudo_huber, {"delta": 20.0}), tol=1e-12)
    a = clone(est).fit(X, y, sample_weight=w)
    b = clone(est).fit(X.repeat(w, axis=0), y.repeat(w))
    assert _rel(a.predict(X), b.predict(X)) < 1e-7
    unweighted = clone(est).fit(X, y)
    assert _rel(a.predict(X), unweighted.predict(X)) > 1e-3  # the weights did something


# --------------------------------------------------------------------- user specs, clone, pickle


def test_spec_is_value_equal_hashable_and_pickles():
    again = sg.loss(pseudo_huber_again, name="pseudo_huber")
    assert again is not pseudo_huber and again.origin != pseudo_huber.origin
    assert again == pseudo_huber and hash(again) == hash(pseudo_huber)
    loaded = pickle.loads(pickle.dumps(pseudo_huber))
    assert loaded == pseudo_huber and hash(loaded) == hash(pseudo_huber)
    assert len({pseudo_huber, again, loaded}) == 1
    other_default = sg.loss(pseudo_huber_wider, name="pseudo_huber")
    assert other_default != pseudo_huber and sg.loss(pseudo_huber_again) != pseudo_huber
    linked = sg.loss(pseudo_huber_again, name="pseudo_huber", link="identity")
    assert linked != pseudo_huber and hash(pickle.loads(pickle.dumps(linked))) == hash(linked)


def pseudo_huber_again(yhat, y, delta=1.0):
    """Pseudo-Huber: quadratic near zero, linear in the tails, smooth everywhere."""
    return delta**2 * (sp.sqrt(1 + ((yhat - y) / delta) ** 2) - 1)


def pseudo_huber_wider(yhat, y, delta=2.0):
    """Pseudo-Huber: quadratic near zero, linear in the tails, smooth everywhere."""
    return delta**2 * (sp.sqrt(1 + ((yhat - y) / delta) ** 2) - 1)


def test_clone_hits_the_compile_cache(monkeypatch):
    import symgrad.compiler.codegen as codegen

    compiled = []
    real = codegen.compile_source

    def counting(*specs, **options):
        compiled.append(specs)
        return real(*specs, **options)

    monkeypatch.setattr(codegen, "compile_source", counting)
    X, y = load_diabetes(return_X_y=True)

    @sg.loss
    def cauchy(yhat, y, c=50.0):
        """Cauchy (Lorentzian) loss."""
        return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)

    est = SymgradRegressor(loss=cauchy).fit(X, y)
    for copy in (clone(est), clone(clone(est)), pickle.loads(pickle.dumps(est))):
        copy.fit(X, y)
    assert len(compiled) == 1


def test_fitted_estimator_with_user_spec_pickles_into_a_fresh_process(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    est = SymgradRegressor(loss=(pseudo_huber, {"delta": 30.0}), alpha=1e-3).fit(X, y)
    path = tmp_path / "est.pkl"
    path.write_bytes(pickle.dumps(est))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np\n"
        f"est = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"np.save({str(tmp_path / 'pred.npy')!r}, est.predict(np.load({str(tmp_path / 'X.npy')!r})))\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), est.predict(X))


def test_pipeline_and_grid_search_with_two_processes():
    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SymgradRegressor())
    grid = {
        "symgradregressor__loss": [
            "mse",
            ("huber", {"delta": 40.0}),
            (pseudo_huber, {"delta": 30.0}),
        ],
    }
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and search.best_score_ > 0.4
    assert search.predict(X).shape == y.shape
    assert pickle.loads(pickle.dumps(search)).score(X, y) == search.score(X, y)

    Xc, yc = load_breast_cancer(return_X_y=True)
    labels = np.array(["malignant", "benign"])[yc]
    clf = make_pipeline(StandardScaler(), SymgradClassifier())
    grid = {"symgradclassifier__loss": ["log_loss", focal, "squared_hinge"]}
    search = GridSearchCV(clf, grid, cv=2, n_jobs=2).fit(Xc, labels)
    assert np.all(search.cv_results_["mean_test_score"] > 0.93)
    assert set(search.predict(Xc)) == {"malignant", "benign"}


# --------------------------------------------------------------------- attributes users expect


def test_classifier_attributes_probabilities_and_score():
    X, y = scale_by_inv_n(load_iris)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = SymgradClassifier().fit(X, names)
    assert list(est.classes_) == ["setosa", "versicolor", "virginica"]
    assert est.n_iter_ >= 1 and est.n_features_in_ == 4
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.classes_[P.argmax(axis=1)], est.predict(X))
    assert est.score(X, names) == np.mean(est.predict(X) == names) > 0.95
    assert not hasattr(SymgradClassifier(loss="hinge"), "predict_proba")
    hinge = SymgradClassifier(loss="hinge", max_iter=500).fit(X, names)
    assert hinge.score(X, names) > 0.9


def test_regressor_multioutput_and_r2():
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, -2 * y + 3])
    est = SymgradRegressor(alpha=0.0).fit(X, Y)  # unpenalised: the outputs are independent
    assert est.predict(X).shape == Y.shape
    single = SymgradRegressor(alpha=0.0).fit(X, y)
    np.testing.assert_allclose(est.predict(X)[:, 0], single.predict(X), rtol=1e-9)
    assert est.score(X, Y) == pytest.approx(single.score(X, y))  # R2 is scale-free per output


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_mlp_regressor_beats_the_mean(solver):
    X, y = scale_by_inv_n(load_diabetes)
    y = (y - y.mean()) / y.std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = SymgradRegressor(
            hidden_layer_sizes=(16,), activation="tanh", solver=solver, max_iter=100,
            learning_rate=1e-2, random_state=0,
        ).fit(X, y)  # fmt: skip
    assert est.n_iter_ >= 1 and len(est.coefs_) == 2
    assert est.score(X, y) > 0.4


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_classifier_with_user_activation():
    @sg.activation
    def softsign(x):
        """x / (1 + |x|)."""
        return x / (1 + sp.Abs(x))

    X, y = scale_by_inv_n(load_iris)
    est = SymgradClassifier(
        hidden_layer_sizes=(8,), activation=softsign, solver="lbfgs", max_iter=300, random_state=0
    ).fit(X, y)
    assert est.score(X, y) > 0.95
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (SymgradRegressor(solver="bfgs-ish"), "unknown solver"),
        (SymgradRegressor(loss="softmax_cross_entropy"), "class axis"),
        (SymgradClassifier(loss="binary_cross_entropy"), "probabilities"),
        (SymgradRegressor(alpha=-1.0), "alpha"),
        (SymgradRegressor(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
        (SymgradRegressor(loss="nope"), "unknown loss"),
    ],
)
def test_bad_settings_raise_one_clear_error(estimator, message):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=message):
        estimator.fit(X, y)


def test_user_regularizer_needs_lam():
    @sg.regularizer
    def quartic(w):
        return w**4

    X, y = scale_by_inv_n(load_diabetes)
    y = (y - y.mean()) / y.std()
    with pytest.raises(ValueError, match="lam"):
        SymgradRegressor(regularizer=quartic).fit(X, y)

    @sg.regularizer
    def scaled_quartic(w, lam=1.0):
        return lam * w**4

    est = SymgradRegressor(regularizer=scaled_quartic, alpha=1e-3, solver="lbfgs").fit(X, y)
    assert est.score(X, y) > 0.4


@sg.loss(domains={"y": "unit"})
def exp_loss(yhat, y):
    """AdaBoost's exponential loss: its value overflows at the margins of unscaled data."""
    return sp.exp(-(2 * y - 1) * yhat)


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "auto"])
def test_the_hand_written_focal_loss_fits_unscaled_data(solver):
    # unscaled breast_cancer: L-BFGS-B's first trial step once met a NaN gradient of the focal
    # loss as users write it and returned all-zero coefficients silently (accuracy 0.373); its
    # emitted gradient is now finite in the tails, so every solver fits
    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs: max_iter, as scikit-learn
        clf = SymgradClassifier(loss=focal, solver=solver).fit(X, y)
    assert clf.score(X, y) >= 0.9


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "auto"])
def test_a_failed_fit_warns_and_never_reads_as_converged(solver):
    # the exponential loss really is inf at L-BFGS-B's first trial point on unscaled data: the
    # line search cannot leave the start, and that is a warning naming why, never "converged"
    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings(record=True) as seen, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        clf = SymgradClassifier(loss=exp_loss, solver=solver).fit(X, y)
    said = [str(w.message) for w in seen if issubclass(w.category, ConvergenceWarning)]
    if clf.score(X, y) < 0.9:
        assert said and any("non-finite" in s or "start" in s for s in said), said
    if solver == "lbfgs":  # this one does fail: the warning names the causes
        assert "non-finite objective or gradient at a trial point" in said[0]
        assert "could not leave the start" in said[0]
