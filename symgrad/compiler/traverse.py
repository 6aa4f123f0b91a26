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


def expanded_terms(expr: sp.Expr) -> int:
    """Return an upper bound on the number of terms ``expand`` makes of ``expr`` and of any
    function argument inside it (deterministic, unlike a time limit)."""
    cache: dict[sp.Basic, int] = {}
    worst = [0]

    def terms(e: sp.Basic) -> int:
        if e in cache:
            return cache[e]
        if e.is_Atom:
            n = 1
        elif e.is_Add:
            n = sum(terms(a) for a in e.args)
        elif e.is_Mul:
            n = 1
            for a in e.args:
                n = min(n * terms(a), 10**9)
        elif e.is_Pow and e.exp.is_Integer:  # expand multiplies out 1/(a + b)**2 as well
            n = min(terms(e.base) ** min(abs(int(e.exp)), 40), 10**9)
        else:  # a function or a negative/fractional power: its arguments expand on their own
            for a in e.args:
                terms(a)
            n = 1
        worst[0] = max(worst[0], n)
        cache[e] = n
        return n

    terms(expr)
    return worst[0]
