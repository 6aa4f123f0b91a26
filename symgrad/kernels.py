"""The run-time's view of a kernel: its facts from a generated module's ``KERNELS`` table.

Built-in kernels come from the checked-in ``generated/`` modules; a user's spec is compiled on
first use, through the one door into the compiler (:func:`symgrad.compiled.compile`), and
only when a spec is passed.
Models, ``train``, ``verify`` and the integrations ask this module, never a list of names.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType, ModuleType
from typing import Any

from symgrad._specref import materialize
from symgrad.compiled import compile as compile_kernels
from symgrad.errors import SymgradError

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


def builtin_twin(info: KernelInfo, module: ModuleType) -> bool:
    """Tell whether a compiled kernel emits exactly the code of the built-in of its name (a
    user passing the library's own spec), compared as text: the library is never imported."""
    known = builtins(info.role).get(info.name)
    if known != info:
        return False
    ours = builtin_module(info.role)
    try:
        return all(
            inspect.getsource(getattr(module, f)) == inspect.getsource(getattr(ours, f))
            for f in info.functions
        )
    except OSError:  # a source no longer in linecache: not shown to be the same
        return False


#: Compiled user specs (and compositions), keyed by ``(spec, output, target)``.
_COMPILED: dict[tuple[Any, ...], ModuleType] = {}


def _compiled_module(spec: Any, output: Any, target: str) -> ModuleType:
    key = (spec, output, target)
    if key not in _COMPILED:
        _COMPILED[key] = compile_kernels(spec, output=output, target=target)
    return _COMPILED[key]


def compiled(spec: Any, output: Any = None) -> tuple[KernelInfo, ModuleType]:
    """Return the (info, module) of a user's spec, or with ``output`` of ``spec(output(z))``
    (built-in names or specs, see :func:`symgrad.compiled.compile`), compiled once."""
    module = _compiled_module(spec, output, "numpy")
    ((name, entry),) = module.KERNELS.items()
    return KernelInfo.from_table(name, entry), module


def compiled_xp(spec: Any, output: Any = None) -> ModuleType:
    """Return the Array API module (``target="array-api"``) of the same kernel as
    :func:`compiled`, compiled once (models use it for torch, CuPy, JAX and other arrays)."""
    return _compiled_module(spec, output, "array-api")


def carried(choices: Iterable[Any]) -> tuple[tuple[Any, str], ...]:
    """Return ``(spec, compiled module's name)`` for each user spec among kernel ``choices``
    (names, specs or ``(name_or_spec, hyper)`` pairs), compiling here what is not yet.

    An object that pickles its kernel choices carries these too: the name pickles as the
    module's source (:mod:`symgrad.compiled`), so :func:`adopt` in the receiving process
    compiles nothing. A spec that does not compile is left for its first use to report.
    """
    out = []
    for choice in choices:
        spec = materialize(choice[0] if isinstance(choice, tuple) and len(choice) == 2 else choice)
        if is_spec(spec):
            try:
                out.append((spec, compiled(spec)[1].__name__))
            except SymgradError:
                continue
    return tuple(out)


def adopt(carried: Iterable[tuple[Any, str]]) -> None:
    """Cache the compiled modules :func:`carried` sent with their specs, as if compiled here."""
    for spec, name in carried:
        _COMPILED.setdefault((spec, None, "numpy"), importlib.import_module(name))


def xp_module(origin: tuple[Any, ...]) -> ModuleType:
    """Return the Array API module of a kernel from its origin: ``(role, None)`` for the
    built-in ``generated/<role>s_xp.py``, ``(role, (spec,))`` for a user's spec."""
    role, key = origin
    if key is None:
        from symgrad.resources import load_generated

        return load_generated(BUILTIN_MODULES[role].rpartition(".")[2] + "_xp")
    return compiled_xp(key[0])


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
    choice = materialize(choice)  # a spec a pickle carried, unpickled now it is used
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
        spec, module = compiled(choice)
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
