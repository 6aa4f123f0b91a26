"""From specs to module source, and from source to a live module: one renderer, two destinations."""

from __future__ import annotations

import builtins
import linecache
import threading
from collections.abc import Iterable
from types import ModuleType

from symgrad.compiled import register
from symgrad.compiler.check import (
    ClassReference,
    Reference,
    check_class_module,
    check_module,
    checkable,
)
from symgrad.compiler.config import DEFAULT, CodegenConfig, OutOfTime, budget
from symgrad.compiler.emitted import FunctionPlan
from symgrad.compiler.kernel import LEVELS, RAW, STABLE, TooLarge, derive_kernel, distinct_nodes
from symgrad.compiler.render import kernel_table, render_module
from symgrad.compiler.spec import Spec
from symgrad.compiler.targets import TARGETS, checked_targets, plan_functions
from symgrad.compiler.targets import target as lowering_target
from symgrad.errors import BudgetError, SafeModeError, SpecError


def _exec(text: str, name: str) -> ModuleType:
    filename = f"<symgrad:{name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    module = ModuleType(name)
    module.__file__ = filename
    module.__source__ = text
    exec(builtins.compile(text, filename, "exec"), module.__dict__)  # noqa: S102 - our own output
    return module


def _trial(spec: Spec, plans: list[FunctionPlan], target: str) -> ModuleType:
    """Return the trial module of ``plans`` for ``target``, ready to call on numpy arrays (a
    cupy module's kernels compiled for the CPU)."""
    text = render_module(
        plans, kernels="{}", source=spec.name, command="", title="safe-mode trial", target=target
    )
    module = _exec(text, f"symgrad_check_{spec.name}")
    if target == "cupy":
        from symgrad.compiler.targets.c_on_cpu import Library

        module = Library({"trial": module}, types=("double",)).bind("trial", module)
    return module


#: Plans per target of every spec planned lately: a module of several targets (numpy, array-api,
#: cupy) derives and checks each spec once, not once per target.
_PLANNED: dict = {}
_KEEP_PLANNED = 256
_PLANNED_LOCK = threading.Lock()


def _plans(spec: Spec, level: str, config: CodegenConfig) -> dict[str, list[FunctionPlan]]:
    derived = derive_kernel(spec, level, config)
    size = distinct_nodes(derived.value, derived.grad, derived.hess, derived.vjp, derived.hvp)
    per_target = config.lower_s * max(1.0, size / config.lower_nodes)
    with budget("lower", per_target * len(TARGETS)):
        return {target: plan_functions(derived, target) for target in TARGETS}


def _first_plans(spec: Spec, config: CodegenConfig) -> dict[str, list[FunctionPlan]]:
    """Return the stabilized plans of every target, or sympy's plain derivative where
    stabilizing (or tidying) does not finish within the rewrite budget; a plain form that does
    not finish within the stage budgets is a BudgetError naming the stage."""
    try:
        with budget("rewrite", config.rewrite_s):
            return _plans(spec, STABLE, config)
    except (OutOfTime, TooLarge):
        pass
    except SpecError:
        raise
    except Exception:  # noqa: BLE001 - a stabilizing rule that cannot handle this spec
        # (sympy's polynomial division giving up, a clamp making a comparison non-real):
        # the rewrite is not shown safe, so the plain form is emitted, as for any other
        # rewrite safe mode cannot verify
        pass
    try:
        return _plans(spec, RAW, config)
    except OutOfTime as exc:
        raise BudgetError(spec.name, exc.stage, f"{exc.seconds:g} s", spec.origin) from None


def plan_spec(
    spec: Spec, safe: bool = True, config: CodegenConfig = DEFAULT
) -> dict[str, list[FunctionPlan]]:
    """Derive and lower one spec for every target; in safe mode, verify each function of every
    target that can run here (``checked_targets``) against the plain formula.

    A function whose stabilized form is less accurate than the plain formula somewhere, on any
    target, falls back to a less rewritten form (``LEVELS``) on every target, so no target emits
    a form safe mode rejected for another; if none verifies, that is an internal error.
    """
    key = (spec, safe, config)
    planned = _PLANNED.get(key)
    if planned is None:
        planned = _plan_spec(spec, safe, config)
        with _PLANNED_LOCK:  # compile() may run on several threads
            _PLANNED[key] = planned
            while len(_PLANNED) > _KEEP_PLANNED:
                del _PLANNED[next(iter(_PLANNED))]
    return planned


def _plan_spec(spec: Spec, safe: bool, config: CodegenConfig) -> dict[str, list[FunctionPlan]]:
    plans = _first_plans(spec, config)
    if not safe or not checkable(spec):
        return plans
    reference = ClassReference(spec) if spec.class_axis else Reference(spec)
    failures = _check(spec, plans, None, reference, config)
    first = dict(failures)
    for level in LEVELS[1:]:
        if not failures:
            break
        try:
            fallback = _plans(spec, level, config)
        except (OutOfTime, TooLarge):
            continue
        candidates = {
            target: [
                {p.name: p for p in fallback[target]}.get(p.name, p) if p.name in failures else p
                for p in plans[target]
            ]
            for target in plans
        }
        retry = _check(spec, candidates, list(failures), reference, config)
        plans = {
            target: [
                c if c.name in failures and c.name not in retry else p
                for p, c in zip(plans[target], candidates[target], strict=True)
            ]
            for target in plans
        }
        failures = retry
    if failures:
        name = min(failures)
        raise SafeModeError(str(first.get(name, failures[name])))
    return plans


def _check(spec, plans, names, reference, config) -> dict:
    """Check ``plans`` of every checked target at the safe-mode points; return each failing
    function's first failure (numpy's first). Points the check budget does not reach are left
    unchecked (a deep spec's reference can be slow to evaluate at high precision)."""
    failures: dict = {}
    for target in checked_targets():
        # rendered outside the budget: its alarm interrupting Python's own compile() of a large
        # trial module is a SystemError on CPython 3.11, not an OutOfTime
        module = _trial(spec, plans[target], target)
        fp = target == "numpy"  # only the numpy target promises no floating-point warnings
        try:
            with budget("check", config.check_s):
                if spec.class_axis:
                    found = check_class_module(spec, module, names, reference=reference, fp=fp)
                else:
                    found = check_module(spec, module, names, reference=reference, fp=fp)
        except OutOfTime as exc:
            if exc.stage != "check":
                raise
            found = {}
        for name, failure in found.items():
            failures.setdefault(name, failure)
    return failures


def plan_module(
    specs: Iterable[Spec], safe: bool = True, target: str = "numpy"
) -> list[tuple[Spec, list[FunctionPlan]]]:
    """Derive and lower every spec, sorted by name so registration order never matters.

    Safe mode checks every target's functions (``plan_spec``)."""
    lowering_target(target)  # an unknown target fails before any work
    specs = list(specs)
    for spec in specs:
        if not isinstance(spec, Spec):
            raise TypeError(f"expected a symgrad spec, got {type(spec).__name__}")
    ordered = sorted(specs, key=lambda s: (s.name, s.role))
    planned: list[tuple[Spec, list[FunctionPlan]]] = []
    owner: dict[str, str] = {}
    for spec in ordered:
        if not isinstance(spec, Spec):
            raise TypeError(f"expected a symgrad spec, got {type(spec).__name__}")
        plans = plan_spec(spec, safe)[target]
        for plan in plans:
            if plan.name in owner:
                raise SpecError(
                    spec.name,
                    f"emitted function {plan.name!r} clashes with one from spec {owner[plan.name]!r}",
                    spec.origin,
                )
            owner[plan.name] = spec.name
        planned.append((spec, plans))
    return planned


def generate_source(
    specs: Iterable[Spec],
    *,
    source: str,
    command: str = "symgrad generate",
    title: str = "Kernels generated by symgrad.",
    safe: bool = True,
    target: str = "numpy",
) -> str:
    """Return the text of the module holding every spec's emitted functions for ``target``."""
    planned = plan_module(specs, safe, target)
    return render_module(
        [plan for _, pl in planned for plan in pl],
        kernels=kernel_table(planned),
        source=source,
        command=command,
        title=title,
        target=target,
    )


_counter = 0


def compile(  # noqa: A001 - public API name
    *specs: Spec, name: str | None = None, safe: bool = True, target: str = "numpy"
) -> ModuleType:
    """Return a module built in memory from exactly the source ``symgrad generate`` would write
    (``target``: "numpy", "array-api" or "cupy").

    ``safe=False`` skips the safe-mode check of every emitted function against the plain formula.

    Its functions pickle by reference to ``symgrad.compiled.k<n>_<token>`` (the token carries the
    specs), so they run in a freshly spawned process or on a Dask worker with no setup call.
    """
    global _counter
    for spec in specs:
        if not isinstance(spec, Spec):
            what = type(spec).__name__
            hint = (
                "; pass them as separate arguments: compile(*specs)"
                if isinstance(spec, list | tuple | set)
                else "; decorate the function with @symgrad.loss, @symgrad.activation or "
                "@symgrad.regularizer first"
                if callable(spec)
                else ""
            )
            raise TypeError(f"symgrad.compile takes symgrad specs, got {what}{hint}")
    if not specs:
        raise TypeError("symgrad.compile takes at least one symgrad spec")
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise TypeError(f"symgrad.compile: name must be a Python identifier, got {name!r}")
    _counter += 1
    name = name or f"symgrad_compiled_{_counter}"
    text = generate_source(
        specs,
        source=f"symgrad.compile({', '.join(sorted(s.name for s in specs))})",
        safe=safe,
        target=target,
    )
    module = _exec(text, name)
    if target == "numpy":
        register(module, specs)  # importable by name, so its functions pickle (Dask, spawn)
    return module
