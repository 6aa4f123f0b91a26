"""The HIPS autograd column: autograd.numpy losses, elementwise_grad / value_and_grad / hessian."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
from autograd.scipy.special import expit, logsumexp

from benchmarks.columns import Factory, Kernel
from benchmarks.workloads import Data


def bce(z, y):
    """Return the mean BCE on logits, logaddexp(0, z) - y z."""
    return anp.mean(anp.logaddexp(0.0, z) - y * z)


def softmax_ce(z, Y):
    """Return the mean softmax cross-entropy against target rows."""
    return -anp.mean(anp.sum(Y * (z - logsumexp(z, axis=1, keepdims=True)), axis=1))


def huber(yhat, y, delta):
    """Return the mean Huber loss."""
    r = anp.abs(yhat - y)
    return anp.mean(anp.where(r < delta, 0.5 * r * r, delta * (r - 0.5 * delta)))


def logreg(params, X, y):
    """Return the mean BCE of the linear logits ``X w + b``."""
    w, b = params
    return bce(anp.dot(X, w) + b, y)


def mlp(params, X, Y):
    """Return the softmax cross-entropy of a relu MLP."""
    W0, b0, W1, b1 = params
    return softmax_ce(anp.dot(anp.maximum(anp.dot(X, W0) + b0, 0.0), W1) + b1, Y)


def _flat(value, grads) -> tuple:
    return (value, *grads) if isinstance(grads, tuple | list) else (value, grads)


def _sigmoid_grad(data: Data) -> Kernel:
    fn, x = autograd.elementwise_grad(expit), data["x"]
    return lambda: (fn(x),)


def _bce_logits(data: Data) -> Kernel:
    fn, z, y = autograd.value_and_grad(bce), data["z"], data["y"]
    return lambda: _flat(*fn(z, y))


def _huber_grad(data: Data) -> Kernel:
    fn, yhat, y, delta = autograd.grad(huber), data["yhat"], data["y"], data["delta"]
    return lambda: (fn(yhat, y, delta),)


def _softmax_ce(data: Data) -> Kernel:
    fn, z, Y = autograd.value_and_grad(softmax_ce), data["z"], data["Y"]
    return lambda: _flat(*fn(z, Y))


def _logreg(data: Data) -> Kernel:
    fn, X, y = autograd.value_and_grad(logreg), data["X"], data["y"]
    params = (data["w"], data["b"])
    return lambda: _flat(*fn(params, X, y))


def _mlp(data: Data) -> Kernel:
    fn, X, Y = autograd.value_and_grad(mlp), data["X"], data["Y"]
    params = tuple(data[k] for k in ("W0", "b0", "W1", "b1"))
    return lambda: _flat(*fn(params, X, Y))


def _logreg_hessian(data: Data) -> Kernel:
    X, y, w = data["X"], data["y"], data["w"]
    fn = autograd.hessian(lambda w: bce(anp.dot(X, w), y))
    return lambda: (fn(w),)


FACTORIES: dict[str, Factory] = {
    "sigmoid_grad": _sigmoid_grad,
    "bce_logits": _bce_logits,
    "huber_grad": _huber_grad,
    "softmax_ce": _softmax_ce,
    "logreg": _logreg,
    "mlp": _mlp,
    "logreg_hessian": _logreg_hessian,
}
