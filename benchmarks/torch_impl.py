"""The torch column: torch.nn.functional losses on CPU float64, gradients by autograd."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.columns import Factory, Kernel
from benchmarks.workloads import Data


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    """Return a float64 CPU tensor sharing memory with ``a`` (a leaf requiring grad if asked)."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    return t.requires_grad_(grad)


def _value_and_grads(loss_fn, wrt: tuple[torch.Tensor, ...], *args) -> Kernel:
    """Return a kernel giving (loss, d loss / d wrt...) by one backward pass."""

    def kernel() -> tuple:
        loss = loss_fn(*wrt, *args)
        return (loss.detach(), *torch.autograd.grad(loss, wrt))

    return kernel


def _sigmoid_grad(data: Data) -> Kernel:
    x = _t(data["x"], grad=True)
    ones = torch.ones_like(x)

    def kernel() -> tuple:
        return torch.autograd.grad(torch.sigmoid(x), x, grad_outputs=ones)

    return kernel


def _bce_logits(data: Data) -> Kernel:
    z, y = _t(data["z"], grad=True), _t(data["y"])
    return _value_and_grads(F.binary_cross_entropy_with_logits, (z,), y)


def _huber_grad(data: Data) -> Kernel:
    yhat, y, delta = _t(data["yhat"], grad=True), _t(data["y"]), data["delta"]

    def kernel() -> tuple:
        return torch.autograd.grad(F.huber_loss(yhat, y, delta=delta), yhat)

    return kernel


def _softmax_ce(data: Data) -> Kernel:
    z, Y = _t(data["z"], grad=True), _t(data["Y"])
    return _value_and_grads(F.cross_entropy, (z,), Y)


def _logreg(data: Data) -> Kernel:
    w, b = _t(data["w"], grad=True), _t(data["b"], grad=True)
    X, y = _t(data["X"]), _t(data["y"])

    def loss(w, b):
        return F.binary_cross_entropy_with_logits(X @ w + b, y)

    return _value_and_grads(loss, (w, b))


def _mlp(data: Data) -> Kernel:
    params = tuple(_t(data[k], grad=True) for k in ("W0", "b0", "W1", "b1"))
    X, Y = _t(data["X"]), _t(data["Y"])

    def loss(W0, b0, W1, b1):
        return F.cross_entropy(F.relu(X @ W0 + b0) @ W1 + b1, Y)

    return _value_and_grads(loss, params)


def _logreg_hessian(data: Data) -> Kernel:
    w, X, y = _t(data["w"]), _t(data["X"]), _t(data["y"])

    def loss(w):
        return F.binary_cross_entropy_with_logits(X @ w, y)

    return lambda: (torch.autograd.functional.hessian(loss, w),)


FACTORIES: dict[str, Factory] = {
    "sigmoid_grad": _sigmoid_grad,
    "bce_logits": _bce_logits,
    "huber_grad": _huber_grad,
    "softmax_ce": _softmax_ce,
    "logreg": _logreg,
    "mlp": _mlp,
    "logreg_hessian": _logreg_hessian,
}
