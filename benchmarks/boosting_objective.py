"""symgrad's boosting objective against a hand-written one and against XGBoost's built-in.

Two figures, measured in one run, interleaved, medians of the within-round ratios:

1. one objective call (gradient and Hessian of binary cross-entropy with logits, per sample) at
   ``--rows`` rows: ``boosting.xgboost("binary_cross_entropy_with_logits").grad_hess`` against
   the textbook ``p = 1 / (1 + exp(-z)); p - y, p * (1 - p)`` in plain numpy (and, for
   reference, the emitted ``_grad_hess`` alone in one call);
2. XGBoost training (``--rounds`` rounds, ``--cols`` features, one thread, hist) with that
   objective against the same training with ``objective="binary:logistic"`` (XGBoost's own),
   and with the textbook objective (what any Python objective costs: the floor).

Before timing it checks alignment: the adapter's numbers equal one call of the emitted kernel
exactly and the textbook's within 1e-12, and 2-round models from both objectives agree.

Run: python -m benchmarks.boosting_objective [--rows 1000000 --cols 20 --rounds 10 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from symgrad import boosting, losses


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
    kernel = losses.binary_cross_entropy_with_logits_grad_hess  # the emitted function alone

    # alignment first: the same numbers from all three, and the same model from both trainings
    g, h = objective.grad_hess(z, y)
    hg, hh = hand_objective(z, y)
    kg, kh = kernel(z, y, count=1)
    assert np.array_equal(g, kg) and np.array_equal(h, kh), "adapter != emitted kernel"
    assert np.allclose(g, hg, rtol=1e-12, atol=1e-15) and np.allclose(h, hh, rtol=1e-9)
    d = xgb.DMatrix(X, y)
    params = {"nthread": 1, "max_depth": 6, "eta": 0.3, "seed": 0, "tree_method": "hist"}
    start = objective.base_score(y)
    margins = [
        xgb.train(p, d, 2, **kw).predict(d, output_margin=True)
        for p, kw in (
            ({**params, "objective": "binary:logistic"}, {}),
            ({**params, "base_score": start}, {"obj": objective.objective}),
        )
    ]
    spread = np.abs(margins[0]).max()
    assert np.allclose(margins[1], margins[0], rtol=1e-5, atol=1e-5 * spread), "models differ"
    print(
        f"aligned: objective = emitted kernel exactly, = hand within 1e-12; 2-round models agree "
        f"(max margin difference {np.abs(margins[1] - margins[0]).max():.1e})"
    )

    calls = []
    for _ in range(args.repeats * 4):
        calls.append(
            (
                _clock(objective.grad_hess, z, y),
                _clock(hand_objective, z, y),
                _clock(lambda: kernel(z, y, count=1)),
            )
        )
    ms = [statistics.median(c[i] for c in calls) * 1e3 for i in range(3)]
    call_ratio = statistics.median(o / h for o, h, _ in calls)
    kernel_ratio = statistics.median(k / h for _, h, k in calls)
    print(
        f"objective call, {args.rows:,} rows (median of {len(calls)} interleaved rounds): "
        f"hand numpy {ms[1]:.2f} ms, symgrad {ms[0]:.2f} ms (ratio {call_ratio:.2f}); "
        f"emitted _grad_hess alone, one call {ms[2]:.2f} ms (ratio {kernel_ratio:.2f})"
    )

    def hand_xgboost(preds: np.ndarray, dtrain) -> tuple[np.ndarray, np.ndarray]:
        return hand_objective(preds, dtrain.get_label())

    rounds = []  # (symgrad, built-in, hand) per repeat; the hand objective: any Python
    for _ in range(args.repeats):  # objective's floor (XGBoost's round trip through numpy)
        builtin = _clock(xgb.train, {**params, "objective": "binary:logistic"}, d, args.rounds)
        ours = _clock(
            lambda: xgb.train(
                {**params, "base_score": start}, d, args.rounds, obj=objective.objective
            )
        )
        hand = _clock(
            lambda: xgb.train({**params, "base_score": start}, d, args.rounds, obj=hand_xgboost)
        )
        rounds.append((ours, builtin, hand))
    train_ratio = statistics.median(o / b for o, b, _ in rounds)
    hand_ratio = statistics.median(h / b for _, b, h in rounds)
    secs = [statistics.median(r[i] for r in rounds) for i in range(3)]
    print(
        f"xgboost training, {args.rows:,} x {args.cols}, {args.rounds} rounds, 1 thread "
        f"(median of {len(rounds)} interleaved triples): "
        f"binary:logistic (XGBoost's own) {secs[1]:.2f} s, "
        f"symgrad objective {secs[0]:.2f} s (ratio {train_ratio:.3f}), "
        f"hand objective {secs[2]:.2f} s (ratio {hand_ratio:.3f})"
    )
    print(
        f"goals (issue 19): call <= 1.00x hand: {'met' if call_ratio <= 1 else 'not met'} "
        f"({call_ratio:.2f}x); training <= 1.05x built-in: "
        f"{'met' if train_ratio <= 1.05 else 'not met'} ({train_ratio:.3f}x)"
    )


if __name__ == "__main__":
    main()
