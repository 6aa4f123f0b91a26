"""Symbolic derivatives, including the rules for reductions over the class axis.

An expression may mix element-wise terms (one value per class) with reductions over the
last axis (``axis_sum``, ``logsumexp``). For a reduction R = sum_k g(z_k, ...), the
derivative with respect to element j is g'(z_j) (times softmax weights for logsumexp) plus
the chain through inner reductions, so the result is again an element-wise expression and
the emitted code needs no loop over classes.
"""

from __future__ import annotations

import sympy as sp

from symgrad.compiler.primitives import REDUCTIONS, axis_sum, logsumexp
from symgrad.compiler.traverse import bottom_up, free_symbols_of, has_node
from symgrad.compiler.traverse import derivative as diff


class _Placeholders:
    """Replace reductions by per-sample symbols, remembering what each one stands for."""

    def __init__(self) -> None:
        self.table: dict[sp.Symbol, sp.Expr] = {}
        self._by_expr: dict[sp.Expr, sp.Symbol] = {}

    def extract(self, expr: sp.Expr) -> sp.Expr:
        return bottom_up(expr, self._placeholder)

    def _placeholder(self, rebuilt: sp.Expr) -> sp.Expr:
        if isinstance(rebuilt, REDUCTIONS):
            sym = self._by_expr.get(rebuilt)
            if sym is None:
                sym = sp.Symbol(f"_R{len(self.table)}", real=True)
                self.table[sym] = rebuilt
                self._by_expr[rebuilt] = sym
            return sym
        return rebuilt

    def restore(self, expr: sp.Expr) -> sp.Expr:
        for _ in range(len(self.table) + 1):
            present = [s for s in self.table if s in free_symbols_of(expr)]
            if not present:
                return expr
            expr = expr.xreplace({s: self.table[s] for s in present})
        raise RuntimeError("reduction placeholders did not resolve")  # pragma: no cover


def _weights(reduction: sp.Expr, placeholder: sp.Symbol) -> sp.Expr:
    arg = reduction.args[0]
    if isinstance(reduction, axis_sum):
        return sp.S.One
    if isinstance(reduction, logsumexp):
        return sp.exp(arg - placeholder)  # softmax, sharing the logsumexp already computed
    raise TypeError(f"no derivative rule for {reduction.func.__name__}")  # pragma: no cover


def derivative(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """Return d expr / d wrt_j, element-wise, applying the class-axis reduction rules."""
    if not has_node(expr, *REDUCTIONS):
        return diff(expr, wrt)
    ph = _Placeholders()
    flat = ph.extract(expr)
    memo: dict[sp.Symbol, sp.Expr] = {}

    def d_reduction(sym: sp.Symbol) -> sp.Expr:
        if sym not in memo:
            red = ph.table[sym]
            arg = red.args[0]
            w = _weights(red, sym)
            out = w * diff(arg, wrt)
            for inner in sorted(free_symbols_of(arg) & ph.table.keys(), key=lambda s: s.name):
                out += axis_sum(w * diff(arg, inner)) * d_reduction(inner)
            memo[sym] = out
        return memo[sym]

    result = diff(flat, wrt)
    for sym in sorted(free_symbols_of(flat) & ph.table.keys(), key=lambda s: s.name):
        result += diff(flat, sym) * d_reduction(sym)
    return ph.restore(result)


def vjp(expr: sp.Expr, wrt: sp.Symbol, cotangent: sp.Symbol) -> sp.Expr:
    """Return sum_k cotangent_k * d expr_k / d wrt_j for an element-wise ``expr`` with reductions."""
    return derivative(axis_sum(cotangent * expr), wrt)


def hvp(grad: sp.Expr, wrt: sp.Symbol, vector: sp.Symbol) -> sp.Expr:
    """Return the Hessian-vector product of a per-sample loss from its element-wise gradient."""
    return derivative(axis_sum(grad * vector), wrt)
