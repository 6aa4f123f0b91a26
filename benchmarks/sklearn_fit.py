"""Time symgrad's scikit-learn estimators against scikit-learn's own on the same objective.

``python -m benchmarks.sklearn_fit [--samples N] [--features D] [--repeat R]`` fits, on one
synthetic problem per task, ``LogisticRegression(C)`` (binary and 5-class) against
``SymgradClassifier(alpha=1 / (C n))`` and ``Ridge(alpha=a)`` against
``SymgradRegressor(alpha=2 a / n)``, each with its default and a second solver, and prints
the best-of-R fit time, the ratio to scikit-learn's default solver measured in the same run,
and the largest coefficient difference to scikit-learn's most exact solver (newton-cholesky
for logistic, cholesky for ridge) relative to the largest coefficient.
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
    """Yield (title, X, y, [(label, factory)...]): scikit-learn's default solver first, its
    exact one second."""
    C, a = 1.0, 1.0
    for k in (2, 5):
        X, y = make_classification(n, d, n_informative=d // 2, n_classes=k, random_state=0)
        yield f"logistic, {k} classes", X, y, [
            ("sklearn lbfgs", lambda: LogisticRegression(C=C, tol=1e-10, max_iter=10_000)),
            ("sklearn newton-cholesky", lambda: LogisticRegression(
                C=C, solver="newton-cholesky", tol=1e-10, max_iter=1000)),
            ("symgrad auto (newton)", lambda: SymgradClassifier(alpha=1 / (C * n))),
            ("symgrad lbfgs", lambda: SymgradClassifier(alpha=1 / (C * n), solver="lbfgs")),
        ]  # fmt: skip
    X, y = make_regression(n, d, noise=10.0, random_state=0)
    yield "ridge", X, y, [
        ("sklearn auto", lambda: Ridge(alpha=a)),
        ("sklearn cholesky", lambda: Ridge(alpha=a, solver="cholesky")),
        ("symgrad auto (newton)", lambda: SymgradRegressor(alpha=2 * a / n)),
        ("symgrad lbfgs", lambda: SymgradRegressor(alpha=2 * a / n, solver="lbfgs")),
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
            base_time = best_time(entries[0][1], X, y, args.repeat)[1]
            exact = best_time(entries[1][1], X, y, 1)[0]
            for label, make in entries:
                est, t = best_time(make, X, y, args.repeat)
                err = rel(est.coef_, exact.coef_)
                print(f"  {label:26s} {t * 1e3:9.1f} ms  x{t / base_time:5.2f}  rel diff {err:.1e}")


if __name__ == "__main__":
    main()
