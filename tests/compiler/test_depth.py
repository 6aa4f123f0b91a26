"""Deep compositions: emitted code grows linearly with depth, and generation stays fast.

The compositions of issue 12: a chain cycling tanh, softplus, sigmoid and sin, and the
polynomial ``e = e**2/2 + e/3`` iterated (every level uses the previous one twice, so as a
tree it doubles per level). Before the DAG walks (symgrad.compiler.traverse) the chain took
254 s at depth 40 and the polynomial passed 15 GB at depth 60.
"""

from __future__ import annotations

import ast
import time

import mpmath
import numpy as np
import pytest
import sympy as sp
from hashseeds import outputs_under_seeds

import symgrad as sg
from symgrad.compiler.evaluate import EXACT, PrecisionLost, evaluate
from symgrad.compiler.kernel import RAW, derive_kernel, distinct_nodes
from symgrad.compiler.spec import Spec
from symgrad.compiler.targets import plan_functions
from symgrad.compiler.traverse import derivative, tree_size

X = sp.Symbol("x", real=True)


def _tanh_chain(depth: int):
    def chain(x):
        e = x
        for _ in range(depth):
            e = sp.tanh(e)
        return e

    return sg.activation(chain, name="chain")


def _code_lines(depth: int) -> int:
    """Return the number of statements in chain_grad's body (a long one wraps over lines)."""
    tree = ast.parse(sg.compile(_tanh_chain(depth)).__source__)
    fn = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "chain_grad")
    return sum(isinstance(n, ast.stmt) for n in ast.walk(fn)) - 2  # the def and its docstring


def test_code_size_is_linear_in_depth():
    sizes = [_code_lines(d) for d in (4, 8, 16)]
    assert sizes[2] - sizes[1] == 2 * (sizes[1] - sizes[0])  # constant lines per level


def test_deep_chain_generates_quickly_and_is_right():
    start = time.perf_counter()
    k = sg.compile(_tanh_chain(24))
    assert time.perf_counter() - start < 20  # exponential before memoized rewriting: hours
    x = np.linspace(-2, 2, 7)
    h = 1e-6
    fd = (k.chain(x + h) - k.chain(x - h)) / (2 * h)
    np.testing.assert_allclose(k.chain_grad(x), fd, rtol=1e-6, atol=1e-9)


def mixed_chain(depth: int) -> sp.Expr:
    """tanh, log(1 + exp(u)), 1/(1 + exp(-u)), sin, cycled ``depth`` times."""
    e = X
    steps = [sp.tanh, lambda u: sp.log(1 + sp.exp(u)), lambda u: 1 / (1 + sp.exp(-u)), sp.sin]
    for i in range(depth):
        e = steps[i % 4](e)
    return e


def polynomial(depth: int) -> sp.Expr:
    """``e = e**2/2 + e/3`` iterated ``depth`` times from x (2**depth nodes as a tree)."""
    e = X
    for _ in range(depth):
        e = e**2 / 2 + e / 3
    return e


def _reference(expr: sp.Expr, xs) -> tuple[list, list]:
    """Return the first and second derivative at ``xs``: 30-digit mpmath over the DAG."""
    d1 = derivative(expr, X)
    d2 = derivative(d1, X)
    return [_exact(d1, x) for x in xs], [_exact(d2, x) for x in xs]


def _exact(expr: sp.Expr, x: float) -> float:
    """Evaluate at 30 digits, with more where a sum cancels or absorbs (see evaluate.py)."""
    for dps in (30, 120, 480):
        with mpmath.workdps(dps):
            try:
                return float(evaluate(expr, {X: mpmath.mpf(x)}, EXACT))
            except PrecisionLost:
                continue
    raise AssertionError(f"no reference at x = {x}")


@pytest.mark.parametrize(
    ("build", "depth", "xs"),
    [
        (mixed_chain, 40, [-3.0, -0.7, 0.0, 0.4, 2.0]),
        # the iteration stays bounded for x in about (-2.6, 0.9); it overflows elsewhere
        (polynomial, 40, [-0.9, -0.3, 0.0, 0.25, 0.5]),
    ],
    ids=["mixed_chain", "polynomial"],
)
def test_depth_40_generates_and_is_right(build, depth, xs):
    """A deep composition compiles with safe mode on (no BudgetError), and the emitted gradient
    and second derivative match an mpmath evaluation of sympy's own derivative."""
    expr = build(depth)
    written = tree_size(expr)  # (never put expr in an assert: pytest would print its tree)
    assert build is mixed_chain or written >= 10**9  # the polynomial, written out
    start = time.perf_counter()
    k = sg.compile(Spec(f"deep_{build.__name__}", "activation", (X,), (), expr))
    elapsed = time.perf_counter() - start
    assert elapsed < 45, elapsed  # about 4 s each here
    grad, hess = _reference(expr, xs)
    x = np.array(xs)
    name = f"deep_{build.__name__}"
    np.testing.assert_allclose(getattr(k, f"{name}_grad")(x), grad, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(getattr(k, f"{name}_hess")(x), hess, rtol=1e-9, atol=1e-300)
    h = 1e-6  # and the value agrees with its own gradient
    fd = (getattr(k, name)(x + h) - getattr(k, name)(x - h)) / (2 * h)
    np.testing.assert_allclose(getattr(k, f"{name}_grad")(x), fd, rtol=1e-5, atol=1e-9)


def _sizes(build, depth: int) -> tuple[int, int]:
    """Return the distinct nodes of the derived forms and the emitted statements' count."""
    spec = Spec("deep", "activation", (X,), (), build(depth))
    derived = derive_kernel(spec, RAW)
    nodes = distinct_nodes(derived.value, derived.grad, derived.hess)
    plans = plan_functions(derived)
    return nodes, sum(len(p.body) for p in plans)


def test_mixed_chain_size_is_linear_in_depth():
    """Distinct nodes of value, gradient and second derivative grow linearly with depth."""
    (n10, _), (n20, _), (n40, _) = (_sizes(mixed_chain, d) for d in (10, 20, 40))
    assert abs((n40 - n20) - 2 * (n20 - n10)) <= 0.25 * 2 * (n20 - n10)


def test_polynomial_size_is_linear_in_its_own_size():
    """sympy distributes e/3 over e's terms, so the spec itself has about depth**2 / 2 distinct
    nodes; its derivatives stay within a constant factor of that (before: exponential)."""
    ratios = []
    for depth in (10, 20, 40):
        expr = polynomial(depth)
        spec_nodes = distinct_nodes(expr)
        d1 = derivative(expr, X)
        ratios.append(distinct_nodes(expr, d1, derivative(d1, X)) / spec_nodes)
    assert max(ratios) < 1.5 * min(ratios), ratios


def test_polynomial_emitted_code_is_linear_in_depth():
    """The emitted statements grow linearly: sums sympy distributed are factored back before
    CSE (symgrad.compiler.scaled), so each level is computed once (before: 4x per doubling)."""
    (_, l10), (_, l20), (_, l40) = (_sizes(polynomial, d) for d in (10, 20, 40))
    assert abs((l40 - l20) - 2 * (l20 - l10)) <= 0.25 * 2 * (l20 - l10), (l10, l20, l40)


_SOURCE = """
import sympy as sp
from symgrad.compiler.codegen import generate_source
from symgrad.compiler.spec import Spec
x = sp.Symbol("x", real=True)
e = x
for _ in range(16):
    e = e**2 / 2 + e / 3
print(generate_source([Spec("iterated", "activation", (x,), (), e)], source="t"))
"""


def test_deep_output_is_identical_across_hash_seeds():
    """The deep-composition path (sympy's own argument order for CSE, factored sums) writes the
    same bytes whatever PYTHONHASHSEED is."""
    outs = outputs_under_seeds(_SOURCE, ("1", "2"))
    assert outs[0] == outs[1]
    assert "distinct subexpressions" in outs[0]  # too long to print as one formula
