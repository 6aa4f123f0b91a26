"""`symgrad train` with default settings against scikit-learn's default estimators, same splits.

For every bundled dataset and seed, runs the real command line (in-process)
``symgrad train --data NAME --seed S`` (the default model: linear, logistic or softmax) and
``... --model mlp``, and fits scikit-learn's default estimator on the same training rows:
``LinearRegression()``, ``LogisticRegression()`` (multinomial for several classes),
``MLPRegressor()`` / ``MLPClassifier()`` on the raw features, as a user would call them, and the
same estimator behind a ``StandardScaler`` (what symgrad does by default). Prints the mean
validation score (accuracy, or R^2 averaged over outputs) over the seeds::

    python -m benchmarks.train_vs_sklearn                 # seeds 0-4, every dataset
    python -m benchmarks.train_vs_sklearn --seeds 1 --datasets iris wine
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from symgrad.cli.app import main
from symgrad.data import BUNDLED, label_classes, load, r2_score, split

VAL_FRACTION = 0.2


def symgrad_score(name: str, seed: int, *extra: str) -> float:
    """Run ``symgrad train --data NAME --seed SEED EXTRA`` and return its validation score."""
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["train", "--data", name, "--seed", str(seed), "--no-plot", "--no-progress"]
        argv += ["-o", str(Path(tmp) / "p.npz"), *extra]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    if code != 0:
        raise RuntimeError(f"symgrad {' '.join(argv)} exited {code}: {err.getvalue()}")
    for line in out.getvalue().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("accuracy", "r2"):
            return float(parts[2])
    raise RuntimeError(f"no validation score in: {out.getvalue()}")


def sklearn_estimator(model: str, classify: bool, seed: int, scaled: bool):
    """Return scikit-learn's default estimator for ``model`` (behind a StandardScaler if scaled)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "mlp":
        est = MLPClassifier(random_state=seed) if classify else MLPRegressor(random_state=seed)
    else:
        est = LogisticRegression() if classify else LinearRegression()
    return make_pipeline(StandardScaler(), est) if scaled else est


def sklearn_score(name: str, seed: int, model: str, scaled: bool) -> float:
    """Fit scikit-learn's default estimator on symgrad's training rows; return its validation score."""
    from sklearn.exceptions import ConvergenceWarning

    data = load(name)
    classes = label_classes(data.y)  # symgrad train stratifies classifiers' splits
    parts = split(data.X, data.y, VAL_FRACTION, seed, standardize=False, classes=classes)
    classify = classes is not None
    est = sklearn_estimator(model, classify, seed, scaled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(parts.X, parts.y)
    pred = est.predict(parts.X_val)
    if classify:
        return float(np.mean(pred == parts.y_val))
    return r2_score(parts.y_val, pred)


def default_model(name: str) -> str:
    """Return the model ``--model auto`` picks for a dataset."""
    classes = label_classes(load(name).y)
    if classes is None:
        return "linear"
    return "logistic" if len(classes) == 2 else "softmax"


def row(name: str, model: str, seeds: list[int]) -> dict:
    """Return the mean validation scores over ``seeds`` of one dataset and model."""
    extra = ("--model", "mlp") if model == "mlp" else ()
    ours = [symgrad_score(name, s, *extra) for s in seeds]
    raw = [sklearn_score(name, s, model, scaled=False) for s in seeds]
    scaled = [sklearn_score(name, s, model, scaled=True) for s in seeds]
    return dict(
        dataset=name,
        model=model,
        symgrad=float(np.mean(ours)),
        sklearn=float(np.mean(raw)),
        sklearn_scaled=float(np.mean(scaled)),
    )


def table(datasets: list[str], seeds: list[int], mlp: bool = True) -> Iterator[dict]:
    """Yield one row per dataset and model (the default one, and mlp unless ``mlp=False``)."""
    for name in datasets:
        for model in (default_model(name), "mlp")[: 2 if mlp else 1]:
            yield row(name, model, seeds)


HEADER = (
    "| dataset | model | symgrad train | scikit-learn default | + StandardScaler |\n"
    "|---|---|---:|---:|---:|"
)


def markdown_row(r: dict) -> str:
    """Return one table row in Markdown."""
    return (
        f"| {r['dataset']} | {r['model']} | {r['symgrad']:.4f} | {r['sklearn']:.4f} "
        f"| {r['sklearn_scaled']:.4f} |"
    )


def main_cli(argv: list[str] | None = None) -> None:
    """Print the comparison table, a row as soon as it is measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--datasets", nargs="*", default=list(BUNDLED), choices=BUNDLED)
    parser.add_argument("--no-mlp", action="store_true", help="only the default models")
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds))
    print(HEADER, flush=True)
    for r in table(args.datasets, seeds, mlp=not args.no_mlp):
        print(markdown_row(r), flush=True)
    print(f"\nvalidation accuracy, or R^2 averaged over outputs; mean over seeds {seeds}")


if __name__ == "__main__":
    main_cli()
