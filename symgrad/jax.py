"""Use a symgrad kernel inside JAX: ``jax.grad`` runs the emitted gradient, and a second
reverse pass (``jax.grad`` of a gradient, ``jax.jacrev(jax.grad(f))``) the emitted Hessian.

    import jax, symgrad.jax
    huber = symgrad.jax.custom_vjp("huber", delta=2.0)
    g = jax.grad(huber)(yhat, y)

The emitted numpy functions run through ``jax.pure_callback`` under ``jax.custom_vjp``, so the
result works under ``jax.jit`` and ``jax.vmap`` (one call per mapped element); forward mode
(``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) is not defined for a custom VJP. jax is imported
here, never by ``import symgrad``; install it yourself (``symgrad[jax]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from symgrad._autodiff import Pieces, pieces

__all__ = ["custom_vjp"]


def _call(fn: Callable[..., Any], like: Any, *args: Any, shape: tuple[int, ...] | None = None):
    """Return ``fn(*args)`` run on numpy through ``jax.pure_callback``, with ``like``'s dtype
    (and ``shape``, default ``like``'s)."""
    dtype = jnp.result_type(like)
    out = jax.ShapeDtypeStruct(like.shape if shape is None else shape, dtype)
    host = lambda *a: np.asarray(fn(*a), dtype=dtype)  # noqa: E731
    return jax.pure_callback(host, out, *args, vmap_method="sequential")


def custom_vjp(kernel: Any, *, role: str | None = None, **hyper: float) -> Callable[..., Any]:
    """Return ``kernel`` as a JAX function, ``f(x)`` (an activation or regularizer) or
    ``f(yhat, y)`` (a loss; ``y`` gets a zero cotangent), whose VJP is the emitted gradient
    (``name_vjp`` for softmax) and whose gradient's VJP is ``name_hess`` or ``name_hvp``.

    ``kernel`` is a built-in name, a user's Spec or a (name_or_spec, {hyper}) pair; ``role``
    picks between kernels of the same name (``l1`` is a loss and a regularizer).
    """
    p = pieces(kernel, role, **hyper)
    derivative = None if p.grad is None else _derivative(p)
    scalar = () if p.scalar else None

    @jax.custom_vjp
    def f(x, *rest):
        return _call(p.value, x, x, *rest, shape=scalar)

    def forward(x, *rest):
        return f(x, *rest), (x, rest)

    def backward(saved, v):
        x, rest = saved
        if derivative is None:
            return (_call(p.vjp, x, x, v), *[None] * len(rest))
        return (v * derivative(x, *rest), *[None] * len(rest))

    f.defvjp(forward, backward)
    f.__name__ = f.__qualname__ = p.name
    f.__doc__ = f"symgrad kernel {p.name!r} ({p.role}) with its emitted derivatives."
    return f


def _derivative(p: Pieces) -> Callable[..., Any]:
    """Return ``grad(x, *rest)`` as a JAX function whose VJP is ``second``."""

    @jax.custom_vjp
    def derivative(x, *rest):
        return _call(p.grad, x, x, *rest)

    def forward(x, *rest):
        return derivative(x, *rest), (x, rest)

    def backward(saved, w):
        x, rest = saved
        if p.second is None:
            raise NotImplementedError(f"symgrad kernel {p.name!r} emits no second derivative")
        return (_call(p.second, x, x, *rest, w), *[None] * len(rest))

    derivative.defvjp(forward, backward)
    return derivative
