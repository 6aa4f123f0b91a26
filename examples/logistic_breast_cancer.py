"""L2-regularized logistic regression on scikit-learn's breast-cancer data, checked against sklearn.

Mapping the regularization strength: scikit-learn's ``LogisticRegression(C=C)`` minimises
``C * sum(logloss) + 1/2 ||w||^2`` (intercept unpenalized), while symgrad's objective is the
mean loss plus the regularizer, ``mean(logloss) + lam/2 ||w||^2``. Dividing sklearn's
objective by ``C * n`` gives ours with::

    lam = 1 / (C * n)        # n = number of training samples

so both have the same minimiser. Features are standardized with the training split's mean and
standard deviation. We minimise by full-batch gradient descent with Nesterov momentum, the
step ``1 / L`` from a bound ``L`` on the Hessian (``X^T X / 4n + lam``), until the gradient
norm is below ``tol``. Run::

    python examples/logistic_breast_cancer.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import train_test_split

from symgrad import optim
from symgrad.fit import fit
from symgrad.models import LogisticRegression


def load(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return a stratified 75/25 split of the data, standardized with training statistics."""
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    return (X_tr - mean) / std, (X_te - mean) / std, y_tr, y_te


def main(C: float = 1.0, epochs: int = 20_000, tol: float = 1e-9, verbose: bool = True) -> dict:
    """Fit symgrad's and sklearn's L2 logistic regressions; return errors, accuracies, timing."""
    X_tr, X_te, y_tr, y_te = load()
    n, d = X_tr.shape
    lam = 1.0 / (C * n)

    start = time.perf_counter()
    ref = SkLogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(X_tr, y_tr)
    sk_seconds = time.perf_counter() - start

    model = LogisticRegression(regularizer=("l2", {"lam": lam}))
    with_bias = np.column_stack([X_tr, np.ones(n)])
    L = 0.25 * np.linalg.eigvalsh(with_bias.T @ with_bias / n).max() + lam
    start = time.perf_counter()
    result = fit(
        model.objective,
        model.init(n_features=d),
        X_tr,
        y_tr,
        optimizer=optim.sgd(lr=1.0 / L, momentum=0.95, nesterov=True),
        epochs=epochs,
        tol=tol,
        progress=False,
    )
    seconds = time.perf_counter() - start

    params = result.params
    ours = np.append(params["W"], params["b"])
    theirs = np.append(ref.coef_.ravel(), ref.intercept_)
    coef_error = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    sk_params = {"W": ref.coef_.ravel(), "b": np.array(ref.intercept_[0])}
    out = {
        "C": C,
        "lam": lam,
        "epochs": result.n_epochs,
        "stop_reason": result.stop_reason,
        "final_loss": model.objective(params, X_tr, y_tr)[0],
        "sklearn_loss": model.objective(sk_params, X_tr, y_tr)[0],
        "coef_rel_error": coef_error,
        "train_accuracy": float(np.mean(model.predict(params, X_tr) == y_tr)),
        "test_accuracy": float(np.mean(model.predict(params, X_te) == y_te)),
        "sklearn_test_accuracy": float(ref.score(X_te, y_te)),
        "seconds": seconds,
        "sklearn_seconds": sk_seconds,
    }
    if verbose:
        print(
            f"breast cancer: {n} training samples, {d} features, C = {C} -> lam = 1/(C n) = {lam:.3g}"
        )
        print(f"stopped after {out['epochs']} epochs ({result.message})")
        print(f"objective  symgrad {out['final_loss']:.12f}  sklearn {out['sklearn_loss']:.12f}")
        print(f"coefficient relative error vs sklearn: {coef_error:.2e}")
        print(
            f"accuracy  train {out['train_accuracy']:.4f}  test {out['test_accuracy']:.4f}  "
            f"(sklearn test {out['sklearn_test_accuracy']:.4f})"
        )
        print(f"wall time  symgrad {seconds:.3f} s  sklearn {sk_seconds:.3f} s")
    return out


if __name__ == "__main__":
    main()
