"""symgrad's boosting objective against a hand-written one and against XGBoost's built-in.

Two figures, measured in one run, interleaved, medians of the within-round ratios:

1. one objective call (gradient and Hessian of binary cross-entropy with logits, per sample) at
   ``--rows`` rows: ``boosting.xgboost("binary_cross_entropy_with_logits").grad_hess`` against
   the textbook ``p = 1 / (1 + exp(-z)); p - y, p * (1 - p)`` in plain numpy;
2. XGBoost training (``--rounds`` rounds, ``--cols`` features, one thread, hist) with that
   objective against the same training with ``objective="binary:logistic"`` (XGBoost's own).

Run: python -m benchmarks.boosting_objective [--rows 1000000 --cols 20 --rounds 10 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from symgrad import boosting


def hand_objective(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the textbook gradient and Hessian of the logistic loss (what users write)."""
    p = 1.0 / (1.0 + np.exp(-z))
    return p - y, p * (1.0 - p)


def _clock(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.cols))
    y = (X @ rng.normal(size=args.cols) + rng.logistic(size=args.rows) > 0).astype(np.float64)
    z = rng.normal(scale=3.0, size=args.rows)
    objective = boosting.xgboost("binary_cross_entropy_with_logits")
    g, h = objective.grad_hess(z, y)
    hg, hh = hand_objective(z, y)
    assert np.allclose(g, hg, rtol=1e-12, atol=1e-15) and np.allclose(h, hh, rtol=1e-9)

    calls = []
    for _ in range(args.repeats * 4):
        ours = _clock(objective.grad_hess, z, y)
        hand = _clock(hand_objective, z, y)
        calls.append((ours, hand))
    call_ratio = statistics.median(o / h for o, h in calls)
    print(
        f"objective call, {args.rows:,} rows: symgrad {statistics.median(o for o, _ in calls) * 1e3:.2f} ms, "
        f"hand numpy {statistics.median(h for _, h in calls) * 1e3:.2f} ms, "
        f"ratio {call_ratio:.2f} (median of {len(calls)} interleaved pairs)"
    )

    d = xgb.DMatrix(X, y)
    params = {"nthread": 1, "max_depth": 6, "eta": 0.3, "seed": 0, "tree_method": "hist"}
    start = objective.base_score(y)
    rounds = []
    for _ in range(args.repeats):
        builtin = _clock(xgb.train, {**params, "objective": "binary:logistic"}, d, args.rounds)
        ours = _clock(
            lambda: xgb.train(
                {**params, "base_score": start}, d, args.rounds, obj=objective.objective
            )
        )
        rounds.append((ours, builtin))
    train_ratio = statistics.median(o / b for o, b in rounds)
    print(
        f"xgboost training, {args.rows:,} x {args.cols}, {args.rounds} rounds, 1 thread: "
        f"symgrad objective {statistics.median(o for o, _ in rounds):.2f} s, "
        f"binary:logistic (XGBoost's own) {statistics.median(b for _, b in rounds):.2f} s, "
        f"ratio {train_ratio:.3f} (median of {len(rounds)} interleaved pairs)"
    )


if __name__ == "__main__":
    main()
