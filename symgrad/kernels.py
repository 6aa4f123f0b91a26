"""The run-time's view of a kernel: its facts from a generated module's ``KERNELS`` table.

Built-in kernels come from the checked-in ``generated/`` modules; a user's spec is compiled on
first use (the only place the run-time reaches the compiler, and only when a spec is passed).
Models, ``train``, ``verify`` and the integrations ask this module, never a list of names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType, ModuleType
from typing import Any

#: role -> the run-time module holding the built-in kernels of that role
BUILTIN_MODULES = {
    "activation": "symgrad.activations",
    "loss": "symgrad.losses",
    "regularizer": "symgrad.regularizers",
}


@dataclass(frozen=True)
class KernelInfo:
    """What one kernel is: read from the ``KERNELS`` table of the module that emitted it."""

    name: str
    role: str
    inputs: tuple[str, ...]
    hyper_defaults: Mapping[str, float]
    class_axis: bool
    functions: tuple[str, ...]
    domains: Mapping[str, str] = field(default_factory=dict)
    link: str | None = None
    #: "smooth", or "kinked" when a non-smooth function of the first input appears
    curvature: str = "smooth"
    #: declared convexity in the first input (None: unknown, e.g. a user's spec)
    convex: bool | None = None

    @classmethod
    def from_table(cls, name: str, entry: Mapping[str, Any]) -> KernelInfo:
        """Build the info for kernel ``name`` from its ``KERNELS`` entry."""
        return cls(
            name,
            entry["role"],
            tuple(entry["inputs"]),
            MappingProxyType(dict(entry["hyper"])),
            bool(entry["class_axis"]),
            tuple(entry["functions"]),
            MappingProxyType(dict(entry.get("domains", {}))),
            entry.get("link"),
            entry.get("curvature", "smooth"),
            entry.get("convex"),
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle with plain dicts (a mappingproxy cannot be pickled), so models travel to
        Dask workers and spawned processes; they come back read-only."""
        fields = (self.name, self.role, self.inputs, dict(self.hyper_defaults), self.class_axis)
        facts = (self.link, self.curvature, self.convex)
        return _rebuild_info, (fields, self.functions, dict(self.domains), facts)


def _rebuild_info(
    fields: tuple[str, str, tuple, dict, bool], functions: tuple, domains: dict, facts: Any
) -> KernelInfo:
    """Return the KernelInfo a pickle describes (mappings read-only again); ``fields`` holds
    the name, role, inputs, hyper-parameter defaults and class-axis flag, ``facts`` the link,
    curvature and convexity."""
    name, role, inputs, hyper, class_axis = fields
    link, curvature, convex = facts if isinstance(facts, tuple) else (facts, "smooth", None)
    return KernelInfo(
        name,
        role,
        inputs,
        MappingProxyType(hyper),
        class_axis,
        functions,
        MappingProxyType(domains),
        link,
        curvature,
        convex,
    )


@cache
def builtin_module(role: str) -> ModuleType:
    """Return the run-time module of built-in kernels of ``role``."""
    return importlib.import_module(BUILTIN_MODULES[role])


@cache
def builtins(role: str) -> Mapping[str, KernelInfo]:
    """Return the built-in kernels of ``role`` by name."""
    table = builtin_module(role).KERNELS
    return MappingProxyType({n: KernelInfo.from_table(n, e) for n, e in sorted(table.items())})


def is_spec(obj: object) -> bool:
    """Tell whether ``obj`` is a compiler Spec (without importing the compiler to find out)."""
    spec_module = sys.modules.get("symgrad.compiler.spec")
    return spec_module is not None and isinstance(obj, spec_module.Spec)


#: Compiled user specs (and compositions), keyed by the specs they come from.
_COMPILED: dict[tuple[Any, ...], tuple[KernelInfo, ModuleType]] = {}


def compiled(key: tuple[Any, ...], build: Callable[[], Any]) -> tuple[KernelInfo, ModuleType]:
    """Return the (info, module) of the spec ``build()`` makes, compiled once per ``key``."""
    if key not in _COMPILED:
        from symgrad.compiler.codegen import compile as compile_specs

        spec = build()
        module = compile_specs(spec)
        _COMPILED[key] = (KernelInfo.from_table(spec.name, module.KERNELS[spec.name]), module)
    return _COMPILED[key]


#: The same specs compiled for the Array API target, by the same keys.
_COMPILED_XP: dict[tuple[Any, ...], ModuleType] = {}


def compiled_xp(key: tuple[Any, ...], build: Callable[[], Any]) -> ModuleType:
    """Return the Array API module (``target="array-api"``) of the spec ``build()`` makes,
    compiled once per ``key`` (models use it for torch, CuPy, JAX and other arrays)."""
    if key not in _COMPILED_XP:
        from symgrad.compiler.codegen import compile as compile_specs

        _COMPILED_XP[key] = compile_specs(build(), target="array-api")
    return _COMPILED_XP[key]


def xp_module(origin: tuple[Any, ...]) -> ModuleType:
    """Return the Array API module of a kernel from its origin: ``(role, None)`` for the
    built-in ``generated/<role>s_xp.py``, ``(role, (spec,))`` for a user's spec."""
    role, key = origin
    if key is None:
        from symgrad.resources import load_generated

        return load_generated(BUILTIN_MODULES[role].rpartition(".")[2] + "_xp")
    return compiled_xp(key, lambda: key[0])


def resolve(role: str, choice: Any) -> tuple[KernelInfo, ModuleType, dict[str, float], Any]:
    """Return (info, module, hyper-parameters, user spec or None) for a kernel choice: a
    built-in name, a user's Spec (compiled on first use), or either paired with
    ``{hyper-parameter: value}``."""
    hyper: dict[str, float] = {}
    if isinstance(choice, tuple):
        if len(choice) != 2 or not isinstance(choice[1], Mapping):
            raise ValueError(
                f"a {role} pair must be (name_or_spec, {{hyper-parameters}}), got {choice!r}"
            )
        choice, hyper = choice[0], dict(choice[1])
    known = builtins(role)
    user = None
    if isinstance(choice, str):
        if choice not in known:
            raise ValueError(
                f"unknown {role} {choice!r}; choose one of: {', '.join(sorted(known))}"
            )
        spec, module = known[choice], builtin_module(role)
    elif is_spec(choice):
        if choice.role != role:
            raise ValueError(f"expected a {role} spec, got {choice!r}")
        user = choice
        spec, module = compiled((choice,), lambda: choice)
    else:
        raise TypeError(
            f"a {role} is a built-in name, a symgrad Spec or a (name_or_spec, kwargs) pair; "
            f"got {type(choice).__name__}"
        )
    unknown = sorted(set(hyper) - set(spec.hyper_defaults))
    if unknown:
        takes = ", ".join(sorted(spec.hyper_defaults)) or "none"
        raise ValueError(
            f"{role} {spec.name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {takes}"
        )
    return spec, module, hyper, user
