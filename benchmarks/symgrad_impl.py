"""The symgrad column: the emitted built-in kernels and symgrad.models, called as a user would."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

import symgrad.activations as A
import symgrad.losses as L
from benchmarks.workloads import Data
from symgrad.models import MLP, LogisticRegression

Kernel = Callable[[], tuple]


def accepts_out(fn: Callable[..., Any]) -> bool:
    """Tell whether an emitted function takes an ``out=`` buffer."""
    try:
        return "out" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def make_sigmoid_grad(data: Data) -> Kernel:
    """Return ``symgrad.activations.sigmoid_grad`` on the data."""
    x = data["x"]
    return lambda: (A.sigmoid_grad(x),)


def make_bce_logits(data: Data) -> Kernel:
    """Return ``binary_cross_entropy_with_logits_value_and_grad`` on the data."""
    z, y = data["z"], data["y"]
    return lambda: L.binary_cross_entropy_with_logits_value_and_grad(z, y)


def make_huber_grad(data: Data) -> Kernel:
    """Return ``huber_grad`` on the data."""
    yhat, y, delta = data["yhat"], data["y"], data["delta"]
    return lambda: (L.huber_grad(yhat, y, delta=delta),)


def make_softmax_ce(data: Data) -> Kernel:
    """Return ``softmax_cross_entropy_value_and_grad`` on the data."""
    z, Y = data["z"], data["Y"]
    return lambda: L.softmax_cross_entropy_value_and_grad(z, Y)


def make_logreg(data: Data) -> Kernel:
    """Return ``LogisticRegression().objective`` as (loss, dW, db)."""
    model = LogisticRegression()
    params = {"W": data["w"], "b": data["b"]}
    X, y = data["X"], data["y"]

    def objective() -> tuple:
        loss, grads = model.objective(params, X, y)
        return loss, grads["W"], grads["b"]

    return objective


def make_mlp(data: Data) -> Kernel:
    """Return ``MLP(sizes, "relu", "softmax_cross_entropy").objective`` as (loss, dW0, ...)."""
    X, Y = data["X"], data["Y"]
    sizes = (X.shape[1], data["W0"].shape[1], data["W1"].shape[1])
    model = MLP(sizes, activation="relu", loss="softmax_cross_entropy")
    params = {key: data[key] for key in ("W0", "b0", "W1", "b1")}

    def objective() -> tuple:
        loss, grads = model.objective(params, X, Y)
        return (loss, *(grads[key] for key in params))

    return objective


def hessian_matrix(result: Any) -> np.ndarray:
    """Return the one matrix in a model Hessian result (an array or a single-entry mapping)."""
    if isinstance(result, dict):
        if len(result) != 1:
            raise ValueError(f"expected one Hessian block, got keys {sorted(result, key=str)}")
        (result,) = result.values()
    return result


def make_logreg_hessian(data: Data) -> Kernel:
    """Return the Hessian: ``LogisticRegression.hessian`` if it exists, else X^T diag(h) X."""
    X, y, w = data["X"], data["y"], data["w"]
    model = LogisticRegression(fit_intercept=False)
    if hasattr(model, "hessian"):
        params = {"W": w}
        return lambda: (hessian_matrix(model.hessian(params, X, y)),)

    def hessian() -> tuple:
        h = L.binary_cross_entropy_with_logits_hess(X @ w, y)  # already divided by n
        return (X.T @ (h[:, None] * X),)

    return hessian


FACTORIES: dict[str, Callable[[Data], Kernel]] = {
    "sigmoid_grad": make_sigmoid_grad,
    "bce_logits": make_bce_logits,
    "huber_grad": make_huber_grad,
    "softmax_ce": make_softmax_ce,
    "logreg": make_logreg,
    "mlp": make_mlp,
    "logreg_hessian": make_logreg_hessian,
}
