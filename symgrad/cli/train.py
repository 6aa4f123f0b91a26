"""``symgrad train``: load data, build a model from flags, fit it, report metrics, save results.

Defaults follow scikit-learn's estimators so that a bare ``symgrad train --data NAME`` scores
at least as well as they do: convex models (linear, logistic, softmax) are solved to
convergence by Newton's method (``--optimizer lbfgs`` runs scipy's L-BFGS-B), the
classifiers carry scikit-learn's default L2 penalty (``C=1``), features are standardized,
and an MLP regressor learns standardized targets (predictions and metrics are reported in
the original units).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import stat
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from symgrad.cli.report import EXIT_OK, diverged, error, say
from symgrad.errors import SymgradError, TrainError

MODELS = ("auto", "linear", "logistic", "softmax", "mlp")
CONVEX = ("linear", "logistic", "softmax")
SECOND_ORDER = ("newton", "lbfgs")
MAX_CLASSES = 20
#: A training loss above this many times its starting value (or non-finite) is divergence.
DIVERGENCE_FACTOR = 1e6
#: Iteration limits when --epochs is not given: first-order epochs, Newton and L-BFGS steps.
DEFAULT_EPOCHS = {"first-order": 100, "newton": 100, "lbfgs": 1000}
DEFAULT_LR = 0.01
#: Newton's method forms the dense Hessian up to this many parameters, else uses Newton-CG.
DENSE_NEWTON_MAX_PARAMS = 2000
DEFAULT_BATCH = 32


def _first_order_names() -> list[str]:
    from symgrad.optim import OPTIMIZERS

    return sorted(OPTIMIZERS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` flags to ``parser``."""
    from symgrad.datasets import BUNDLED

    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="a .csv file (numeric, optional header), an .npz file with arrays X and y, "
        f"or a scikit-learn bundled dataset: {', '.join(BUNDLED)}; with --scheduler, a "
        "parquet or CSV glob, a .zarr array, an npy stack folder or a glob of .npy files",
    )
    data.add_argument(
        "--label",
        metavar="COLUMN",
        help="label column: a name or an index (an index for arrays; default: last)",
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
        help="do not scale features (nor an mlp's regression targets) to zero mean and unit "
        "variance",
    )
    _model_arguments(parser.add_argument_group("model"))
    _fit_arguments(parser.add_argument_group("optimization"))
    cluster = parser.add_argument_group("dask (full-batch on a cluster)")
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="fit on a Dask cluster: tcp://host:8786, or 'local' for a LocalCluster; the data "
        "(see --data) is then read in row blocks on the workers and never gathered",
    )
    cluster.add_argument(
        "--solver",
        choices=("newton", "lbfgs", "newton_cg", "gd"),
        help="full-batch solver with --scheduler (default: --optimizer if newton or lbfgs, "
        "else lbfgs; --epochs caps its iterations)",
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


def _model_arguments(model: Any) -> None:
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
        default="100",
        metavar="SIZES",
        help="mlp hidden layer sizes, e.g. 64,32 (default 100, as scikit-learn's MLP)",
    )
    model.add_argument(
        "--regularizer",
        metavar="NAME",
        help="l1, l2, elastic_net, none, or FILE.py:NAME (default: l2 with lam=1/n_train for "
        "logistic and softmax, scikit-learn's C=1; none otherwise)",
    )
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


def _fit_arguments(fitting: Any) -> None:
    fitting.add_argument(
        "--optimizer",
        default="auto",
        metavar="NAME",
        help="newton (Newton's method with a line search, full batch), lbfgs (scipy's "
        f"L-BFGS-B, full batch), or a first-order optimizer: {', '.join(_first_order_names())}. "
        "Default auto: newton for linear, logistic and softmax (lbfgs for a linear model "
        "whose loss has no curvature at the start, such as l1), adam for mlp",
    )
    fitting.add_argument(
        "--lr",
        type=float,
        help=f"learning rate of first-order optimizers (default {DEFAULT_LR}); for newton, a "
        "fixed step length (default: full steps with a backtracking line search); not used "
        "by lbfgs",
    )
    fitting.add_argument(
        "--epochs",
        type=int,
        help=f"passes over the data for first-order optimizers (default "
        f"{DEFAULT_EPOCHS['first-order']}); at most this many iterations for newton "
        f"(default {DEFAULT_EPOCHS['newton']}) and lbfgs (default {DEFAULT_EPOCHS['lbfgs']}), "
        "which stop once converged",
    )
    fitting.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"mini-batch size of first-order optimizers (default {DEFAULT_BATCH}; 0 for full "
        "batch); newton and lbfgs always use the full batch",
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


# --------------------------------------------------------------------------- data


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


@dataclass(frozen=True)
class Targets:
    """The affine map from original regression targets to the ones the model learns.

    The default (no ``scale``) is the identity: class labels and linear-model targets pass
    through unchanged.
    """

    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def fitted(cls, y: np.ndarray) -> Targets:
        """Return the map to zero mean and unit variance (per output) of ``y``."""
        scale = np.asarray(y.std(axis=0))
        return cls(np.asarray(y.mean(axis=0)), np.where(scale > 0, scale, 1.0))

    @property
    def scaled(self) -> bool:
        """Return True unless this is the identity."""
        return self.scale is not None

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Return ``y`` on the model's scale."""
        return y if self.scale is None else (y - self.mean) / self.scale

    def inverse(self, pred: np.ndarray) -> np.ndarray:
        """Return model outputs in the original units."""
        return pred if self.scale is None else pred * self.scale + self.mean


# --------------------------------------------------------------------------- model


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


def _loss_info(loss: Any) -> tuple[str, bool, str | None]:
    """Return (name, class axis?, link) of a built-in loss name (from KERNELS) or a user spec."""
    if not isinstance(loss, str):
        return loss.name, loss.class_axis, loss.meta.get("link")
    from symgrad.kernels import builtins

    found = builtins("loss")
    if loss not in found:
        raise TrainError(f"unknown loss {loss!r}; choose one of: {', '.join(sorted(found))}")
    return loss, found[loss].class_axis, found[loss].link


@dataclass
class Built:
    """A model ready to fit, with its kind, task and the label values behind class indices."""

    model: Any
    kind: str
    task: str
    classes: np.ndarray | None
    init: Any


def _regularizer(args: argparse.Namespace, hyper: dict[str, float], kind: str, n: int) -> Any:
    """Return the regularizer choice: the flags', else scikit-learn's C=1 L2 for classifiers."""
    name = args.regularizer
    if name is not None and name.lower() == "none":
        if hyper:
            raise TrainError(
                "--lam and regularizer.* parameters need a --regularizer other than none"
            )
        return None
    if name is None:
        if hyper:
            raise TrainError("--lam and regularizer.* parameters need --regularizer")
        return ("l2", {"lam": 1.0 / n}) if kind in ("logistic", "softmax") else None
    return _choice(_kernel("regularizer", name), hyper)


def build(args: argparse.Namespace, y: np.ndarray, n_features: int, n_train: int) -> Built:
    """Return the model the flags describe, its initial parameters, task and classes."""
    task, classes = _task(y)
    kind = args.model
    if kind == "auto":
        kind = "linear" if task == "regress" else ("logistic" if len(classes) == 2 else "softmax")
    hyper = _params(args.param, args.lam)
    reg = _regularizer(args, hyper["regularizer"], kind, n_train)
    if kind in ("logistic", "softmax"):
        return _classifier(args, kind, classes, reg, n_features)
    loss = _kernel("loss", args.loss)
    if kind == "linear":
        from symgrad import models

        model = models.LinearRegression(loss=_choice(loss or "mse", hyper["loss"]), regularizer=reg)
        n_out = y.shape[1] if y.ndim == 2 else None
        init = model.init(args.seed, n_features=n_features, n_outputs=n_out)
        return Built(model, kind, "regress", None, init)
    return _mlp(args, loss, hyper, reg, y, classes=classes, n_features=n_features)


def _classifier(
    args: argparse.Namespace, kind: str, classes: np.ndarray | None, reg: Any, n_features: int
) -> Built:
    from symgrad import models

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
    return Built(model, kind, "classify", classes, model.init(args.seed, n_features=n_features))


def _mlp(
    args: argparse.Namespace,
    loss: Any,
    hyper: dict[str, dict[str, float]],
    reg: Any,
    y: np.ndarray,
    *,
    classes: np.ndarray | None,
    n_features: int,
) -> Built:
    from symgrad import models

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
    name, class_axis, link = _loss_info(loss)
    if class_axis or link == "sigmoid":  # a loss on logits: its targets are classes
        if classes is None:
            raise TrainError(f"loss {name!r} needs integer class labels")
        width, task = (len(classes) if class_axis else 1), "classify"
    else:
        width, task, classes = (y.shape[1] if y.ndim == 2 else 1), "regress", None
    activation = _choice(_kernel("activation", args.activation), hyper["activation"])
    model = models.MLP([n_features, *hidden, width], activation, _choice(loss, hyper["loss"]), reg)
    return Built(model, "mlp", task, classes, model.init(args.seed))


def _encode(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    return y if classes is None else np.searchsorted(classes, y)


# --------------------------------------------------------------------------- solver


@dataclass(frozen=True)
class Solver:
    """The optimizer the flags chose, with its iteration limit, step length and batch size."""

    name: str
    epochs: int
    lr: float | None
    batch_size: int | None

    @property
    def second_order(self) -> bool:
        """Return True for the full-batch solvers run to convergence (newton, lbfgs)."""
        return self.name in SECOND_ORDER

    def describe(self) -> str:
        """Return the ``fit`` status line's text."""
        if self.name == "lbfgs":
            return f"lbfgs (scipy L-BFGS-B, full batch), at most {self.epochs} iterations"
        if self.name == "newton":
            step = "line search" if self.lr is None else f"fixed step {self.lr:g}"
            return f"newton (full batch, {step}), at most {self.epochs} iterations"
        return f"{self.name}(lr={self.lr}), {self.epochs} epochs, batch size {self.batch_size or 'full'}"


def _solver_name(args: argparse.Namespace, built: Built, X: np.ndarray, y: np.ndarray) -> str:
    name = args.optimizer.lower()
    has_scipy = importlib.util.find_spec("scipy") is not None
    if name == "auto":  # the one policy, from the kernels' facts (never a Hessian)
        from symgrad.solvers import choose

        chosen = choose(built.model, X, y, params=built.init)
        if chosen == "lbfgs" and has_scipy:
            return "lbfgs"
        return "adam" if chosen == "adam" else "newton"
    if name not in (*SECOND_ORDER, *_first_order_names()):
        choices = ", ".join(["auto", *SECOND_ORDER, *_first_order_names()])
        raise TrainError(f"unknown optimizer {args.optimizer!r}; choose one of: {choices}")
    if name == "lbfgs" and not has_scipy:
        raise TrainError("--optimizer lbfgs needs scipy (pip install scipy)")
    return name


def choose_solver(args: argparse.Namespace, built: Built, X: np.ndarray, y: np.ndarray) -> Solver:
    """Return the solver for ``--optimizer`` (auto: second order for convex models)."""
    name = _solver_name(args, built, X, y)
    if args.epochs is not None and args.epochs < 1:
        raise TrainError(f"--epochs must be at least 1, got {args.epochs}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise TrainError(f"--lr must be a positive number, got {args.lr}")
    if name in SECOND_ORDER:
        if args.batch_size not in (None, 0):
            raise TrainError(
                f"--batch-size applies to first-order optimizers; {name} uses full batches"
            )
        if name == "lbfgs" and args.lr is not None:
            raise TrainError("--lr does not apply to lbfgs (it finds its own step lengths)")
        epochs = args.epochs or DEFAULT_EPOCHS[name]
        return Solver(name, epochs, args.lr, None)
    batch = DEFAULT_BATCH if args.batch_size is None else args.batch_size
    if batch < 0:
        raise TrainError(f"--batch-size must be 0 (full batch) or more, got {batch}")
    epochs = args.epochs or DEFAULT_EPOCHS["first-order"]
    return Solver(name, epochs, DEFAULT_LR if args.lr is None else args.lr, batch or None)


# --------------------------------------------------------------------------- fitting


class Guard:
    """A fit callback that stops on divergence (loss far above its start) or a stalled Newton step."""

    def __init__(self, start_loss: float) -> None:
        self.start = start_loss
        self.limit = DIVERGENCE_FACTOR * max(abs(start_loss), 1e-6)
        self.diverged: str | None = None
        self.stalled = False

    def __call__(self, epoch: int, info: Any) -> bool:
        loss = info.history.loss[-1]
        if not loss <= self.limit:
            self.diverged = f"the loss grew from {self.start:.4g} to {loss:.4g} by epoch {epoch}"
            return True
        if getattr(info.opt_state, "step_size", None) == 0.0:
            self.stalled = True  # no step decreases the loss: converged to round-off
            return True
        return False


@contextmanager
def quiet_numpy() -> Iterator[None]:
    """Silence numpy's floating-point warnings: non-finite results are reported as divergence."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _fit(plan: Plan, guard: Guard, progress: bool | None) -> Any:
    """Run the chosen solver on the plan's training data; return the FitResult."""
    from symgrad import optim
    from symgrad.fit import fit

    model, solver = plan.built.model, plan.solver
    X, y = plan.parts.X, plan.y
    validation = None if plan.y_val is None else (plan.parts.X_val, plan.y_val)
    if solver.name == "lbfgs":
        from symgrad.lbfgs import fit_lbfgs

        return fit_lbfgs(
            model, plan.built.init, X, y, max_iter=solver.epochs, validation=validation,
            callbacks=[guard],
        )  # fmt: skip
    kwargs: dict[str, Any] = dict(validation=validation, progress=progress, callbacks=[guard])
    if solver.name == "newton":
        opt, tol = _newton(plan), 1e-9 * max(1.0, _grad_norm(model, plan.built.init, X, y))
        kwargs |= dict(tol=tol)
    else:
        opt = optim.get(solver.name, lr=solver.lr)
        kwargs |= dict(batch_size=solver.batch_size, seed=plan.seed)
    return fit(
        model.objective, plan.built.init, X, y, optimizer=opt, epochs=solver.epochs,
        on_non_finite="stop", **kwargs,
    )  # fmt: skip


def _grad_norm(model: Any, params: Any, X: np.ndarray, y: np.ndarray) -> float:
    from symgrad.models import flatten

    return float(np.linalg.norm(flatten(model.objective(params, X, y)[1])))


def _newton(plan: Plan) -> Any:
    """Dense Newton for small linear and logistic models, else Newton-CG (Hessian-free).

    A softmax's Hessian is singular (shifting every class's intercept changes nothing), which
    conjugate gradients handle at the cost of a few products with ``X``, where a dense solve
    needs an eigendecomposition per step.
    """
    from symgrad.models import flatten
    from symgrad.newton import newton, newton_cg

    model, X, y, lr = plan.built.model, plan.parts.X, plan.y, plan.solver.lr

    def objective(p: Any) -> Any:
        return model.objective(p, X, y)

    watch = objective if lr is None else None
    small = flatten(plan.built.init).size <= DENSE_NEWTON_MAX_PARAMS
    if plan.built.kind in ("linear", "logistic") and small:
        return newton(lambda p: model.hessian(p, X, y), lr=lr or 1.0, objective=watch)
    return newton_cg(lambda p: model.hvp_operator(p, X, y), lr=lr or 1.0, objective=watch)


# --------------------------------------------------------------------------- metrics


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Return R^2 per output, averaged uniformly (scikit-learn's ``r2_score`` default)."""
    y2, p2 = y.reshape(len(y), -1), pred.reshape(len(y), -1)
    ss_res = np.sum((y2 - p2) ** 2, axis=0)
    ss_tot = np.sum((y2 - y2.mean(axis=0)) ** 2, axis=0)
    if np.any(ss_tot == 0):
        return float("nan")
    return float(np.mean(1 - ss_res / ss_tot))


def metrics(plan: Plan, params: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return the objective and accuracy (classifiers) or RMSE and R^2 (regressors).

    ``y`` is in original units (class indices for classifiers); regression predictions are
    mapped back through the target scaling before RMSE and R^2.
    """
    model = plan.built.model
    target = plan.target
    out = {"loss": float(model.objective(params, X, target.forward(y))[0])}
    pred = np.asarray(model.predict(params, X))
    if plan.built.task == "classify":
        out["accuracy"] = float(np.mean(pred == y))
    else:
        pred = target.inverse(pred.reshape(y.shape))
        out["rmse"] = float(np.sqrt(np.mean((pred - y) ** 2)))
        out["r2"] = r2_score(y, pred)
    return out


# --------------------------------------------------------------------------- output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(text: str, flag: str) -> Path:
    """Return ``text`` as a path to write, or raise TrainError if it cannot be a regular file."""
    if not text.strip():
        raise TrainError(f"{flag} {text!r}: empty file name")
    path, name = Path(text), text
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise TrainError(f"{name}: is a directory, expected a file name")
    if path.is_symlink() and not path.exists():
        raise TrainError(f"{name}: is a dangling symbolic link")
    if path.exists():
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise TrainError(f"{name}: is not a regular file (a device, FIFO or socket)")
        if not os.access(path, os.W_OK):
            raise TrainError(f"{name}: is read-only")
        path_dir = path.resolve().parent
    else:
        path_dir = path.parent if str(path.parent) else Path(".")
    if not path_dir.is_dir():
        raise TrainError(f"{name}: folder {path_dir.as_posix()} does not exist")
    if not os.access(path_dir, os.W_OK | os.X_OK):
        raise TrainError(f"{name}: folder {path_dir.as_posix()} is not writable")
    return path


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file renamed over ``path`` (a symlink's target).

    The file gets the mode of the file it replaces, or the usual ``0o666 & ~umask``.
    """
    target = path.resolve() if path.is_symlink() else path
    mode = stat.S_IMODE(os.stat(target).st_mode) if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
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
    try:
        write_atomic(path, lambda fh: fig.savefig(fh, format="png"))
    finally:
        plt.close(fig)
    return True


# --------------------------------------------------------------------------- the command


@dataclass
class Plan:
    """Everything ``run`` prepared before training: data, model, solver and output paths."""

    name: str
    n_samples: int
    parts: Split
    built: Built
    y: np.ndarray
    y_val: np.ndarray | None
    target: Targets
    solver: Solver
    seed: int
    out: Path
    png: Path | None


def _outputs(args: argparse.Namespace) -> tuple[Path, Path | None]:
    out = check_output(args.output, "-o")
    if args.no_plot:
        return out, None
    png = check_output(args.plot, "--plot") if args.plot else out.with_name(f"{out.stem}_loss.png")
    if not args.plot:
        check_output(str(png), "--plot")
    if png.resolve() == out.resolve():
        raise TrainError(f"{png.as_posix()}: the parameters and the loss curve need two files")
    return out, png


def prepare(args: argparse.Namespace) -> Plan:
    """Check the flags and outputs, load and split the data, build the model and solver."""
    from symgrad.datasets import load

    out, png = _outputs(args)
    data = load(args.data, args.label)
    parts = split(data.X, data.y, args.val_fraction, args.seed, args.standardize)
    built = build(args, data.y, data.X.shape[1], len(parts.X))
    y = _encode(parts.y, built.classes)
    y_val = None if parts.y_val is None else _encode(parts.y_val, built.classes)
    target = Targets()
    if built.kind == "mlp" and built.task == "regress" and args.standardize:
        target = Targets.fitted(y)
    built.model.objective(built.init, parts.X[:2], target.forward(y[:2]))  # shape problems
    solver = choose_solver(args, built, parts.X, target.forward(y))
    y_fit = target.forward(y)
    y_val_fit = None if y_val is None else target.forward(y_val)
    return Plan(
        data.name, len(data.X), parts, built, y_fit, y_val_fit, target, solver, args.seed, out, png
    )


def _announce(plan: Plan) -> None:
    classes = plan.built.classes
    n_val = 0 if plan.parts.X_val is None else len(plan.parts.X_val)
    what = f"{len(classes)} classes" if classes is not None else "regression"
    say(
        f"data   {plan.name}: {plan.n_samples} samples, {plan.parts.X.shape[1]} features, "
        f"{what} ({len(plan.parts.X)} train / {n_val} validation)"
    )
    scaled = " (targets standardized)" if plan.target.scaled else ""
    say(f"model  {plan.built.model!r}{scaled}")
    say(f"fit    {plan.solver.describe()}")


def _table(plan: Plan, result: Any, guard: Guard, seconds: float) -> tuple[list[str], str | None]:
    """Return the report lines, or a divergence reason when a metric is not finite."""
    unscale = plan.target.inverse
    y = plan.y if plan.built.task == "classify" else unscale(plan.y)
    train_m = metrics(plan, result.params, plan.parts.X, y)
    val_m = {}
    if plan.y_val is not None:
        y_val = plan.y_val if plan.built.task == "classify" else unscale(plan.y_val)
        val_m = metrics(plan, result.params, plan.parts.X_val, y_val)
    bad = [k for k, v in (train_m | val_m).items() if not math.isfinite(v) and k != "r2"]
    if bad:
        return [], f"the final {bad[0]} is not finite"
    if plan.solver.second_order:
        done = f"stopped after {result.n_epochs} iterations, {seconds:.2f} s: "
    else:
        done = f"stopped after {result.n_epochs} epochs, {result.n_steps} steps, {seconds:.2f} s: "
    why = result.message
    if guard.stalled:
        why = "converged: no step decreases the loss further"
    elif plan.solver.name == "newton" and result.stop_reason == "tol":
        why = f"converged: gradient norm {result.history.grad_norm[-1]:.3g}"
    elif plan.solver.second_order and result.stop_reason == "epochs":
        why = f"not converged within {plan.solver.epochs} iterations (raise --epochs)"
    lines = [done + (why or result.stop_reason), f"{'metric':<10} {'train':>12} {'validation':>12}"]
    for key, value in train_m.items():
        other = f"{val_m[key]:>12.6g}" if key in val_m else f"{'-':>12}"
        lines.append(f"{key:<10} {value:>12.6g} {other}")
    return lines, None


def _save(plan: Plan, result: Any) -> None:
    arrays = {k: np.asarray(v) for k, v in result.params.items()}
    arrays |= {"x_mean": plan.parts.mean, "x_scale": plan.parts.scale}
    if plan.target.scaled:
        arrays |= {"y_mean": plan.target.mean, "y_scale": plan.target.scale}
    if plan.built.classes is not None:
        arrays["classes"] = plan.built.classes
    write_atomic(plan.out, lambda fh: np.savez(fh, **arrays))
    say(f"wrote {plan.out.as_posix()}")
    if plan.png is None:
        return
    title = f"{plan.name}: {type(plan.built.model).__name__}, {plan.solver.name}"
    if plot(result.history, plan.png, title):
        say(f"wrote {plan.png.as_posix()}")
    else:
        say("no loss curve: matplotlib is not installed (pip install matplotlib)")


def run(args: argparse.Namespace) -> int:
    """Run ``symgrad train`` and return its exit code."""
    if getattr(args, "scheduler", None):
        from symgrad.cli.train_dask import run as run_dask

        return run_dask(args)
    with quiet_numpy():
        try:
            plan = prepare(args)
        except (SymgradError, ValueError, TypeError) as exc:
            return error(str(exc))
        _announce(plan)
        start_loss = float(plan.built.model.objective(plan.built.init, plan.parts.X, plan.y)[0])
        guard = Guard(start_loss)
        start = time.perf_counter()
        result = _fit(plan, guard, args.progress)
        seconds = time.perf_counter() - start
        lines, bad = _table(plan, result, guard, seconds)
    reason = guard.diverged
    if reason is None and result.stop_reason == "non_finite":
        reason = result.message.split(";")[0]
    reason = reason or bad
    if reason is not None:
        hint = "a smaller --lr" if plan.solver.lr is not None else "--regularizer l2"
        return diverged(f"{reason}; try {hint}")
    print("\n".join(lines), flush=True)
    try:
        _save(plan, result)
    except OSError as exc:
        return error(f"{exc.filename or plan.out}: cannot write: {exc.strerror or exc}")
    return EXIT_OK
