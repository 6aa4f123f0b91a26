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


def _concrete(*args: Any) -> bool:
    """Tell whether every argument holds values now (no jit, vmap or outer-derivative trace)."""
    return not any(isinstance(a, jax.core.Tracer) for a in args)


def _call(fn: Callable[..., Any], like: Any, *args: Any) -> Any:
    """Return ``fn(*args)`` (a derivative of ``like``'s shape) run on numpy, in ``like``'s
    dtype: directly on values, else through ``jax.pure_callback``."""
    dtype = jnp.result_type(like)
    host = lambda *a: np.asarray(fn(*a), dtype=dtype)  # noqa: E731
    if _concrete(*args):
        return jnp.asarray(host(*map(np.asarray, args)))
    out = jax.ShapeDtypeStruct(like.shape, dtype)
    return jax.pure_callback(host, out, *args, vmap_method="sequential")


def _value(p: Pieces, *args: Any) -> Any:
    """Return the kernel's value on numpy, checked as the numpy kernels check their inputs.

    On values, the emitted function (with ``p.check``) raises its own one-line error. Under a
    trace the shapes and dtypes are checked now, by the emitted function on zeros of the
    traced shapes and dtypes, which also gives the result's shape and dtype (ints and float16
    give float64, as on numpy); the values are checked when the callback runs.
    """

    def host(*a: Any) -> np.ndarray:
        p.check(*a)
        return np.asarray(p.value(*a))

    if _concrete(*args):
        return jnp.asarray(host(*map(np.asarray, args)))
    zeros = [np.broadcast_to(np.zeros((), a.dtype), a.shape) for a in args]
    like = np.asarray(p.value(*zeros))
    dtype = jax.dtypes.canonicalize_dtype(like.dtype)
    out = jax.ShapeDtypeStruct(like.shape, dtype)
    typed = lambda *a: host(*a).astype(dtype)  # noqa: E731
    return jax.pure_callback(typed, out, *args, vmap_method="sequential")


def _inputs(p: Pieces, args: tuple) -> tuple:
    """Return ``args`` as jax arrays; one that is not an array of numbers gets the emitted
    function's own error, naming it (jax's would not)."""
    try:
        return tuple(a if isinstance(a, jax.Array) else jnp.asarray(a) for a in args)
    except TypeError:
        p.value(*map(np.asarray, args))  # raises the kernel's TypeError naming the argument
        raise


def custom_vjp(kernel: Any, *, role: str | None = None, **hyper: float) -> Callable[..., Any]:
    """Return ``kernel`` as a JAX function, ``f(x)`` (an activation or regularizer) or
    ``f(yhat, y)`` (a loss; ``y`` gets a zero cotangent), whose VJP is the emitted gradient
    (``name_vjp`` for softmax) and whose gradient's VJP is ``name_hess`` or ``name_hvp``.

    ``kernel`` is a built-in name, a user's Spec or a (name_or_spec, {hyper}) pair; ``role``
    picks between kernels of the same name (``l1`` is a loss and a regularizer).

    Inputs are checked as the numpy kernels check them: shapes (targets broadcast to ``x``'s
    shape), dtypes (real numbers; ints and float16 compute in float64), a loss's targets
    finite and in their declared domain, and integer class labels in [0, C); each is one
    error naming the argument. Under ``jax.jit`` or ``jax.vmap`` the value checks run in the
    callback, so jax reports them as its runtime error, carrying the same message.
    """
    p = pieces(kernel, role, **hyper)
    derivative = None if p.grad is None else _derivative(p)

    @jax.custom_vjp
    def f(x, *rest):
        return _value(p, x, *rest)

    def forward(x, *rest):
        return f(x, *rest), (x, rest)

    def backward(saved, v):
        x, rest = saved
        if derivative is None:
            return (_call(p.vjp, x, x, v.astype(x.dtype)), *[None] * len(rest))
        return ((v * derivative(x, *rest)).astype(x.dtype), *[None] * len(rest))

    f.defvjp(forward, backward)

    def call(x, *rest):
        return f(*_inputs(p, (x, *rest)))

    call.__name__ = call.__qualname__ = p.name
    call.__doc__ = f"symgrad kernel {p.name!r} ({p.role}) with its emitted derivatives."
    return call


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
