"""From specs to module source: one renderer for files (``symgrad generate``) and for
``symgrad.compile`` (whose live module ``symgrad.compiled`` builds from this source)."""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterable
from types import ModuleType

from symgrad.compiler import search
from symgrad.compiler.check import (
    ClassReference,
    Reference,
    check_class_module,
    check_module,
    checkable,
    relative_error,
)
from symgrad.compiler.config import DEFAULT, CodegenConfig, OutOfTime, budget
from symgrad.compiler.emitted import FunctionPlan
from symgrad.compiler.kernel import LEVELS, RAW, STABLE, TooLarge, derive_kernel, distinct_nodes
from symgrad.compiler.render import kernel_table, render_module
from symgrad.compiler.spec import Spec, compose
from symgrad.compiler.targets import TARGETS, checked_targets, plan_functions
from symgrad.compiler.targets import target as lowering_target
from symgrad.errors import AccuracyWarning, BudgetError, SafeModeError, SpecError
from symgrad.resources import module_from_source

#: Compiler decisions that change no result but explain one (``logging.DEBUG``): a
#: stabilizing rule that raised, so the spec's first plans are sympy's plain derivative.
log = logging.getLogger("symgrad.compiler")


def _trial(spec: Spec, plans: list[FunctionPlan], target: str) -> ModuleType:
    """Return the trial module of ``plans`` for ``target``, ready to call on numpy arrays (a
    cupy module's kernels compiled for the CPU)."""
    text = render_module(
        plans, kernels="{}", source=spec.name, command="", title="safe-mode trial", target=target
    )
    module = module_from_source(text, f"symgrad_check_{spec.name}")
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


def _out_of_time(spec: Spec, exc: OutOfTime) -> BudgetError:
    """Return the error for a stage that ran past its time limit: never a silent fallback,
    which would make the emitted code depend on the machine's speed."""
    return BudgetError(spec.name, exc.stage, f"{exc.seconds:g} s", spec.origin)


def _first_plans(spec: Spec, config: CodegenConfig) -> dict[str, list[FunctionPlan]]:
    """Return the stabilized plans of every target, or sympy's plain derivative where the
    derivatives are too large to stabilize (a count of nodes, ``TooLarge``); a stage that does
    not finish within its time limit is a BudgetError naming the stage."""
    try:
        with budget("rewrite", config.rewrite_s):
            return _plans(spec, STABLE, config)
    except TooLarge:
        pass
    except OutOfTime as exc:
        raise _out_of_time(spec, exc) from None
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - a stabilizing rule that cannot handle this spec
        # (sympy's polynomial division giving up, a clamp making a comparison non-real):
        # the rewrite is not shown safe, so the plain form is emitted, as for any other
        # rewrite safe mode cannot verify; logged, so a rule's bug is seen, not only survived
        log.debug(
            "spec %r: a stabilizing rule raised %s: %s; its first plans are the plain form",
            spec.name, type(exc).__name__, exc, exc_info=True,
        )  # fmt: skip
    try:
        return _plans(spec, RAW, config)
    except OutOfTime as exc:
        raise _out_of_time(spec, exc) from None


def plan_spec(
    spec: Spec, safe: bool = True, config: CodegenConfig = DEFAULT
) -> dict[str, list[FunctionPlan]]:
    """Derive and lower one spec for every target; in safe mode, verify each function of every
    target that can run here (``checked_targets``) against the plain formula.

    A function whose stabilized form is less accurate than the plain formula somewhere, on any
    target, falls back to a less rewritten form (``LEVELS``) on every target, so no target emits
    a form safe mode rejected for another; if none verifies, the most accurate finite one is
    emitted with an AccuracyWarning, and only where none is finite is that an internal error.
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
    kind = ClassReference if spec.class_axis else Reference
    reference = kind(spec, config.check_work)
    failures = _check(spec, plans, None, reference, config)
    first = dict(failures)
    tried = {name: [(failure, _named(plans, name))] for name, failure in failures.items()}
    for level in LEVELS[1:]:
        if not failures:
            break
        try:
            fallback = _plans(spec, level, config)
        except TooLarge:
            continue
        except OutOfTime as exc:
            raise _out_of_time(spec, exc) from None
        candidates = {
            target: [
                {p.name: p for p in fallback[target]}.get(p.name, p) if p.name in failures else p
                for p in plans[target]
            ]
            for target in plans
        }
        retry = _check(spec, candidates, list(failures), reference, config)
        for name in retry:
            tried[name].append((retry[name], _named(candidates, name)))
        plans = {
            target: [
                c if c.name in failures and c.name not in retry else p
                for p, c in zip(plans[target], candidates[target], strict=True)
            ]
            for target in plans
        }
        failures = retry
    try:  # (search.improve decides which specs it searches)
        plans, failures = search.improve(
            spec,
            plans,
            failures,
            reference,
            config,
            trial=lambda pl: _trial(spec, pl, "numpy"),
            check=lambda pl, names: _check(spec, pl, names, reference, config),
            plan=lambda derived: {t: plan_functions(derived, t) for t in TARGETS},
        )
    except OutOfTime as exc:
        raise _out_of_time(spec, exc) from None
    if failures:
        plans = _least_inaccurate(plans, failures, tried, first)
    return plans


def _named(plans: dict[str, list[FunctionPlan]], name: str) -> dict[str, FunctionPlan]:
    """Return the plan of function ``name`` in each target's ``plans``."""
    return {target: p for target, pl in plans.items() for p in pl if p.name == name}


def _least_inaccurate(plans, failures: dict, tried: dict, first: dict) -> dict:
    """Return ``plans`` (per target) with each function no level verified replaced, on every
    target, by its most accurate finite form (an AccuracyWarning names the point): safe mode
    refuses a spec (exit 123) only where no level gives a finite result, never where a finite
    form exists."""
    chosen = {}
    for name in sorted(failures):
        finite = [
            (relative_error(f.got, f.expected), i, plan)
            for i, (f, plan) in enumerate(tried.get(name, ()))
            if math.isfinite(f.got) and f.why.startswith("relative error")
        ]
        if not finite:
            raise SafeModeError(str(first.get(name, failures[name])))
        _, i, plan = min(finite, key=lambda t: (t[0], t[1]))
        chosen[name] = plan
        warnings.warn(
            f"{tried[name][i][0]}; emitted the most accurate finite form found",
            AccuracyWarning,
            stacklevel=5,
        )
    return {
        target: [chosen[p.name].get(target, p) if p.name in chosen else p for p in pl]
        for target, pl in plans.items()
    }


def _check(spec, plans, names, reference, config) -> dict:
    """Check ``plans`` of every checked target at the safe-mode points; return each failing
    function's first failure (numpy's first). Points met after the reference's work budget is
    spent (``CodegenConfig.check_work``) are left unchecked, the same ones on any machine; a
    check that outruns its time limit is a BudgetError, never a silent pass."""
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
            raise _out_of_time(spec, exc) from None
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


def _library_spec(choice: Spec | str, role: str) -> Spec:
    """Return ``choice`` itself (a spec) or the built-in spec of that name."""
    if isinstance(choice, Spec):
        return choice
    from symgrad.library import activations, losses

    library = {"loss": losses, "activation": activations}[role]
    spec = getattr(library, choice, None) if isinstance(choice, str) else None
    if not isinstance(spec, Spec):
        raise TypeError(f"symgrad.compile: {choice!r} is not a built-in {role} or a spec")
    return spec


def compile_source(
    *specs: Spec | str,
    safe: bool = True,
    target: str = "numpy",
    output: Spec | str | None = None,
) -> str:
    """Return the source of the module ``symgrad.compile(*specs, ...)`` builds (see there).

    With ``output``, ``specs`` is one loss (a built-in name or a spec), compiled as
    ``loss(output(z))``.
    """
    if output is not None:
        if len(specs) != 1:
            raise TypeError("symgrad.compile: output= fuses an activation under exactly one loss")
        specs = (compose(_library_spec(specs[0], "loss"), _library_spec(output, "activation")),)
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
    return generate_source(
        specs,
        source=f"symgrad.compile({', '.join(sorted(s.name for s in specs))})",
        safe=safe,
        target=target,
    )
