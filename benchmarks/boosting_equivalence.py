"""How closely symgrad's objectives reproduce XGBoost's and LightGBM's built-in ones.

Trains each pair (same data, weights, seeds, one thread, 10 rounds) and prints the largest
difference in raw scores (softmax scores centred per row). Run: python benchmarks/boosting_equivalence.py
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from symgrad import boosting

CASES = [
    ("binary_cross_entropy_with_logits", {}, "binary:logistic", "binary", load_breast_cancer),
    ("mse", {"scale": 0.5}, "reg:squarederror", "regression", load_diabetes),
    ("softmax_cross_entropy", {}, "multi:softprob", "multiclass", load_iris),
]


def centred(m: np.ndarray) -> np.ndarray:
    return m - m.mean(axis=1, keepdims=True) if m.ndim == 2 else m


def main() -> None:
    for loss, options, xgb_name, lgb_name, load in CASES:
        X, y = load(return_X_y=True)
        w = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
        extra = {"num_class": 3} if load is load_iris else {}
        d = xgb.DMatrix(X, y, weight=w)
        params = {"nthread": 1, "max_depth": 3, "eta": 0.3, "seed": 0, **extra}
        builtin = xgb.train({**params, "objective": xgb_name}, d, 10)
        xo = boosting.xgboost(loss, **options)
        ours = xgb.train({**params, "base_score": xo.base_score(y, w)}, d, 10, obj=xo.objective)
        a, b = (centred(m.predict(d, output_margin=True)) for m in (builtin, ours))
        print(f"xgboost  {xgb_name:18} max |raw score diff| {np.max(np.abs(a - b)):.1e}")
        params = {"verbose": -1, "num_threads": 1, "seed": 0, "deterministic": True, **extra}
        builtin = lgb.train({**params, "objective": lgb_name}, lgb.Dataset(X, y, weight=w), 10)
        lo = boosting.lightgbm(loss, **options)
        init = lo.init_score(y, w)
        train = lgb.Dataset(X, y, weight=w, init_score=init)
        ours = lo.fold_init_score(lgb.train({**params, "objective": lo.objective}, train, 10), init)
        a, b = (centred(m.predict(X, raw_score=True)) for m in (builtin, ours))
        print(f"lightgbm {lgb_name:18} max |raw score diff| {np.max(np.abs(a - b)):.1e}")


if __name__ == "__main__":
    main()
