"""The derived, stabilized forms of one spec: value, gradient and second-order terms."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.compiler.derive import derivative, hvp, vjp
from symgrad.compiler.printer import unsupported_functions
from symgrad.compiler.rewrite import canonicalize, split_axis_sums, stabilize, tidy
from symgrad.compiler.spec import Spec
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


def derive_kernel(spec: Spec) -> Derived:
    """Differentiate ``spec`` (plain form first), then stabilize every result."""
    try:
        return _derive(spec)
    except SpecError:
        raise
    except Exception as exc:  # sympy internals: report the spec, not the traceback
        raise SpecError(
            spec.name, f"differentiating failed with {type(exc).__name__}: {exc}", spec.origin
        ) from None


def _derive(spec: Spec) -> Derived:
    x = spec.wrt
    elementwise = frozenset(spec.inputs)
    base = canonicalize(spec.expr)
    grad = hess = vj = hv = None
    if spec.role == "activation" and spec.class_axis:
        vj = tidy(vjp(base, x, COTANGENT), elementwise | {COTANGENT})
    else:
        grad = tidy(derivative(base, x), elementwise)
        if spec.class_axis:
            hv = tidy(hvp(grad, x, VECTOR), elementwise | {VECTOR})
        # d grad_j / d x_j: the Hessian's diagonal (all of it for an element-wise loss)
        hess = tidy(derivative(grad, x), elementwise)
    value = split_axis_sums(base, elementwise) if spec.class_axis else base
    out = Derived(
        spec,
        stabilize(value),
        *(None if e is None else stabilize(e) for e in (grad, hess, vj, hv)),
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
