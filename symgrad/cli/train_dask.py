"""``symgrad train --scheduler``: the same models, fitted on a Dask cluster by a full-batch solver.

It shares the flags and model building of ``symgrad train`` (``cli.build``) and the model file
(``cli.saved``); nothing imports this module but the command line's dispatch."""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from symgrad import data
from symgrad.cli import saved
from symgrad.cli.files import write_atomic
from symgrad.cli.report import EXIT_FAILED, EXIT_OK, diverged, error, say
from symgrad.errors import ClusterError, OutputError, SymgradError, TrainError


def _class_index(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Return each label's index in the sorted ``classes`` (runs on the workers)."""
    return np.searchsorted(classes, labels)


def _label_summary(y: Any, timeout: float) -> np.ndarray:
    """Return what choosing the model needs of ``y``, computed on the cluster (y is never
    gathered): its distinct values when they are integers, else a stand-in of its shape."""
    import dask.array as da

    import symgrad.dask as sgd
    from symgrad.data import MAX_CLASSES

    what = "reading the labels"
    whole = sgd.dask_compute(da.all(y == da.round(y)), what=what, worker_timeout=timeout)[0]
    if y.ndim == 1 and bool(whole):
        classes = np.asarray(sgd.dask_compute(da.unique(y), what=what, worker_timeout=timeout)[0])
        if len(classes) <= MAX_CLASSES:
            return classes
    return np.full((2, *y.shape[1:]), 0.5)  # not class labels: a regression target


def _refuse(args: argparse.Namespace) -> None:
    """Raise TrainError for a flag the cluster path cannot honour (none is silently ignored)."""
    from symgrad.solvers import METHODS

    if not 0 <= args.val_fraction < 1:
        raise TrainError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.epochs is not None and args.epochs < 1:
        raise TrainError(f"--epochs must be at least 1, got {args.epochs}")
    if args.lr is not None:
        raise TrainError("--lr does not apply with --scheduler: its solvers find their own steps")
    if args.batch_size not in (None, 0):
        raise TrainError(
            "--batch-size does not apply with --scheduler: its solvers use full batches"
        )
    if args.optimizer.lower() not in ("auto", *METHODS):
        raise TrainError(
            f"--optimizer {args.optimizer}: with --scheduler the solvers are full batch "
            f"({', '.join(METHODS)}); choose one with --solver"
        )
    if args.plot:
        raise TrainError("--plot: a fit on a cluster draws no loss curve (drop --plot)")


def run(args: argparse.Namespace) -> int:
    """Fit on the cluster at ``args.scheduler`` ("local" starts one) and save the parameters.

    Flags and the data source are checked before any cluster starts. A fit the cluster cannot
    finish (a block that fails, no workers left) exits 1 with one ``error:`` line.
    """
    import symgrad.dask as sgd
    from symgrad.cli.files import check_output

    try:
        out = check_output(args.output, "-o", args.force)
        _refuse(args)
        sgd.check_source(args.data)
        client = sgd.connect(args.scheduler, timeout=args.scheduler_timeout)
    except (SymgradError, ValueError) as exc:
        return error(str(exc))
    cluster = client.cluster if args.scheduler == "local" else None
    if cluster is not None:  # our own workers: numpy's warnings become the one-line verdicts
        client.run(warnings.filterwarnings, "ignore", category=RuntimeWarning)
    try:
        return _fit(args, client, out)
    except ClusterError as exc:
        say(f"error: {exc}")
        return EXIT_FAILED
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _holdout_mask(rows: int, seed: int, fraction: float, block: int) -> np.ndarray:
    """Return which of a row block's rows are held out: seeded by (seed, block) alone, so the
    split is the same on any cluster and needs no pass over the data."""
    return np.random.default_rng([seed, block]).random(rows) < fraction


def _pick(a: np.ndarray, seed: int, fraction: float, held: bool, block_info: Any = None) -> Any:
    mask = _holdout_mask(len(a), seed, fraction, block_info[0]["chunk-location"][0])
    return a[mask if held else ~mask]


def _split(X: Any, y: Any, fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """Return (X, y, X_val, y_val) with ``fraction`` of the rows held out (None, None when 0)."""
    if fraction == 0:
        return X, y, None, None
    y = y.rechunk({0: X.chunks[0]})
    held = [int(_holdout_mask(n, seed, fraction, b).sum()) for b, n in enumerate(X.chunks[0])]
    kept = tuple(n - h for n, h in zip(X.chunks[0], held, strict=True))
    if sum(kept) < 1:
        raise TrainError(f"{X.shape[0]} samples leave none for training")

    def part(a: Any, sizes: tuple, flag: bool) -> Any:
        chunks = (sizes, *a.chunks[1:])
        return a.map_blocks(_pick, seed, fraction, flag, chunks=chunks, dtype=a.dtype)

    return (
        part(X, kept, False),
        part(y, kept, False),
        part(X, tuple(held), True),
        part(y, tuple(held), True),
    )


def _metric_sums(
    X: np.ndarray, y: np.ndarray, model: Any, params: Any, n: int, *, task: str, target: Any
) -> Any:
    """Return one block's share of the metrics: [loss, correct or squared error, y, y^2], the
    loss on the targets the fit learnt, the rest in the targets' units (``target``)."""
    with np.errstate(all="ignore"):
        loss = float(model.objective(params, X, y, count=n, penalty=False)[0])
        pred = np.asarray(model.predict(params, X)).reshape(y.shape)
        if task != "classify":
            y, pred = target.inverse(y), target.inverse(pred)
        hit = float(np.sum(pred == y)) if task == "classify" else float(np.sum((pred - y) ** 2))
    return np.array([loss, hit, float(np.sum(y)), float(np.sum(np.square(y)))])


def _metrics(
    built: Any, params: Any, X: Any, y: Any, timeout: float, target: Any
) -> dict[str, float]:
    """Return the in-memory path's metrics (loss; accuracy, or RMSE and R^2) over the cluster."""
    import dask

    import symgrad.dask as sgd

    n = int(X.shape[0])
    if n == 0:
        return {}
    y = y.rechunk({0: X.chunks[0]})
    task = built.task
    parts = [
        dask.delayed(_metric_sums)(xb, yb, built.model, params, n, task=task, target=target)
        for xb, yb in zip(X.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
    ]
    loss, hit, s1, s2 = np.sum(
        sgd.dask_compute(*parts, what="the metrics", worker_timeout=timeout), axis=0
    )
    empty = np.zeros((0, X.shape[1])), np.zeros(0)
    out = {"loss": loss + float(built.model.objective(params, *empty, count=n)[0])}
    if task == "classify":
        out["accuracy"] = hit / n
    else:
        out["rmse"] = math.sqrt(hit / n)
        spread = s2 - s1 * s1 / n
        out["r2"] = 1 - hit / spread if spread > 0 else math.nan
    return out


def _scalings(
    args: argparse.Namespace, model: Any, X: Any, y: Any, timeout: float
) -> tuple[data.Scaling, data.Scaling]:
    """Return the feature and the target scaling of the training part, computed on the
    cluster by the in-memory path's policy (:func:`symgrad.data.scales_targets`); both the
    identity without ``--standardize``."""
    import symgrad.dask as sgd

    if not args.standardize:
        return data.Scaling(), data.Scaling()
    on_y = data.scales_targets(model, args.standardize)
    moments = [X.mean(axis=0), X.std(axis=0)]
    moments += [y.mean(axis=0), y.std(axis=0)] if on_y else []
    stats = sgd.dask_compute(*moments, what="standardizing", worker_timeout=timeout)
    target = data.Scaling.from_moments(*stats[2:]) if on_y else data.Scaling()
    return data.Scaling.from_moments(*stats[:2]), target


def _verdict(result: Any, max_iter: int, seconds: float) -> str:
    """Return the first report line, in the in-memory path's words."""
    if result.converged:
        why = f"converged: max gradient {result.grad_norm:.3g}"
    elif result.n_iter >= max_iter:
        why = f"not converged within {max_iter} iterations (raise --epochs)"
    else:
        why = result.message or "stopped"
    return f"stopped after {result.n_iter} iterations ({result.n_passes} passes), {seconds:.2f} s: {why}"


def _divergence(result: Any) -> str | None:
    """Return why the fit diverged, as the in-memory path says it, or None."""
    from symgrad.cli.fitting import DIVERGENCE_FACTOR

    history = [f for f in result.history.loss if f is not None]
    if history:
        limit = DIVERGENCE_FACTOR * max(abs(history[0]), 1e-6)
        for i, f in enumerate(history):
            if not f <= limit:
                return f"the loss grew from {history[0]:.4g} to {f:.4g} by iteration {i + 1}"
    if not math.isfinite(result.objective):
        return f"the loss is {result.objective} after {result.n_iter} iterations"
    if not all(np.all(np.isfinite(v)) for v in result.params.values()):
        return "the parameters are not finite"
    if result.warnings:  # a non-finite trial point or a failed line search: never convergence
        return result.warnings[0]
    return None


def _fit(args: argparse.Namespace, client: object, out: Path) -> int:
    """Read, build, fit and save on a connected cluster; return the exit code."""
    import symgrad.dask as sgd
    from symgrad.cli.build import build
    from symgrad.cli.fitting import quiet_numpy
    from symgrad.solvers import METHODS, choose

    timeout = args.scheduler_timeout
    with quiet_numpy():
        try:
            X, y, names = sgd.read_table(args.data, args.label)
            n_samples = int(X.shape[0])
            X, y, X_val, y_val = _split(X, y, args.val_fraction, args.seed)
            built = build(args, _label_summary(y, timeout), X.shape[1], X.shape[0])
            optimizer = args.optimizer.lower()
            requested = args.solver or (optimizer if optimizer in METHODS else "auto")
            method = choose(built.model, X, y, requested, params=built.init, first_order=False)
            if built.classes is not None:
                y = y.map_blocks(_class_index, built.classes, dtype=np.intp)
                if y_val is not None:
                    y_val = y_val.map_blocks(_class_index, built.classes, dtype=np.intp)
            features, target = _scalings(args, built.model, X, y, timeout)
            X, y = features.forward(X), target.forward(y)
            X_val = None if X_val is None else features.forward(X_val)
            y_val = None if y_val is None else target.forward(y_val)
            n_val = 0 if X_val is None else int(X_val.shape[0])
            what = f"{len(built.classes)} classes" if built.classes is not None else "regression"
            say(
                f"data   {args.data}: {n_samples} samples, {X.shape[1]} features, {what} "
                f"({X.shape[0]} train / {n_val} validation) on {args.scheduler}"
            )
            scaled = " (targets standardized)" if target.scaled else ""
            say(f"model  {built.model!r}{scaled}")
            max_iter = args.epochs or 100
            say(f"fit    {method} (full batch on the cluster), at most {max_iter} iterations")
            start = time.perf_counter()
            result = sgd.fit(
                built.model, X, y, client=client, params=built.init, method=method,
                max_iter=max_iter, progress=args.progress, worker_timeout=timeout,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            reason = _divergence(result)
            train_m = val_m = {}
            if reason is None:
                train_m = _metrics(built, result.params, X, y, timeout, target)
                if X_val is not None:
                    val_m = _metrics(built, result.params, X_val, y_val, timeout, target)
                bad = [
                    k for k, v in (train_m | val_m).items() if not math.isfinite(v) and k != "r2"
                ]
                reason = f"the final {bad[0]} is not finite" if bad else None
        except ClusterError:
            raise
        except (SymgradError, ValueError, TypeError) as exc:
            return error(str(exc))
    if reason is not None:  # like the in-memory path: nothing is written
        return diverged(f"{reason}; try --regularizer l2")
    lines = [
        _verdict(result, max_iter, seconds),
        f"{'metric':<10} {'train':>12} {'validation':>12}",
    ]
    for key, value in train_m.items():
        other = f"{val_m[key]:>12.6g}" if key in val_m else f"{'-':>12}"
        lines.append(f"{key:<10} {value:>12.6g} {other}")
    print("\n".join(lines), flush=True)
    say(f"time   {sgd.format_times(result.times)}")
    meta = _metadata(args, built, names, X.shape[1], target, train_m, val_m)
    unit = np.zeros(X.shape[1]), np.ones(X.shape[1])  # the saved map without --standardize
    shift, scale = (features.mean, features.scale) if features.scaled else unit
    arrays = {"x_mean": shift, "x_scale": scale, "classes": built.classes}
    arrays |= {"y_mean": target.mean, "y_scale": target.scale}
    try:
        blob = saved.encode(meta, result.params, arrays)
        write_atomic(out, lambda fh: fh.write(blob))
    except OutputError as exc:
        return error(str(exc))
    except OSError as exc:
        return error(f"{out}: cannot write: {exc.strerror or exc}")
    say(f"wrote {out.as_posix()}")
    return EXIT_OK


def _metadata(
    args: argparse.Namespace,
    built: Any,
    names: Any,
    n_features: int,
    target: data.Scaling,
    *metrics: dict,
) -> dict[str, Any]:
    """Return the model file's description of a cluster fit, with its train and validation
    metrics."""
    features = [str(n) for n in names] if names is not None else []
    named = len(features) == n_features
    return saved.describe_model(built) | {
        "data": args.data,
        "features": features if named else [f"x{i}" for i in range(n_features)],
        "named_features": named,
        "label": str(args.label) if args.label is not None else None,
        "standardized": {"features": bool(args.standardize), "targets": target.scaled},
        "metrics": {
            part: saved.finite_metrics(values)
            for part, values in zip(("train", "validation"), metrics, strict=True)
            if values
        },
    }
