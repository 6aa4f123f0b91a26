"""Build the model ``symgrad train``'s flags describe: kind, loss, activation, regularizer and
their hyper-parameters, with the class labels behind class indices."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgrad.data import MAX_CLASSES, label_classes
from symgrad.errors import TrainError


def load_spec(role: str, text: str) -> Any:
    """Return the ``role`` Spec that ``FILE.py:NAME`` or ``module:NAME`` names."""
    if ":" not in text:
        raise TrainError(f"{text!r}: expected FILE.py:NAME or module:NAME for your own spec")
    return _kernel(role, text)


def _kernel(role: str, name: str | None) -> Any:
    """Return a built-in name as is, or the Spec named by ``FILE.py:NAME`` / ``module:NAME``."""
    if name is None:
        return name
    if ":" not in name:
        from symgrad.kernels import builtins

        if name not in builtins(role):
            raise TrainError(
                f"unknown {role} {name!r}; choose one of: {', '.join(sorted(builtins(role)))}; "
                "for your own spec use FILE.py:NAME"
            )
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


def _loss_info(loss: Any) -> tuple[str, bool, str | None]:
    """Return (name, class axis?, link) of a built-in loss name (from KERNELS) or a user spec."""
    if not isinstance(loss, str):
        return loss.name, loss.class_axis, loss.meta.get("link")
    from symgrad.kernels import builtins

    found = builtins("loss")[loss]  # a name _kernel checked
    return loss, found.class_axis, found.link


@dataclass
class Built:
    """A model ready to fit, with its kind, task and the label values behind class indices."""

    model: Any
    kind: str
    task: str
    classes: np.ndarray | None
    init: Any
    #: the kernel choices behind the model, by role (a name, a Spec, or either with hyper-params)
    choices: dict[str, Any] = field(default_factory=dict)


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
    classes = label_classes(y)
    task = "regress" if classes is None else "classify"
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

        loss = _choice(loss or "mse", hyper["loss"])
        model = models.LinearRegression(loss=loss, regularizer=reg)
        n_out = y.shape[1] if y.ndim == 2 else None
        init = model.init(args.seed, n_features=n_features, n_outputs=n_out)
        return Built(model, kind, "regress", None, init, {"loss": loss, "regularizer": reg})
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
        model, loss = models.LogisticRegression(regularizer=reg), "binary_cross_entropy_with_logits"
    else:
        model, loss = (
            models.SoftmaxRegression(len(classes), regularizer=reg),
            "softmax_cross_entropy",
        )
    init = model.init(args.seed, n_features=n_features)
    return Built(model, kind, "classify", classes, init, {"loss": loss, "regularizer": reg})


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
    loss = _choice(loss, hyper["loss"])
    model = models.MLP([n_features, *hidden, width], activation, loss, reg)
    choices = {"loss": loss, "regularizer": reg, "activation": activation}
    return Built(model, "mlp", task, classes, model.init(args.seed), choices)


def encode(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Return class labels as indices into ``classes`` (other targets unchanged)."""
    return y if classes is None else np.searchsorted(classes, y)
