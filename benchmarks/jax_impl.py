"""The jax column: idiomatic jax.numpy losses, jax.grad / value_and_grad / hessian under jit (x64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks.columns import Factory, Kernel
from benchmarks.workloads import Data

jax.config.update("jax_enable_x64", True)


def _run(fn, *args) -> Kernel:
    """Return a kernel calling the jitted ``fn`` on device copies of ``args``, flattened."""
    args = tuple(jnp.asarray(a) for a in args)

    def kernel() -> tuple:
        out = jax.block_until_ready(fn(*args))
        return tuple(jax.tree_util.tree_leaves(out))

    return kernel


def bce(z, y):
    """Return the mean BCE on logits, softplus(z) - y z."""
    return jnp.mean(jax.nn.softplus(z) - y * z)


def softmax_ce(z, Y):
    """Return the mean softmax cross-entropy against target rows."""
    return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(z, axis=-1), axis=-1))


def huber(yhat, y, delta):
    """Return the mean Huber loss."""
    r = jnp.abs(yhat - y)
    return jnp.mean(jnp.where(r < delta, 0.5 * r * r, delta * (r - 0.5 * delta)))


def logreg(params, X, y):
    """Return the mean BCE of the linear logits ``X w + b``."""
    w, b = params
    return bce(X @ w + b, y)


def mlp(params, X, Y):
    """Return the softmax cross-entropy of a relu MLP."""
    W0, b0, W1, b1 = params
    return softmax_ce(jax.nn.relu(X @ W0 + b0) @ W1 + b1, Y)


def _sigmoid_grad(data: Data) -> Kernel:
    fn = jax.jit(jax.grad(lambda x: jnp.sum(jax.nn.sigmoid(x))))
    return _run(fn, data["x"])


def _bce_logits(data: Data) -> Kernel:
    return _run(jax.jit(jax.value_and_grad(bce)), data["z"], data["y"])


def _huber_grad(data: Data) -> Kernel:
    delta = data["delta"]
    fn = jax.jit(jax.grad(lambda yhat, y: huber(yhat, y, delta)))
    return _run(fn, data["yhat"], data["y"])


def _softmax_ce(data: Data) -> Kernel:
    return _run(jax.jit(jax.value_and_grad(softmax_ce)), data["z"], data["Y"])


def _logreg(data: Data) -> Kernel:
    fn = jax.jit(jax.value_and_grad(logreg))
    params = (jnp.asarray(data["w"]), jnp.asarray(data["b"]))
    return _run(lambda X, y: fn(params, X, y), data["X"], data["y"])


def _mlp(data: Data) -> Kernel:
    fn = jax.jit(jax.value_and_grad(mlp))
    params = tuple(jnp.asarray(data[k]) for k in ("W0", "b0", "W1", "b1"))
    return _run(lambda X, Y: fn(params, X, Y), data["X"], data["Y"])


def _logreg_hessian(data: Data) -> Kernel:
    fn = jax.jit(jax.hessian(lambda w, X, y: bce(X @ w, y)))
    return _run(fn, data["w"], data["X"], data["y"])


FACTORIES: dict[str, Factory] = {
    "sigmoid_grad": _sigmoid_grad,
    "bce_logits": _bce_logits,
    "huber_grad": _huber_grad,
    "softmax_ce": _softmax_ce,
    "logreg": _logreg,
    "mlp": _mlp,
    "logreg_hessian": _logreg_hessian,
}
