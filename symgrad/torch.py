"""Use a symgrad kernel inside torch.autograd: backward is the emitted gradient, and the
double-backward (a Hessian-vector product, ``create_graph=True``) is the emitted Hessian.

    import torch, symgrad.torch
    huber = symgrad.torch.function("huber", delta=2.0)
    loss = huber.apply(yhat, y)          # yhat requires grad; y is data
    loss.backward()

torch is imported here, never by ``import symgrad``; install it yourself (``symgrad[torch]``).
Tensors go through numpy on the CPU (a GPU tensor is copied there and back).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from symgrad._autodiff import Pieces, pieces

__all__ = ["function"]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _tensor(a: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)


def function(kernel: Any, *, role: str | None = None, **hyper: float) -> type:
    """Return a ``torch.autograd.Function`` for ``kernel``: call it as ``F.apply(x)`` (an
    activation or regularizer) or ``F.apply(yhat, y)`` (a loss; ``y`` gets no gradient).

    ``kernel`` is a built-in name, a user's Spec or a (name_or_spec, {hyper}) pair; ``role``
    picks between kernels of the same name (``l1`` is a loss and a regularizer). Its backward is
    ``name_grad`` (``name_vjp`` for softmax); differentiating that backward again
    (``torch.autograd.grad(..., create_graph=True)``, gradgradcheck) uses ``name_hess`` or
    ``name_hvp``. A third derivative is not emitted: asking for one raises.
    """
    p = pieces(kernel, role, **hyper)
    grad = None if p.grad is None else _derivative(p)

    class Kernel(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
            if any(isinstance(r, torch.Tensor) and r.requires_grad for r in rest):
                raise ValueError(
                    f"symgrad.torch.function({p.name!r}): gradients flow to the first input "
                    "only; pass the targets detached (y.detach())"
                )
            ctx.save_for_backward(x, *rest)
            arrays = (_numpy(x), *map(_numpy, rest))
            p.check(*arrays)
            # the kernel's dtype, as on numpy: integer or float16 inputs give float64
            return torch.as_tensor(np.asarray(p.value(*arrays)), device=x.device)

        @staticmethod
        def backward(ctx, v: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            x, *rest = ctx.saved_tensors
            if grad is None:  # class-axis activation: the emitted vjp, once differentiable
                return (_Last.apply(p.vjp, p.name, x, v), *[None] * len(rest))
            return (v * grad.apply(x, *rest), *[None] * len(rest))

    Kernel.__name__ = Kernel.__qualname__ = f"{p.name}_function"
    Kernel.__doc__ = f"symgrad kernel {p.name!r} ({p.role}) as a torch.autograd.Function."
    return Kernel


def _derivative(p: Pieces) -> type:
    """Return the Function computing ``grad(x, *rest)``, whose backward is ``second``."""

    class Derivative(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x, *rest)
            return _tensor(p.grad(_numpy(x), *map(_numpy, rest)), x)

        @staticmethod
        def backward(ctx, w: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            x, *rest = ctx.saved_tensors
            if p.second is None:
                raise RuntimeError(f"symgrad kernel {p.name!r} emits no second derivative")
            return (_Last.apply(p.second, p.name, x, *rest, w), *[None] * len(rest))

    Derivative.__name__ = Derivative.__qualname__ = f"{p.name}_derivative"
    return Derivative


class _Last(torch.autograd.Function):
    """``fn(x, *rest, v)`` from the last derivative a kernel emits (its Hessian, or softmax's
    VJP): differentiating it once more raises, never gives a silent zero."""

    @staticmethod
    def forward(ctx, fn: Any, name: str, x: torch.Tensor, *arrays: torch.Tensor) -> torch.Tensor:
        ctx.name = name
        return _tensor(fn(_numpy(x), *map(_numpy, arrays)), x)

    @staticmethod
    def backward(ctx, w: torch.Tensor) -> tuple[None, ...]:
        raise RuntimeError(f"symgrad kernel {ctx.name!r} emits no higher derivative")
