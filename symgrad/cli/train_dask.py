"""``symgrad train --scheduler``: the same models, fitted on a Dask cluster by a full-batch solver."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from symgrad.cli.report import EXIT_OK, diverged, error, say
from symgrad.errors import SymgradError


def _class_index(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Return each label's index in the sorted ``classes`` (runs on the workers)."""
    return np.searchsorted(classes, labels)


def _label_summary(y: object) -> np.ndarray:
    """Return what choosing the model needs of ``y``, computed on the cluster (y is never
    gathered): its distinct values when they are integers, else a stand-in of its shape."""
    import dask.array as da

    from symgrad.cli.train import MAX_CLASSES

    if y.ndim == 1 and bool(da.all(y == da.round(y)).compute()):
        classes = da.unique(y).compute()
        if len(classes) <= MAX_CLASSES:
            return classes
    return np.full((2, *y.shape[1:]), 0.5)  # not class labels: a regression target


def run(args: argparse.Namespace) -> int:
    """Fit on the cluster at ``args.scheduler`` ("local" starts one) and save the parameters."""
    import symgrad.dask as sgd
    from symgrad.cli.train import check_output

    try:
        out = check_output(args.output, "-o")
        client = sgd.connect(args.scheduler, timeout=args.scheduler_timeout)
    except (SymgradError, ValueError) as exc:
        return error(str(exc))
    try:
        return _fit(args, client, out)
    finally:
        cluster = client.cluster if args.scheduler == "local" else None
        client.close()
        if cluster is not None:
            cluster.close()


def _fit(args: argparse.Namespace, client: object, out: Path) -> int:
    """Read, build, fit and save on a connected cluster; return the exit code."""
    import symgrad.dask as sgd
    from symgrad.cli.train import build, write_atomic
    from symgrad.solvers import METHODS, choose

    try:
        X, y, names = sgd.read_table(args.data, args.label)
        built = build(args, _label_summary(y), X.shape[1], X.shape[0])
        requested = args.solver or (args.optimizer if args.optimizer in METHODS else "auto")
        method = choose(built.model, X, y, requested, params=built.init, first_order=False)
        if built.classes is not None:
            y = y.map_blocks(_class_index, built.classes, dtype=np.intp)
        mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        if args.standardize:
            mean, std = (np.asarray(a) for a in sgd.dask_compute(X.mean(axis=0), X.std(axis=0)))
            scale = np.where(std > 0, std, 1.0)
            X = (X - mean) / scale
        say(f"data   {args.data}: {X.shape[0]} samples, {X.shape[1]} features on {args.scheduler}")
        say(f"model  {built.model!r}")
        max_iter = args.epochs or 100
        say(f"fit    {method}, at most {max_iter} iterations, full batch")
        start = time.perf_counter()
        result = sgd.fit(
            built.model,
            X,
            y,
            client=client,
            params=built.init,
            method=method,
            max_iter=max_iter,
            progress=args.progress,
        )
    except (SymgradError, ValueError, TypeError) as exc:
        return error(str(exc))
    print(
        f"{result.message} after {result.n_iter} iterations ({result.n_passes} passes), "
        f"{time.perf_counter() - start:.2f} s: objective {result.objective:.6g}, "
        f"max gradient {result.grad_norm:.2e}",
        flush=True,
    )
    arrays = {k: np.asarray(v) for k, v in result.params.items()}
    arrays |= {"x_mean": mean, "x_scale": scale, "features": np.array(names)}
    if built.classes is not None:
        arrays["classes"] = built.classes
    try:
        write_atomic(out, lambda fh: np.savez(fh, **arrays))
    except OSError as exc:
        return error(f"{out}: cannot write: {exc.strerror or exc}")
    say(f"wrote {out.as_posix()}")
    if not np.isfinite(result.objective):
        return diverged(f"the objective is {result.objective} after {result.n_iter} iterations")
    return EXIT_OK
