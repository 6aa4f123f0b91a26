"""symgrad's boosting objective against a hand-written one and against XGBoost's built-in.

Every figure comes from one run, interleaved (each round starts at the next case, so none
always runs first), as medians of the within-round ratios:

1. one objective call (gradient and Hessian of binary cross-entropy with logits, per sample) at
   ``--rows`` rows: ``boosting.xgboost("binary_cross_entropy_with_logits").grad_hess`` with
   ``threads=1`` and at its default (every core) against the textbook
   ``p = 1 / (1 + exp(-z)); p - y, p * (1 - p)`` in plain numpy (one thread: numpy's ufuncs
   have no other), and, for reference, the emitted ``_grad_hess`` alone in one call and
   symgrad at ``threads=1`` when the caller keeps every result (new result arrays each call:
   the adapter writes its previous results again only when nothing holds them, as in
   training, where XGBoost copies them first; ``symgrad.recycle``);
2. XGBoost training (``--rounds`` rounds, ``--cols`` features, hist) in two views, each against
   ``objective="binary:logistic"`` (XGBoost's own) in the same view, and with the textbook
   objective too (what any Python objective costs: the floor):
   - defaults: XGBoost's ``nthread`` unset (every core), symgrad at its default ``threads``;
   - like for like: ``nthread=1`` and ``threads=1``.

Before timing it checks alignment: the adapter's numbers (one thread and every core) equal one
call of the emitted kernel exactly and the textbook's within 1e-12, and 2-round models from
both objectives agree.

Run: python -m benchmarks.boosting_objective [--rows 1000000 --cols 20 --rounds 10 --repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial

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


def _rotated(items: list, i: int) -> list:
    """Return ``items`` starting at the i-th (round i's order: no case always runs first)."""
    i %= len(items)
    return items[i:] + items[:i]


def _label(threads: int | None) -> str:
    """Name symgrad's objective at ``threads``."""
    if threads is None:
        return f"symgrad at its default threads (all {os.cpu_count()} cores)"
    return f"symgrad threads={threads}"


#: The two training views: (name, XGBoost's extra parameters, symgrad's threads option).
VIEWS = (
    ("XGBoost's defaults (all cores)", {}, None),
    ("nthread=1", {"nthread": 1}, 1),
)


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
    loss = "binary_cross_entropy_with_logits"
    objectives = {threads: boosting.xgboost(loss, threads=threads) for _, _, threads in VIEWS}
    kernel = losses.binary_cross_entropy_with_logits_grad_hess  # the emitted function alone

    # alignment first: the same numbers from all three, and the same model from both trainings
    hg, hh = hand_objective(z, y)
    kg, kh = kernel(z, y, count=1)
    for objective in objectives.values():
        g, h = objective.grad_hess(z, y)
        assert np.array_equal(g, kg) and np.array_equal(h, kh), "adapter != emitted kernel"
    assert np.allclose(kg, hg, rtol=1e-12, atol=1e-15) and np.allclose(
        kh, hh, rtol=1e-9, atol=1e-15
    )
    d = xgb.DMatrix(X, y)
    params = {"max_depth": 6, "eta": 0.3, "seed": 0, "tree_method": "hist"}
    start = objectives[None].base_score(y)
    margins = [
        xgb.train(p, d, 2, **kw).predict(d, output_margin=True)
        for p, kw in (
            ({**params, "objective": "binary:logistic"}, {}),
            ({**params, "base_score": start}, {"obj": objectives[None].objective}),
        )
    ]
    spread = np.abs(margins[0]).max()
    assert np.allclose(margins[1], margins[0], rtol=1e-5, atol=1e-5 * spread), "models differ"
    print(
        f"aligned: objective = emitted kernel exactly (threads=1 and every core), = hand within "
        f"1e-12; 2-round models agree "
        f"(max margin difference {np.abs(margins[1] - margins[0]).max():.1e})"
    )
    call_ratios = _time_calls(args, objectives, kernel, z, y)
    train_ratios = _time_training(args, xgb, d, params, start, objectives)
    cores = os.cpu_count()
    print(f"goals (issue 19), {cores} cores, every ratio from this run:")
    for name, _, threads in VIEWS:
        call, train = call_ratios[threads], train_ratios[name]
        print(
            f"  {name}: call <= 1.00x hand: {'met' if call <= 1 else 'not met'} ({call:.2f}x, "
            f"{_label(threads)}); training <= 1.05x binary:logistic at {name}: "
            f"{'met' if train <= 1.05 else 'not met'} ({train:.3f}x)"
        )


def _time_calls(args, objectives, kernel, z, y) -> dict:
    """Print and return the median ratio of one symgrad call to the hand objective's, per
    ``threads`` setting (interleaved rounds)."""
    keeper = boosting.xgboost("binary_cross_entropy_with_logits", threads=1)
    held: list = [None]

    def kept() -> None:
        held[0] = keeper.grad_hess(z, y)  # the last result is held: no arrays to reuse

    cases = {
        "hand numpy (1 thread)": lambda: hand_objective(z, y),
        **{_label(t): partial(o.grad_hess, z, y) for t, o in objectives.items()},
        "emitted _grad_hess alone, one call": lambda: kernel(z, y, count=1),
        "symgrad threads=1, the caller keeps each result (new arrays)": kept,
    }
    times = {name: [] for name in cases}
    for i in range(args.repeats * 4):
        for name in _rotated(list(cases), i):
            times[name].append(_clock(cases[name]))
    hand = times["hand numpy (1 thread)"]
    ratios = {
        name: statistics.median(t / h for t, h in zip(ts, hand, strict=True))
        for name, ts in times.items()
    }
    print(
        f"objective call, {args.rows:,} rows (median of {len(hand)} interleaved rounds; "
        "ratio to hand numpy):"
    )
    for name, ts in times.items():
        print(f"  {name}: {statistics.median(ts) * 1e3:.2f} ms (ratio {ratios[name]:.2f})")
    names = list(cases)[1 : 1 + len(objectives)]
    return {t: ratios[n] for t, n in zip(objectives, names, strict=True)}


def _time_training(args, xgb, d, params, start, objectives) -> dict:
    """Print and return, per view, the median ratio of training with symgrad's objective to
    training with binary:logistic in the same view (every view in each interleaved repeat)."""

    def hand_xgboost(preds: np.ndarray, dtrain) -> tuple[np.ndarray, np.ndarray]:
        return hand_objective(preds, dtrain.get_label())

    runs = {}
    for name, extra, threads in VIEWS:
        view = {**params, **extra}
        runs[name] = {
            "binary:logistic": partial(
                xgb.train, {**view, "objective": "binary:logistic"}, d, args.rounds
            ),
            _label(threads): partial(
                xgb.train,
                {**view, "base_score": start},
                d,
                args.rounds,
                obj=objectives[threads].objective,
            ),
            "hand objective": partial(
                xgb.train, {**view, "base_score": start}, d, args.rounds, obj=hand_xgboost
            ),
        }
    times = {(v, c): [] for v, cases in runs.items() for c in cases}
    for i in range(args.repeats):
        for v, c in _rotated(list(times), i):
            times[(v, c)].append(_clock(runs[v][c]))
    result = {}
    for name, cases in runs.items():
        base = times[(name, "binary:logistic")]
        print(
            f"xgboost training at {name}, {args.rows:,} x {args.cols}, {args.rounds} rounds "
            f"(median of {len(base)} interleaved repeats; ratio to binary:logistic at {name}):"
        )
        for case in cases:
            ts = times[(name, case)]
            ratio = statistics.median(t / b for t, b in zip(ts, base, strict=True))
            print(f"  {case}: {statistics.median(ts):.2f} s (ratio {ratio:.3f})")
            if case.startswith("symgrad"):
                result[name] = ratio
    return result


if __name__ == "__main__":
    main()
