"""Recover the sums sympy distributed: ``c * (a + b)`` with a number ``c`` is always stored as
``c*a + c*b``, so ``e = e**2/2 + e/3`` iterated holds every earlier level's terms again
(depth**2 / 2 terms at depth 40, and so do its derivatives). Before CSE, a sum that contains
``c`` times all the terms of a smaller sum is written as the rest plus ``c * S``, where ``S``
is a new temporary holding the smaller sum: the emitted code computes each level once.

Only exact identities: the coefficients are compared as exact rationals, before numbers are
folded to floats.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

import sympy as sp

from symgrad.compiler.traverse import nodes

#: Sums with fewer terms are left as they are.
MIN_TERMS = 3


def _terms(add: sp.Add) -> dict[sp.Expr, sp.Expr]:
    out: dict[sp.Expr, sp.Expr] = {}
    for term in add.args:
        coeff, rest = term.as_coeff_Mul()
        if rest in out:  # (not canonical: give up on this sum)
            return {}
        out[rest] = coeff
    return out


def _scale(small: dict, big: dict) -> sp.Expr | None:
    """Return c with big[r] == c * small[r] for every term r of ``small``, else None."""
    anchor, c0 = next(iter(small.items()))
    if anchor not in big or not c0.is_Rational or not big[anchor].is_Rational:
        return None
    c = big[anchor] / c0
    for rest, coeff in small.items():
        if big.get(rest) != c * coeff:
            return None
    return c


def find_scaled_sums(exprs: list[sp.Expr]) -> dict[sp.Add, tuple[sp.Add, sp.Expr]]:
    """Return each sum that holds a number times all the terms of a smaller sum, mapped to the
    largest such sum and the number."""
    order = [n for e in exprs for n in nodes(e) if n.is_Add and len(n.args) >= MIN_TERMS]
    terms: dict[sp.Add, dict] = {}
    by_anchor: dict[sp.Expr, list[sp.Add]] = {}
    found: dict[sp.Add, tuple[sp.Add, sp.Expr]] = {}
    for add in dict.fromkeys(order):  # children first, each once
        mine = _terms(add)
        if not mine:
            continue
        best = None
        for rest in mine:
            for other in by_anchor.get(rest, ()):
                if len(terms[other]) >= len(mine) or (
                    best and len(terms[best[0]]) >= len(terms[other])
                ):
                    continue
                c = _scale(terms[other], mine)
                if c is not None:
                    best = (other, c)
        if best is not None:
            found[add] = best
        terms[add] = mine
        by_anchor.setdefault(next(iter(mine)), []).append(add)
    return found


def factor_scaled_sums(
    exprs: list[sp.Expr], names: Iterator[sp.Symbol]
) -> tuple[list[sp.Expr], list[tuple[sp.Symbol, sp.Expr]]]:
    """Return ``exprs`` with each scaled copy of a smaller sum replaced by ``c * S``, and the
    definitions (S, sum) of the new symbols, innermost first. ``names`` gives the symbols."""
    found = find_scaled_sums(exprs)
    if not found:
        return exprs, []
    shared = {inner for inner, _ in found.values()}
    symbol: dict[sp.Add, sp.Symbol] = {}
    definitions: list[tuple[sp.Symbol, sp.Expr]] = []
    done: dict[sp.Basic, sp.Basic] = {}
    for node in nodes(sp.Tuple(*exprs)):
        if node.is_Atom or not node.args:
            done[node] = node
            continue
        if node in found:
            inner, c = found[node]
            rest = _terms(inner)
            kept = [t for t in node.args if t.as_coeff_Mul()[1] not in rest]
            out = sp.Add(*(done[t] for t in kept), c * symbol[inner])
        else:
            args = tuple(done[a] for a in node.args)
            out = node.func(*args) if args != node.args else node
        if node in shared:
            sym = next(names)
            symbol[node] = sym
            definitions.append((sym, out))
            out = sym
        done[node] = out
    return [done[e] for e in exprs], definitions


def schedule(
    statements: list[tuple[sp.Symbol, sp.Expr]], definitions: list[tuple[sp.Symbol, sp.Expr]]
) -> list[tuple[sp.Symbol, sp.Expr]]:
    """Merge CSE's statements and the shared sums' definitions into one order in which each is
    defined before it is used (CSE's order kept where it allows)."""
    items = [*statements, *definitions]
    defined = {sym for sym, _ in items}
    needs = {i: {s for s in e.free_symbols if s in defined} for i, (_, e) in enumerate(items)}
    index = {sym: i for i, (sym, _) in enumerate(items)}
    users: dict[int, list[int]] = {i: [] for i in range(len(items))}
    waiting = {i: len(n) for i, n in needs.items()}
    for i, n in needs.items():
        for s in n:
            users[index[s]].append(i)
    ready = [i for i, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        i = heapq.heappop(ready)
        out.append(items[i])
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(out) != len(items):  # pragma: no cover - the definitions form no cycle
        raise RuntimeError("shared sums depend on each other in a cycle")
    return out


def numbered(prefix: str) -> Iterator[sp.Symbol]:
    """Return real symbols prefix0, prefix1, ... (one generator shared by CSE and the sums)."""
    return (sp.Symbol(f"{prefix}{i}", real=True) for i in itertools.count())
