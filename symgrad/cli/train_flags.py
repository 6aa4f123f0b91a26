"""The flags of ``symgrad train`` (shared with ``--scheduler`` runs)."""

from __future__ import annotations

import argparse
from typing import Any

from symgrad.cli.fitting import DEFAULT_BATCH, DEFAULT_EPOCHS, DEFAULT_LR, first_order_names
from symgrad.data import BUNDLED

MODELS = ("auto", "linear", "logistic", "softmax", "mlp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` flags to ``parser``."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="a .csv file (numeric, optional header) or .parquet file, an .npz file with "
        f"arrays X and y, or a scikit-learn bundled dataset: {', '.join(BUNDLED)}; with "
        "--scheduler, a parquet or CSV glob, a .zarr array, an npy stack folder or a glob of "
        ".npy files",
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
        help="fraction held out for validation (default 0.2; 0 for none), in proportion to "
        "each class for classifiers",
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
        default="model.npz",
        metavar="FILE.npz",
        help="where to save the model (default model.npz): parameters, standardization, "
        "feature and label names, kernels, metrics and version, for `symgrad predict`",
    )
    out.add_argument(
        "--plot",
        metavar="FILE.png",
        help="loss-curve PNG (default: FILE_loss.png next to the model)",
    )
    out.add_argument("--no-plot", action="store_true", help="do not write the loss-curve PNG")
    out.add_argument("--force", action="store_true", help="replace output files that already exist")


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
        f"L-BFGS-B, full batch), or a first-order optimizer: {', '.join(first_order_names())}. "
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
