"""Kinked losses through XGBoost by default: symgrad's l1 / pinball objectives against XGBoost's
own ``reg:absoluteerror`` / ``reg:quantileerror`` (30 rounds of XGBoost's defaults, one thread).

Held-out pinball loss (half the MAE for l1) of the built-in, of symgrad's default objective (the
Hessian constant derived from the target's spread) and of the old default (constant 1), on the
diabetes target and on a heavy-tailed synthetic one. Run: ``python benchmarks/boosting_kinked.py``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

#: (loss, hyper-parameters, XGBoost's built-in objective, quantile)
KINKED = [
    ("l1", {}, {"objective": "reg:absoluteerror"}, 0.5),
    ("pinball", {"tau": 0.8}, {"objective": "reg:quantileerror", "quantile_alpha": 0.8}, 0.8),
]
DATASETS = ("diabetes", "heavy-tailed")


def heavy_tailed(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return X (n, 8) and a target of std about 240 with Student-t (1.5 dof) noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    signal = 150 * X[:, 0] + 80 * np.sin(2 * X[:, 1]) + 60 * X[:, 2] * X[:, 3]
    return X, signal + 20 * rng.standard_t(1.5, n)


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (X, y) of ``name`` (one of ``DATASETS``)."""
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        return load_diabetes(return_X_y=True)
    return heavy_tailed()


def held_out(loss: str, hyper: dict, builtin: dict, q: float, data: str, **options: Any):
    """Return the held-out pinball loss (q) of symgrad's objective (with ``options``) and of
    XGBoost's ``builtin``, after 30 rounds on two thirds of ``data``."""
    import xgboost as xgb

    from symgrad import boosting
    from symgrad.errors import HessianWarning

    X, y = dataset(data)
    order = np.random.default_rng(1).permutation(len(y))
    tr, te = order[: 2 * len(y) // 3], order[2 * len(y) // 3 :]
    dtr, dte = xgb.DMatrix(X[tr], y[tr]), xgb.DMatrix(X[te])
    params = {"nthread": 1, "seed": 0}
    reference = xgb.train({**params, **builtin}, dtr, 30)
    obj = boosting.xgboost(loss, hyper=hyper, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HessianWarning)
        start = obj.base_score(y[tr])
        ours = xgb.train({**params, "base_score": start}, dtr, 30, obj=obj.objective)

    def pinball(pred: np.ndarray) -> float:
        r = y[te] - pred
        return float(np.mean(np.maximum(q * r, (q - 1) * r)))

    return pinball(ours.predict(dte, output_margin=True)), pinball(reference.predict(dte))


def main() -> None:
    print(f"{'data':13} {'loss':8} {'built-in':>9} {'default':>16} {'constant=1':>16}")
    for data in DATASETS:
        for loss, hyper, builtin, q in KINKED:
            mine, theirs = held_out(loss, hyper, builtin, q, data)
            old, _ = held_out(loss, hyper, builtin, q, data, constant=1.0)
            print(
                f"{data:13} {loss:8} {theirs:9.2f} {mine:9.2f} ({mine / theirs:.2f}x) "
                f"{old:9.2f} ({old / theirs:.2f}x)"
            )


if __name__ == "__main__":
    main()
