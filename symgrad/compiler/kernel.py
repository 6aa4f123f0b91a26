"""The derived, stabilized forms of one spec: value, gradient and second-order terms."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.compiler.config import DEFAULT, CodegenConfig, budget
from symgrad.compiler.derive import derivative, hvp, vjp
from symgrad.compiler.printer import unsupported_functions
from symgrad.compiler.rewrite import (
    canonicalize,
    lowerable,
    split_axis_sums,
    stabilize,
    tidy,
)
from symgrad.compiler.spec import Spec
from symgrad.compiler.traverse import Interner
from symgrad.errors import SpecError

COTANGENT = sp.Symbol("grad_output", real=True)
VECTOR = sp.Symbol("vector", real=True)
#: 1 / n for the mean reduction, folded into the expression so it joins scalar coefficients.
INV_N = sp.Symbol("inv_n", positive=True)


@dataclass(frozen=True)
class Derived:
    """A spec with its stabilized expressions; ``None`` where a form does not apply."""

    spec: Spec
    value: sp.Expr
    grad: sp.Expr | None
    hess: sp.Expr | None
    vjp: sp.Expr | None
    hvp: sp.Expr | None


#: How much rewriting a derivation does: ``STABLE`` applies every stabilizing rule; ``PLAIN``
#: only canonicalizes and tidies; ``RAW`` is sympy's own derivative of the spec as written.
#: Safe mode falls back along this list for a function whose rewritten form it cannot verify.
STABLE, PLAIN, RAW = "stable", "plain", "raw"
LEVELS = (STABLE, PLAIN, RAW)


def derive_kernel(spec: Spec, level: str = STABLE, config: CodegenConfig = DEFAULT) -> Derived:
    """Differentiate ``spec`` (plain form first), then stabilize every result (per ``level``).

    Errors raised by symgrad's own rules propagate as they are (an internal error, reported
    with "please report"); only a construct the spec uses that cannot be lowered is a SpecError.
    """
    return _derive(spec, level, config)


class TooLarge(Exception):  # noqa: N818 - a signal to fall back, not an error users see
    """The derivatives are too large to stabilize within the configured node count."""


def distinct_nodes(*exprs: sp.Expr | None) -> int:
    """Return the number of distinct nodes of ``exprs`` (shared subtrees counted once; equal
    copies are told apart without comparing them as trees, see traverse.Interner)."""
    intern = Interner()
    for e in exprs:
        if e is not None:
            intern(e)
    return len(intern.table)


def _identity(e: sp.Expr, *_: object) -> sp.Expr:
    return e


def _derive(spec: Spec, level: str, config: CodegenConfig) -> Derived:
    x = spec.wrt
    elementwise = frozenset(spec.inputs)
    raw = level == RAW
    clean = _identity if raw else tidy
    finish = stabilize if level == STABLE else lowerable
    grad = hess = vj = hv = None
    scale = max(1.0, distinct_nodes(spec.expr) / config.derive_nodes)
    with budget("derive", config.derive_s * scale):
        base = canonicalize(spec.expr, smooth=not raw)
        if spec.role == "activation" and spec.class_axis:
            vj = clean(vjp(base, x, COTANGENT), elementwise | {COTANGENT})
        else:
            grad = clean(derivative(base, x), elementwise)
            if level == STABLE and distinct_nodes(grad) > config.stabilize_nodes:
                raise TooLarge(spec.name)  # (as below, without differentiating again first)
            if spec.class_axis:
                hv = clean(hvp(grad, x, VECTOR), elementwise | {VECTOR})
            # d grad_j / d x_j: the Hessian's diagonal (all of it for an element-wise loss)
            hess = clean(derivative(grad, x), elementwise)
    value = split_axis_sums(base, elementwise) if spec.class_axis else base
    if level == STABLE and distinct_nodes(grad, hess, vj, hv) > config.stabilize_nodes:
        raise TooLarge(spec.name)
    with budget("rewrite", config.rewrite_s if level == STABLE else config.derive_s):
        out = Derived(
            spec,
            finish(value),
            *(None if e is None else finish(e) for e in (grad, hess, vj, hv)),
        )
    for label, e in (("gradient", out.grad), ("second derivative", out.hess)):
        if e is not None:
            bad = unsupported_functions(e)
            if bad:
                raise SpecError(
                    spec.name,
                    f"{label} uses function {bad[0]!r}, which cannot be lowered",
                    spec.origin,
                )
    return out
