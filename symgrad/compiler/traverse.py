"""Memoized bottom-up rewriting: derivative trees share subtrees, so an unmemoized walk is
exponential in the depth of a composition; this one visits each distinct subtree once."""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp


def bottom_up(expr: sp.Basic, rule: Callable[[sp.Basic], sp.Basic]) -> sp.Basic:
    """Rebuild ``expr`` from the leaves up, applying ``rule`` to every node once per distinct node."""
    cache: dict[sp.Basic, sp.Basic] = {}

    def visit(node: sp.Basic) -> sp.Basic:
        done = cache.get(node)
        if done is not None:
            return done
        out = node
        if node.args and not node.is_Atom:
            args = tuple(visit(a) for a in node.args)
            if args != node.args:
                out = node.func(*args)
        out = rule(out)
        cache[node] = out
        return out

    return visit(expr)


def fold_numbers(expr: sp.Basic) -> sp.Basic:
    """Replace every constant subexpression that is not an integer by a 17-digit float literal."""
    cache: dict[sp.Basic, tuple[sp.Basic, bool]] = {}

    def visit(node: sp.Basic) -> tuple[sp.Basic, bool]:
        done = cache.get(node)
        if done is not None:
            return done
        if node.is_Atom:
            numeric = node.is_number
            out = node
            if numeric and not node.is_Integer and node.is_extended_real:
                out = sp.Float(node.evalf(20), 17)
        else:
            parts = [visit(a) for a in node.args]
            numeric = isinstance(node, sp.Expr) and all(p[1] for p in parts)
            args = tuple(p[0] for p in parts)
            out = node.func(*args) if args != node.args else node
            if numeric and not out.is_Integer and not out.is_Float and out.is_extended_real:
                out = sp.Float(out.evalf(20), 17)
        cache[node] = (out, numeric)
        return out, numeric

    return visit(expr)[0]
