"""From specs to module source: one renderer for files (``symgrad generate``) and for
``symgrad.compile`` (whose live module ``symgrad.compiled`` builds from this source)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from types import ModuleType

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
from symgrad.compiler.targets import plan_functions
from symgrad.compiler.targets import target as lowering_target
from symgrad.errors import AccuracyWarning, BudgetError, SafeModeError, SpecError
from symgrad.resources import module_from_source


def _trial(spec: Spec, plans: list[FunctionPlan]) -> ModuleType:
    text = render_module(plans, kernels="{}", source=spec.name, command="", title="safe-mode trial")
    return module_from_source(text, f"symgrad_check_{spec.name}")


def _plans(
    spec: Spec, level: str, config: CodegenConfig, target: str = "numpy"
) -> list[FunctionPlan]:
    derived = derive_kernel(spec, level, config)
    size = distinct_nodes(derived.value, derived.grad, derived.hess, derived.vjp, derived.hvp)
    with budget("lower", config.lower_s * max(1.0, size / config.lower_nodes)):
        return plan_functions(derived, target)


def _out_of_time(spec: Spec, exc: OutOfTime) -> BudgetError:
    """Return the error for a stage that ran past its time limit: never a silent fallback,
    which would make the emitted code depend on the machine's speed."""
    return BudgetError(spec.name, exc.stage, f"{exc.seconds:g} s", spec.origin)


def _first_plans(spec: Spec, config: CodegenConfig, target: str = "numpy") -> list[FunctionPlan]:
    """Return the stabilized plans, or sympy's plain derivative where the derivatives are too
    large to stabilize (a count of nodes, ``TooLarge``); a stage that does not finish within
    its time limit is a BudgetError naming the stage."""
    try:
        with budget("rewrite", config.rewrite_s):
            return _plans(spec, STABLE, config, target)
    except TooLarge:
        pass
    except OutOfTime as exc:
        raise _out_of_time(spec, exc) from None
    except SpecError:
        raise
    except Exception:  # noqa: BLE001 - a stabilizing rule that cannot handle this spec
        # (sympy's polynomial division giving up, a clamp making a comparison non-real):
        # the rewrite is not shown safe, so the plain form is emitted, as for any other
        # rewrite safe mode cannot verify
        pass
    try:
        return _plans(spec, RAW, config, target)
    except OutOfTime as exc:
        raise _out_of_time(spec, exc) from None


def plan_spec(spec: Spec, safe: bool = True, config: CodegenConfig = DEFAULT) -> list[FunctionPlan]:
    """Derive and lower one spec; in safe mode, verify each function against the plain formula.

    A function whose stabilized form is less accurate than the plain formula somewhere falls
    back to a less rewritten form (``LEVELS``); if none verifies, the most accurate finite one
    is emitted with an AccuracyWarning, and only where none is finite is that an internal
    error.
    """
    plans = _first_plans(spec, config)
    if not safe or not checkable(spec):
        return plans
    kind = ClassReference if spec.class_axis else Reference
    reference = kind(spec, config.check_work)
    failures = _check(spec, plans, None, reference, config)
    first = dict(failures)
    tried = {p.name: [(failures[p.name], p)] for p in plans if p.name in failures}
    for level in LEVELS[1:]:
        if not failures:
            break
        try:
            fallback = {p.name: p for p in _plans(spec, level, config)}
        except TooLarge:
            continue
        except OutOfTime as exc:
            raise _out_of_time(spec, exc) from None
        candidates = [fallback.get(p.name, p) if p.name in failures else p for p in plans]
        retry = _check(spec, candidates, list(failures), reference, config)
        for c in candidates:
            if c.name in retry:
                tried[c.name].append((retry[c.name], c))
        plans = [
            c if c.name in failures and c.name not in retry else p
            for p, c in zip(plans, candidates, strict=True)
        ]
        failures = retry
    if failures:
        plans = _least_inaccurate(plans, failures, tried, first)
    return plans


def _least_inaccurate(plans, failures: dict, tried: dict, first: dict) -> list[FunctionPlan]:
    """Return ``plans`` with each function no level verified replaced by its most accurate
    finite form (an AccuracyWarning names the point): safe mode refuses a spec (exit 123) only
    where no level gives a finite result, never where a finite form exists."""
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
            stacklevel=4,
        )
    return [chosen.get(p.name, p) for p in plans]


def _check(spec, plans, names, reference, config) -> dict:
    """Check ``plans`` at the safe-mode points; points met after the reference's work budget
    is spent (``CodegenConfig.check_work``) are left unchecked, the same ones on any machine.
    A check that outruns its time limit is a BudgetError."""
    # rendered outside the budget: its alarm interrupting Python's own compile() of a large
    # trial module is a SystemError on CPython 3.11, not an OutOfTime
    module = _trial(spec, plans)
    try:
        with budget("check", config.check_s):
            if spec.class_axis:
                return check_class_module(spec, module, names, reference=reference)
            return check_module(spec, module, names, reference=reference)
    except OutOfTime as exc:
        raise _out_of_time(spec, exc) from None


def plan_module(
    specs: Iterable[Spec], safe: bool = True, target: str = "numpy"
) -> list[tuple[Spec, list[FunctionPlan]]]:
    """Derive and lower every spec, sorted by name so registration order never matters.

    Safe mode checks the numpy lowering; the array-api and cupy lowerings print the same
    stabilized expressions and are compared with the numpy target by the tests."""
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
        plans = plan_spec(spec, safe) if target == "numpy" else _first_plans(spec, DEFAULT, target)
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
