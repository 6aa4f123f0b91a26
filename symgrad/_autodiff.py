"""What an autodiff adapter (symgrad.torch, symgrad.jax) takes from a kernel: its emitted value,
first- and second-derivative functions with the hyper-parameters bound, read from the
``KERNELS`` table. The adapters wrap these; they hold no maths of their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from symgrad.domains import require
from symgrad.kernels import BUILTIN_MODULES, builtins, is_spec, resolve
from symgrad.losses import LABEL_LOSSES


@dataclass(frozen=True)
class Pieces:
    """A kernel's emitted functions, as an adapter calls them, hyper-parameters bound.

    - ``value(x, *rest)``: the kernel (a number for a loss or regularizer, f(x) for an
      activation);
    - ``grad(x, *rest)``: dL/dx (the mean's 1/n included), or f'(x) element-wise; None for a
      class-axis activation, which has ``vjp(x, v)`` = J(x)^T v instead;
    - ``second(x, *rest, w)``: the vector-Jacobian product of ``grad`` (H w, the Hessian being
      symmetric), from ``name_hess`` (a diagonal) or ``name_hvp`` (class axis); None when the
      kernel emits no second derivative;
    - ``check(x, *rest)``: raise a one-line ValueError naming the argument unless a loss's
      targets are finite and lie in their declared domain (as boosting and the estimators
      check labels; the emitted functions check shapes and dtypes themselves).
    """

    name: str
    role: str
    value: Callable[..., Any]
    grad: Callable[..., np.ndarray] | None
    vjp: Callable[..., np.ndarray] | None
    second: Callable[..., np.ndarray] | None
    check: Callable[..., None]

    @property
    def scalar(self) -> bool:
        """Tell whether the kernel returns one number (a loss or a regularizer)."""
        return self.role != "activation"


def _role(kernel: Any, role: str | None) -> str:
    """Return the role of ``kernel`` (a built-in name, a Spec, or either paired with hyper)."""
    choice = kernel[0] if isinstance(kernel, tuple) and kernel else kernel
    if role is not None:
        if role not in BUILTIN_MODULES:
            raise ValueError(f"role must be one of {', '.join(BUILTIN_MODULES)}, got {role!r}")
        return role
    if is_spec(choice):
        return choice.role
    if not isinstance(choice, str):
        raise TypeError(
            "kernel must be a built-in name, a symgrad Spec or a (name_or_spec, {hyper}) pair; "
            f"got {type(choice).__name__}"
        )
    found = [r for r in BUILTIN_MODULES if choice in builtins(r)]
    if len(found) > 1:
        raise ValueError(
            f"{choice!r} is a built-in {' and a '.join(found)}; pass role= to say which"
        )
    if not found:
        known = sorted({n for r in BUILTIN_MODULES for n in builtins(r)})
        raise ValueError(f"unknown kernel {choice!r}; choose one of: {', '.join(known)}")
    return found[0]


def pieces(kernel: Any, role: str | None = None, **hyper: float) -> Pieces:
    """Return the emitted functions of ``kernel`` (a built-in name, a user's Spec, compiled on
    first use, or a (name_or_spec, {hyper}) pair) with ``hyper`` bound."""
    role = _role(kernel, role)
    if isinstance(kernel, tuple):
        kernel, hyper = kernel[0], {**dict(kernel[1]), **hyper}
    info, module, bound, _ = resolve(role, (kernel, hyper))

    def emitted(suffix: str) -> Callable[..., Any] | None:
        fn = f"{info.name}{suffix}"
        return partial(getattr(module, fn), **bound) if fn in info.functions else None

    second = emitted("_hvp") if info.class_axis else None
    if second is None and (hess := emitted("_hess")) is not None:
        second = partial(_diagonal, hess)
    vjp = emitted("_vjp") if role == "activation" and info.class_axis else None
    grad = None if vjp is not None else emitted("_grad")
    check = partial(_check_targets, info) if role == "loss" else _nothing
    return Pieces(info.name, role, emitted(""), grad, vjp, None if vjp else second, check)


def _nothing(*arrays: Any) -> None:
    """Check nothing: an activation's or regularizer's input is any real array."""


def _check_targets(info: Any, yhat: Any, *targets: Any) -> None:
    """Raise unless each target of loss ``info`` is finite and in its declared domain; integer
    class labels (shape ``yhat.shape[:-1]``, for the label losses) are checked by one_hot."""
    for name, y in zip(info.inputs[1:], targets, strict=False):
        labels = info.name in LABEL_LOSSES and np.ndim(y) == np.ndim(yhat) - 1
        if not labels and np.asarray(y).dtype.kind in "biuf":  # other dtypes: the kernel says
            require(info.domains.get(name, "real"), y, f"{info.name}: {name}")


def _diagonal(hess: Callable[..., np.ndarray], *arrays: Any) -> np.ndarray:
    """Return diag(H) * w for ``arrays`` = (x, *rest, w), from an emitted diagonal Hessian."""
    return hess(*arrays[:-1]) * arrays[-1]
