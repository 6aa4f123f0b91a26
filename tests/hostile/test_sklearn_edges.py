"""Issue 19, items 7-9: the scikit-learn estimators read the loss's declared label domain
(``KERNELS``) to encode classes and to refuse targets it excludes, and an input scale that
overflows is named as such, not as a tolerance the user never set."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import symgrad as sg

sklearn_estimators = pytest.importorskip("symgrad.sklearn")
SymgradClassifier = sklearn_estimators.SymgradClassifier
SymgradRegressor = sklearn_estimators.SymgradRegressor


@sg.loss(domains={"y": "sign"})
def margin_hinge(yhat, y):
    """A user's hinge loss on -1/+1 labels."""
    return sp.Max(0, 1 - y * yhat)


@sg.loss(domains={"y": "open_unit"})
def open_unit_labels(yhat, y):
    """A loss whose labels may not be 0 or 1 exactly."""
    return (yhat - sp.log(y / (1 - y))) ** 2


def _accuracy(loss) -> float:
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), SymgradClassifier(loss=loss, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a kinked loss may stop at max_iter
        model.fit(Xtr, ytr)
    return model.score(Xte, yte)


def test_a_sign_domain_margin_loss_gets_minus_one_plus_one_targets():
    """Before: the classifier fed 0/1 to a loss declared on -1/+1 (accuracy 0.42-0.48)."""
    builtin, mine = _accuracy("hinge"), _accuracy(margin_hinge)
    assert builtin > 0.9 and mine > 0.9
    assert abs(mine - builtin) < 0.05
    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SymgradClassifier(loss=margin_hinge, max_iter=20)
        clf.fit(StandardScaler().fit_transform(X), y)
    assert clf._encoding_ == "signed" and not hasattr(clf, "predict_proba")


def test_a_class_encoding_outside_the_declared_domain_is_refused():
    X, y = load_breast_cancer(return_X_y=True)
    with pytest.raises(ValueError, match=r"SymgradClassifier: the classes encoded as targets for "
                       r"loss 'open_unit_labels' must be finite and in \(0, 1\)") as e:  # fmt: skip
        SymgradClassifier(loss=open_unit_labels).fit(X[:50], y[:50])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("loss", "shift", "message"),
    [
        (
            "binary_cross_entropy_with_logits",
            "bce",
            r"SymgradRegressor: y for loss 'binary_cross_entropy_with_logits' must be finite "
            r"and in \[0, 1\]; got -9.0 at index 0",
        ),
        ("poisson_nll", "negative", r"y for loss 'poisson_nll' must be finite and >= 0; got -1"),
        ("hinge", "bce", r"y for loss 'hinge' must be finite and -1 or \+1; got -9.0"),
    ],
)
def test_a_regressor_refuses_targets_outside_the_loss_domain(loss, shift, message):
    """Before: coefficients near 3e4 and a misleading ConvergenceWarning."""
    X, y = load_diabetes(return_X_y=True)
    target = np.linspace(-9, 9, len(y)) if shift == "bce" else y - y.min() - 1.0
    with pytest.raises(ValueError, match=message) as e:
        SymgradRegressor(loss=loss).fit(X, target)
    assert "\n" not in str(e.value)
    # inside the domain it fits
    inside = np.clip(target, 0, None) if shift == "negative" else (target > 0).astype(float)
    if loss == "hinge":
        inside = 2 * inside - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SymgradRegressor(loss=loss, max_iter=5).fit(X, inside)


@pytest.mark.parametrize("estimator", [SymgradRegressor, SymgradClassifier])
def test_huge_inputs_are_an_input_scale_error_not_a_tolerance(estimator):
    """Before: 'fit: tol must be None or a finite number >= 0, got inf' for X * 1e200."""
    load = load_diabetes if estimator is SymgradRegressor else load_breast_cancer
    X, y = load(return_X_y=True)
    for solver in ("auto", "lbfgs"):
        with pytest.raises(
            ValueError, match=r"X has entries up to \S+e\+(19|20)\d, beyond.*rescale X"
        ) as e:
            estimator(solver=solver).fit(X * 1e200, y)
        assert "tol" not in str(e.value) and "\n" not in str(e.value)
    # large but representable inputs fit, with a finite derived tolerance
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 50 iterations may not converge at this scale
        model = estimator(max_iter=50).fit(X * 1e100, y)
    assert np.all(np.isfinite(model.coef_))
