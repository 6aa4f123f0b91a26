"""Time symgrad's scikit-learn estimators against scikit-learn's own on the same objective.

``python -m benchmarks.sklearn_fit [--samples N] [--features D] [--repeat R]`` fits, on one
synthetic problem per task, ``LogisticRegression(C)`` (binary and 5-class) against
``SymgradClassifier(alpha=1 / (C n))`` and ``Ridge(alpha=a)`` against
``SymgradRegressor(alpha=2 a / n)``, each with its default and a second solver, and prints
the best-of-R fit time, the ratio to scikit-learn's defaults (its default solver, tol and
max_iter: ``LogisticRegression(C)``, ``Ridge(alpha)``) measured in the same run, the iterations,
and the largest coefficient difference to scikit-learn's most exact solver (newton-cholesky at
tol=1e-10 for logistic, cholesky for ridge) relative to the largest coefficient. Every row is
labelled with the settings it runs, defaults included.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from symgrad.sklearn import SymgradClassifier, SymgradRegressor


def best_time(make, X, y, repeat: int):
    """Return (fitted estimator, best wall time over ``repeat`` fits)."""
    best, est = np.inf, None
    for _ in range(repeat):
        est = make()
        t0 = time.perf_counter()
        est.fit(X, y)
        best = min(best, time.perf_counter() - t0)
    return est, best


def rel(a, b) -> float:
    """Return max |a - b| / max |b|."""
    a, b = np.asarray(a).reshape(np.shape(b)), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def cases(n: int, d: int):
    """Yield (title, X, y, [(label, factory)...]): scikit-learn's defaults first (the time
    base), its most exact solver second (the coefficient reference)."""
    C, a = 1.0, 1.0
    for k in (2, 5):
        X, y = make_classification(n, d, n_informative=d // 2, n_classes=k, random_state=0)
        yield f"logistic, {k} classes", X, y, [
            ("sklearn default (lbfgs tol=1e-4 max_iter=100)", lambda: LogisticRegression(C=C)),
            ("sklearn newton-cholesky tol=1e-10", lambda: LogisticRegression(
                C=C, solver="newton-cholesky", tol=1e-10, max_iter=1000)),
            ("sklearn lbfgs tol=1e-10", lambda: LogisticRegression(C=C, tol=1e-10, max_iter=10_000)),
            ("symgrad default (newton tol=1e-10)", lambda: SymgradClassifier(alpha=1 / (C * n))),
            ("symgrad lbfgs tol=1e-10", lambda: SymgradClassifier(alpha=1 / (C * n), solver="lbfgs")),
        ]  # fmt: skip
    X, y = make_regression(n, d, noise=10.0, random_state=0)
    yield "ridge", X, y, [
        ("sklearn default (auto)", lambda: Ridge(alpha=a)),
        ("sklearn cholesky", lambda: Ridge(alpha=a, solver="cholesky")),
        ("symgrad default (newton tol=1e-10)", lambda: SymgradRegressor(alpha=2 * a / n)),
        ("symgrad lbfgs tol=1e-10", lambda: SymgradRegressor(alpha=2 * a / n, solver="lbfgs")),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args()
    print(
        f"n={args.samples} d={args.features} best of {args.repeat}, {args.threads} BLAS thread(s)"
    )
    with threadpool_limits(limits=args.threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for title, X, y, entries in cases(args.samples, args.features):
            print(f"\n{title}")
            fits = [(label, *best_time(make, X, y, args.repeat)) for label, make in entries]
            base_time, exact = fits[0][2], fits[1][1]  # scikit-learn's defaults; exact solver
            for label, est, t in fits:
                err = rel(est.coef_, exact.coef_)
                n_iter = getattr(est, "n_iter_", None)  # None for Ridge's direct solvers
                iters = -1 if n_iter is None else int(np.max(n_iter))
                print(
                    f"  {label:46s} {t * 1e3:9.1f} ms  x{t / base_time:5.2f}  "
                    f"iters {iters if iters >= 0 else '-':>5}  rel diff {err:.1e}"
                )


if __name__ == "__main__":
    main()
