"""Kernel resolution for the models: built-in names, user specs and compositions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

from symgrad.kernels import KernelInfo, builtins, compiled, resolve
from symgrad.models._protocol import KernelChoice


@dataclass(frozen=True)
class _Kernel:
    """Hold a resolved kernel: its facts, its functions with hyper-parameters bound, its name."""

    spec: KernelInfo
    fn: Callable[..., Any]
    grad: Callable[..., Any] | None = None
    builtin: bool = False
    hyper: dict[str, float] = field(default_factory=dict)
    #: Second derivative: ``name_hess`` (element-wise), or ``name_hvp`` for class-axis losses.
    hess: Callable[..., Any] | None = None
    #: Where the kernel comes from, to find its Array API twin: ``(role, None)`` built in,
    #: ``(role, (spec,))`` a user's spec, ``("compose", loss, act)`` a fused output + loss.
    origin: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        """Return the kernel's name."""
        return self.spec.name


def kernel_spec(role: str, choice: KernelChoice) -> tuple[KernelInfo, dict[str, float], Any]:
    """Return (kernel facts, hyper-parameters, the user's spec or None) for a kernel choice."""
    spec, _, hyper, user = resolve(role, choice)
    return spec, hyper, user


def _resolve_activation(choice: KernelChoice, *, elementwise: bool = True) -> _Kernel:
    """Resolve an activation; with ``elementwise`` reject class-axis ones (they have no f')."""
    spec, module, hyper, user = resolve("activation", choice)
    if elementwise and spec.class_axis:
        raise ValueError(
            f"activation {spec.name!r} works over the class axis; hidden layers need an "
            "element-wise activation"
        )
    grad = None if spec.class_axis else partial(getattr(module, f"{spec.name}_grad"), **hyper)
    hess = None if spec.class_axis else _optional(module, f"{spec.name}_hess", hyper)
    fn = partial(getattr(module, spec.name), **hyper)
    return _Kernel(spec, fn, grad, user is None, hyper, hess, _origin("activation", user))


def _origin(role: str, user: Any) -> tuple[Any, ...]:
    """Return a kernel's origin (see ``_Kernel.origin``): built in, or the user's spec."""
    return (role, None if user is None else (user,))


def _optional(module: ModuleType, name: str, hyper: Mapping[str, float]) -> Callable | None:
    """Return ``module.name`` with ``hyper`` bound, or None if the module does not emit it."""
    fn = getattr(module, name, None)
    return None if fn is None else partial(fn, **hyper)


def _resolve_regularizer(choice: KernelChoice | None) -> _Kernel | None:
    """Resolve a regularizer (``None`` for none)."""
    if choice is None:
        return None
    spec, module, hyper, user = resolve("regularizer", choice)
    fn = partial(getattr(module, spec.name), **hyper)
    grad = partial(getattr(module, f"{spec.name}_grad"), **hyper)
    hess = _optional(module, f"{spec.name}_hess", hyper)
    return _Kernel(spec, fn, grad, user is None, hyper, hess, _origin("regularizer", user))


def _resolve_loss(choice: KernelChoice, output: KernelChoice | None = None) -> _Kernel:
    """Resolve a loss to its ``value_and_grad``; with ``output``, fuse it via compose first."""
    spec, module, hyper, user = resolve("loss", choice)
    builtin, origin = user is None, _origin("loss", user)
    if len(spec.inputs) != 2:
        raise ValueError(
            f"loss {spec.name!r} takes {len(spec.inputs)} array input(s); "
            "a model's loss takes exactly two, (yhat, y)"
        )
    if output is not None:
        act, _, act_hyper, act_user = resolve("activation", output)
        key = ("compose", user or spec.name, act_user or act.name)
        spec, module, names = _composed(*key[1:])
        hyper |= {names[k]: v for k, v in act_hyper.items()}
        builtin, origin = False, key
    fn = partial(getattr(module, f"{spec.name}_value_and_grad"), **hyper)
    second = f"{spec.name}_hvp" if spec.class_axis else f"{spec.name}_hess"
    return _Kernel(spec, fn, None, builtin, hyper, _optional(module, second, hyper), origin)


def _composed(loss: Any, act: Any) -> tuple[KernelInfo, ModuleType, dict[str, str]]:
    """Compile ``loss(act(z))`` (built-in names or specs); map act's hyper-parameter names."""
    info, module = compiled(loss, output=act)
    act_info = builtins("activation").get(act) if isinstance(act, str) else None
    act_names = list(act_info.hyper_defaults) if act_info else [s.name for s, _ in act.hyper]
    # compose() appends the activation's hyper-parameters, renaming those that clash
    renamed = list(info.hyper_defaults)[len(info.hyper_defaults) - len(act_names) :]
    return info, module, dict(zip(act_names, renamed, strict=True))
