"""``symgrad train``: load data, build a model from flags, fit it, report metrics, save results."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symgrad.cli.report import EXIT_FAILED, EXIT_OK, error, say
from symgrad.errors import SymgradError, TrainError

MODELS = ("auto", "linear", "logistic", "softmax", "mlp")
MAX_CLASSES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` flags to ``parser``."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="a .csv file (numeric, optional header), an .npz file with arrays X and y, "
        "or a scikit-learn bundled dataset: iris, wine, breast_cancer, digits, diabetes",
    )
    data.add_argument(
        "--label", metavar="COLUMN", help="CSV label column, name or index (default: last)"
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="fraction held out for validation (default 0.2; 0 for none)",
    )
    data.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="do not scale features to zero mean and unit variance",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        choices=MODELS,
        default="auto",
        help="auto picks logistic/softmax for integer labels with few classes, else linear",
    )
    model.add_argument(
        "--loss",
        metavar="NAME",
        help="loss for linear and mlp models: a built-in name (mse, huber, ...) or "
        "FILE.py:NAME / module:NAME for your own spec",
    )
    model.add_argument(
        "--activation",
        default="relu",
        metavar="NAME",
        help="hidden activation of mlp (default relu)",
    )
    model.add_argument(
        "--hidden",
        default="32",
        metavar="SIZES",
        help="mlp hidden layer sizes, e.g. 64,32 (default 32)",
    )
    model.add_argument("--regularizer", metavar="NAME", help="l1, l2, elastic_net, or FILE.py:NAME")
    model.add_argument(
        "--lam",
        type=float,
        metavar="LAMBDA",
        help="regularization strength (the regularizer's lam)",
    )
    model.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KIND.NAME=VALUE",
        help="a kernel hyper-parameter, e.g. loss.delta=0.5 or regularizer.l1_ratio=0.2 (repeatable)",
    )
    fitting = parser.add_argument_group("optimization")
    fitting.add_argument(
        "--optimizer",
        default="adam",
        metavar="NAME",
        help="sgd, adam, adamw, rmsprop, ... (default adam)",
    )
    fitting.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    fitting.add_argument(
        "--epochs", type=int, default=100, help="passes over the data (default 100)"
    )
    fitting.add_argument(
        "--batch-size",
        type=int,
        default=32,
        metavar="N",
        help="mini-batch size (default 32; 0 for full batch)",
    )
    fitting.add_argument(
        "--seed", type=int, default=0, help="seed for the split, init and shuffling"
    )
    fitting.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal and tqdm is installed)",
    )
    cluster = parser.add_argument_group("dask (full-batch on a cluster)")
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="fit on a Dask cluster: tcp://host:8786, or 'local' for a LocalCluster; --data is "
        "then a parquet or CSV glob read by dask.dataframe, --label its target column",
    )
    cluster.add_argument(
        "--solver",
        choices=("newton", "lbfgs", "newton_cg", "gd"),
        default="lbfgs",
        help="full-batch solver with --scheduler (default lbfgs; --epochs caps its iterations)",
    )
    cluster.add_argument(
        "--scheduler-timeout", type=float, default=10.0, metavar="S", help=argparse.SUPPRESS
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        default="params.npz",
        metavar="FILE.npz",
        help="where to save the parameters (default params.npz)",
    )
    out.add_argument(
        "--plot",
        metavar="FILE.png",
        help="loss-curve PNG (default: FILE_loss.png next to the parameters)",
    )
    out.add_argument("--no-plot", action="store_true", help="do not write the loss-curve PNG")


@dataclass
class Split:
    """Standardized train and validation arrays and the preprocessing that made them."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    mean: np.ndarray
    scale: np.ndarray


def split(X: np.ndarray, y: np.ndarray, fraction: float, seed: int, standardize: bool) -> Split:
    """Shuffle, hold out ``fraction`` for validation, and standardize on the training part."""
    if not 0 <= fraction < 1:
        raise TrainError(f"--val-fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(fraction * len(X)))
    if len(X) - n_val < 1:
        raise TrainError(f"{len(X)} samples leave none for training")
    val, train = order[:n_val], order[n_val:]
    mean = X[train].mean(axis=0) if standardize else np.zeros(X.shape[1])
    scale = X[train].std(axis=0) if standardize else np.ones(X.shape[1])
    scale = np.where(scale > 0, scale, 1.0)

    def prep(idx: np.ndarray) -> np.ndarray:
        return (X[idx] - mean) / scale

    if n_val == 0:
        return Split(prep(train), y[train], None, None, mean, scale)
    return Split(prep(train), y[train], prep(val), y[val], mean, scale)


def _kernel(role: str, name: str | None) -> Any:
    """Return a built-in name as is, or the Spec named by ``FILE.py:NAME`` / ``module:NAME``."""
    if name is None or ":" not in name:
        return name
    from symgrad.cli.catalog import find
    from symgrad.cli.targets import load_target

    where, kernel = name.rsplit(":", 1)
    spec = find(kernel, [load_target(where)]).spec
    if spec.role != role:
        raise TrainError(f"{name}: is a {spec.role}, expected a {role}")
    return spec


def _params(items: list[str], lam: float | None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {"loss": {}, "activation": {}, "regularizer": {}}
    for item in items:
        key, eq, value = item.partition("=")
        kind, dot, hyper = key.partition(".")
        if not (eq and dot and kind in out and hyper):
            raise TrainError(
                f"--param {item!r}: expected KIND.NAME=VALUE with KIND in {sorted(out)}"
            )
        try:
            out[kind][hyper] = float(value)
        except ValueError:
            raise TrainError(f"--param {item!r}: {value!r} is not a number") from None
    if lam is not None:
        out["regularizer"]["lam"] = lam
    return out


def _choice(kernel: Any, hyper: dict[str, float]) -> Any:
    return (kernel, hyper) if hyper else kernel


def _task(y: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Return ('classify', classes) for integer labels with few classes, else ('regress', None)."""
    if y.ndim == 1 and np.all(y == np.round(y)):
        classes = np.unique(y)
        if 2 <= len(classes) <= MAX_CLASSES:
            return "classify", classes
    return "regress", None


def _loss_spec(loss: Any) -> Any:
    """Return the Spec of a built-in loss name (or the given Spec)."""
    if not isinstance(loss, str):
        return loss
    from symgrad.library import losses

    found = {s.name: s for s in losses.SPECS}
    if loss not in found:
        raise TrainError(f"unknown loss {loss!r}; choose one of: {', '.join(sorted(found))}")
    return found[loss]


@dataclass
class Built:
    """A model ready to fit, with its task and the label values behind class indices."""

    model: Any
    task: str
    classes: np.ndarray | None
    init: Any


def build(args: argparse.Namespace, y: np.ndarray, n_features: int) -> Built:
    """Return the model the flags describe, its initial parameters, task and classes."""
    from symgrad import models

    task, classes = _task(y)
    kind = args.model
    if kind == "auto":
        kind = "linear" if task == "regress" else ("logistic" if len(classes) == 2 else "softmax")
    hyper = _params(args.param, args.lam)
    if args.regularizer is None and hyper["regularizer"]:
        raise TrainError("--lam and regularizer.* parameters need --regularizer")
    reg = None
    if args.regularizer:
        reg = _choice(_kernel("regularizer", args.regularizer), hyper["regularizer"])
    n_out = y.shape[1] if y.ndim == 2 else None
    if kind in ("logistic", "softmax"):
        if args.loss:
            raise TrainError(f"--loss applies to linear and mlp models; {kind} has its own")
        if classes is None:
            raise TrainError(
                f"{kind} regression needs integer class labels (2 to {MAX_CLASSES} classes)"
            )
        if kind == "logistic":
            if len(classes) != 2:
                raise TrainError(f"logistic regression needs 2 classes, got {len(classes)}")
            model = models.LogisticRegression(regularizer=reg)
        else:
            model = models.SoftmaxRegression(len(classes), regularizer=reg)
        return Built(model, "classify", classes, model.init(args.seed, n_features=n_features))
    loss = _kernel("loss", args.loss)
    if kind == "linear":
        model = models.LinearRegression(loss=_choice(loss or "mse", hyper["loss"]), regularizer=reg)
        init = model.init(args.seed, n_features=n_features, n_outputs=n_out)
        return Built(model, "regress", None, init)
    try:
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        raise TrainError(f"--hidden {args.hidden!r}: expected sizes like 64,32") from None
    if loss is None:
        if classes is None:
            loss = "mse"
        else:
            loss = (
                "binary_cross_entropy_with_logits" if len(classes) == 2 else "softmax_cross_entropy"
            )
    spec = _loss_spec(loss)
    if spec.class_axis or spec.name in ("binary_cross_entropy_with_logits", "sigmoid_focal"):
        if classes is None:
            raise TrainError(f"loss {spec.name!r} needs integer class labels")
        width = len(classes) if spec.class_axis else 1
        task = "classify"
    else:
        width, task, classes = n_out or 1, "regress", None
    activation = _choice(_kernel("activation", args.activation), hyper["activation"])
    model = models.MLP([n_features, *hidden, width], activation, _choice(loss, hyper["loss"]), reg)
    return Built(model, task, classes, model.init(args.seed))


def _encode(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    return y if classes is None else np.searchsorted(classes, y)


def metrics(model: Any, task: str, params: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return the objective and accuracy (classifiers) or RMSE and R^2 (regressors)."""
    out = {"loss": float(model.objective(params, X, y)[0])}
    pred = np.asarray(model.predict(params, X))
    if task == "classify":
        out["accuracy"] = float(np.mean(pred == y))
    else:
        resid = pred.reshape(y.shape) - y
        out["rmse"] = float(np.sqrt(np.mean(resid**2)))
        var = float(np.mean((y - y.mean(axis=0)) ** 2))
        out["r2"] = 1 - float(np.mean(resid**2)) / var if var > 0 else float("nan")
    return out


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(history: Any, path: Path, title: str) -> bool:
    """Write a loss-curve PNG; return False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = history.as_arrays()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(rows["epoch"] + 1, rows["loss"], label="training")
    if np.any(np.isfinite(rows["val_loss"])):
        ax.plot(rows["epoch"] + 1, rows["val_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _check_output(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise TrainError(f"{path.as_posix()}: folder {folder.as_posix()} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TrainError(f"{path.as_posix()}: folder {folder.as_posix()} is not writable")


def run(args: argparse.Namespace) -> int:
    """Run ``symgrad train`` and return its exit code."""
    from symgrad import optim
    from symgrad.datasets import load
    from symgrad.fit import fit

    if getattr(args, "scheduler", None):
        from symgrad.cli.train_dask import run as run_dask

        return run_dask(args)
    out = Path(args.output)
    png = Path(args.plot) if args.plot else out.with_name(f"{out.stem}_loss.png")
    try:
        if args.epochs < 1:
            raise TrainError(f"--epochs must be at least 1, got {args.epochs}")
        if args.batch_size < 0:
            raise TrainError(f"--batch-size must be 0 (full batch) or more, got {args.batch_size}")
        _check_output(out)
        if not args.no_plot:
            _check_output(png)
        data = load(args.data, args.label)
        parts = split(data.X, data.y, args.val_fraction, args.seed, args.standardize)
        built = build(args, data.y, data.X.shape[1])
        model, task, classes, init = built.model, built.task, built.classes, built.init
        y, y_val = _encode(parts.y, classes), None
        if parts.y_val is not None:
            y_val = _encode(parts.y_val, classes)
        opt = optim.get(args.optimizer, lr=args.lr)
        model.objective(init, parts.X[:2], y[:2])  # shape problems surface here, before training
    except (SymgradError, ValueError, TypeError) as exc:
        return error(str(exc))
    n_val = 0 if parts.X_val is None else len(parts.X_val)
    what = f"{len(classes)} classes" if classes is not None else "regression"
    say(
        f"data   {data.name}: {len(data.X)} samples, {data.X.shape[1]} features, {what} "
        f"({len(parts.X)} train / {n_val} validation)"
    )
    say(f"model  {model!r}")
    say(
        f"fit    {opt.name}(lr={args.lr}), {args.epochs} epochs, "
        f"batch size {args.batch_size or 'full'}"
    )
    start = time.perf_counter()
    result = fit(
        model.objective,
        init,
        parts.X,
        y,
        optimizer=opt,
        epochs=args.epochs,
        batch_size=args.batch_size or None,
        seed=args.seed,
        validation=None if parts.X_val is None else (parts.X_val, y_val),
        progress=args.progress,
        on_non_finite="stop",
    )
    seconds = time.perf_counter() - start
    train_m = metrics(model, task, result.params, parts.X, y)
    val_m = metrics(model, task, result.params, parts.X_val, y_val) if n_val else {}
    lines = [
        f"stopped after {result.n_epochs} epochs, {result.n_steps} steps, {seconds:.2f} s: "
        f"{result.message or result.stop_reason}",
        f"{'metric':<10} {'train':>12} {'validation':>12}",
    ]
    for key, value in train_m.items():
        other = f"{val_m[key]:>12.6g}" if key in val_m else f"{'-':>12}"
        lines.append(f"{key:<10} {value:>12.6g} {other}")
    print("\n".join(lines), flush=True)
    arrays = {k: np.asarray(v) for k, v in result.params.items()}
    arrays |= {"x_mean": parts.mean, "x_scale": parts.scale}
    if classes is not None:
        arrays["classes"] = classes
    try:
        _save_npz(out, arrays)
        say(f"wrote {out.as_posix()}")
        if not args.no_plot:
            title = f"{data.name}: {type(model).__name__}, {opt.name}(lr={args.lr})"
            if plot(result.history, png, title):
                say(f"wrote {png.as_posix()}")
            else:
                say("no loss curve: matplotlib is not installed (pip install matplotlib)")
    except OSError as exc:
        return error(f"{exc.filename or out}: cannot write: {exc.strerror or exc}")
    if result.stop_reason == "non_finite":
        say(f"training diverged ({result.message}); try a smaller --lr")
        return EXIT_FAILED
    return EXIT_OK
