"""Memoized bottom-up rewriting: derivative trees share subtrees, so an unmemoized walk is
exponential in the depth of a composition; this one visits each distinct subtree once."""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.core.cache import clear_cache


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


def is_zero(expr: sp.Expr) -> bool:
    """Tell whether ``expr`` is the number 0, as an Integer or a Float: ``Float(0.0) == 0`` is
    False in SymPy 1.13 on, so a rule comparing ``== 0`` missed every spec written with
    float coefficients (``1.265625 - 1.265625 tanh(1.125 x)**2`` kept its cancellation)."""
    return expr == 0 or (expr.is_Number and expr.is_zero is True)


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


# ---------------------------------------------------------------- walks that see the DAG
#
# sympy's own free_symbols, has, atoms, replace and diff walk an expression as a tree: on a
# composition that reuses a subexpression (e = e**2/2 + e/3, or any derivative of a chain)
# the tree is exponentially larger than its distinct nodes. These visit each node once.


def nodes(expr: sp.Basic) -> list[sp.Basic]:
    """Return the distinct nodes of ``expr``, each once, children before parents."""
    seen: set[sp.Basic] = set()
    order: list[sp.Basic] = []
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if a not in seen)
    return order


def atoms_of(expr: sp.Basic, *types: type) -> set[sp.Basic]:
    """Return the nodes of ``expr`` that are instances of ``types`` (``Basic.atoms``, once per
    distinct node)."""
    return {n for n in nodes(expr) if isinstance(n, types)}


def has_node(expr: sp.Basic, *patterns: sp.Basic | type) -> bool:
    """Tell whether a node of ``expr`` is an instance of a type or equals an expression in
    ``patterns`` (``Basic.has`` for types and plain subexpressions)."""
    types = tuple(p for p in patterns if isinstance(p, type))
    exprs = {p for p in patterns if not isinstance(p, type)}
    return any((types and isinstance(n, types)) or n in exprs for n in nodes(expr))


def free_symbols_of(expr: sp.Basic) -> set[sp.Symbol]:
    """Return the free symbols of ``expr`` (leaves and the nodes that bind none)."""
    out: set[sp.Symbol] = set()
    for n in nodes(expr):
        if n.is_Symbol:
            out.add(n)
        elif not n.args and not n.is_Atom:
            out |= n.free_symbols
    return out


def replace_types(expr: sp.Basic, mapping: dict[type, type]) -> sp.Basic:
    """Rebuild every node of a type in ``mapping`` as the mapped type (``Basic.replace`` of a
    type by a type), visiting each distinct node once; ``expr`` itself if none occurs."""
    if not atoms_of(expr, *mapping):
        return expr

    def rule(e: sp.Basic) -> sp.Basic:
        for old, new in mapping.items():
            if isinstance(e, old):
                out = new(*e.args)
                return e if out == e else out
        return e

    return bottom_up(expr, rule)


def tree_sizes(expr: sp.Basic, cap: int = 10**9) -> dict[sp.Basic, int]:
    """Return each distinct node of ``expr`` mapped to its number of nodes as a tree (what
    printing it writes), at most ``cap``."""
    sizes: dict[sp.Basic, int] = {}
    for n in nodes(expr):
        sizes[n] = min(cap, 1 + sum(sizes[a] for a in n.args))
    return sizes


def tree_size(expr: sp.Basic, cap: int = 10**9) -> int:
    """Return the number of nodes of ``expr`` as a tree, at most ``cap`` (see tree_sizes)."""
    return tree_sizes(expr, cap)[expr]


class Interner:
    """Hash-consing: map every subexpression to one canonical object per structure.

    sympy builds structurally equal copies (its constructor cache is bounded), and comparing
    two equal copies walks both trees: exponential where they share no objects below. Walks
    here go by object identity and key nodes by (type, canonical arguments' ids), so no deep
    comparison ever runs; after ``intern`` equal subexpressions are the same object."""

    def __init__(self) -> None:
        self.by_id: dict[int, sp.Basic] = {}
        self.table: dict[object, sp.Basic] = {}
        self._keep: list[sp.Basic] = []  # keep every seen object alive, so ids stay unique

    def __call__(self, expr: sp.Basic) -> sp.Basic:
        stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in self.by_id:
                continue
            if not ready and node.args:
                stack.append((node, True))
                stack.extend((a, False) for a in node.args if id(a) not in self.by_id)
                continue
            self._keep.append(node)
            self.by_id[id(node)] = self._canonical(node)
        return self.by_id[id(expr)]

    def _canonical(self, node: sp.Basic) -> sp.Basic:
        if not node.args:
            return self.table.setdefault(node, node)  # atoms compare cheaply
        args = tuple(self.by_id[id(a)] for a in node.args)
        key = (type(node), tuple(map(id, args)))
        found = self.table.get(key)
        if found is None:
            if any(a is not b for a, b in zip(args, node.args, strict=True)):
                node = _rebuilt(node, args)
            found = self.table[key] = node
        return found


def _rebuilt(node: sp.Basic, args: tuple) -> sp.Basic:
    """Return ``node`` with ``args`` (equal to its own): the same node without evaluation."""
    if isinstance(node, sp.core.operations.AssocOp):
        return node._from_args(args, node.is_commutative)
    return (
        sp.Basic.__new__(type(node), *args)
        if not isinstance(node, sp.Expr) or isinstance(node, sp.Function | sp.Piecewise)
        else node.func(*args, evaluate=False)
    )


#: Differentiating more distinct nodes than this starts from an empty sympy cache.
FRESH_CACHE_NODES = 200


class Differentiator:
    """d expr / d ``wrt`` by the rules sympy's ``diff`` applies node by node, memoized over
    distinct nodes: the derivative of a shared subexpression is built once and shared, so
    differentiating a composition costs time linear in its distinct nodes, and the result is
    the expression ``sp.diff`` returns. Nodes without a rule here go to ``sp.diff`` (with the
    derivatives of their arguments already known, only their own rule runs)."""

    def __init__(self, wrt: sp.Symbol) -> None:
        self.wrt = wrt
        self.memo: dict[sp.Basic, sp.Expr] = {}
        self.depends: dict[sp.Basic, bool] = {}
        self.intern = Interner()

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        expr = self.intern(expr)
        order = nodes(expr)
        if len(order) > FRESH_CACHE_NODES:
            # sympy's constructor cache holds copies of these nodes built earlier: a lookup
            # that meets one compares it with ours, a walk of both trees
            clear_cache()
        for n in order:
            if n not in self.memo:
                self.memo[n] = self.intern(self._rule(n))
        return self.memo[expr]

    def _uses(self, n: sp.Basic) -> bool:
        if n not in self.depends:
            if n.is_Symbol:
                self.depends[n] = n == self.wrt
            elif not n.args:
                self.depends[n] = self.wrt in n.free_symbols
            else:
                self.depends[n] = any(self._uses(a) for a in n.args)
        return self.depends[n]

    def _rule(self, n: sp.Basic) -> sp.Expr:
        if not isinstance(n, sp.Expr) or not self._uses(n):
            return sp.S.Zero
        if n.is_Symbol:
            return sp.S.One
        d = self.memo
        if n.is_Add:
            return sp.Add(*[d[a] for a in n.args])
        if n.is_Mul:
            # (sympy also builds the zero terms, asking each factor whether it is finite)
            args = n.args
            return sp.Add(
                *[sp.Mul(*args[:i], d[a], *args[i + 1 :]) for i, a in enumerate(args) if d[a] != 0]
            )
        if n.is_Pow:
            base, exp = n.args
            if d[exp] == 0:  # 0 * log(base): sympy builds log(base) only to drop it
                return n * (d[base] * exp / base)
            return n * (d[exp] * sp.log(base) + d[base] * exp / base)
        if isinstance(n, sp.Piecewise):
            return sp.Piecewise(*[(d[e], c) for e, c in n.args])
        if isinstance(n, sp.Function) and type(n)._eval_derivative is sp.Function._eval_derivative:
            return self._function(n)
        return sp.diff(n, self.wrt)

    def _function(self, n: sp.Function) -> sp.Expr:
        terms = []
        for i, a in enumerate(n.args, 1):
            da = self.memo[a]
            if da == 0:  # (sympy asks da.is_zero: on a deep derivative, a walk of its tree)
                continue
            try:
                df = n.fdiff(i)
            except sp.core.function.ArgumentIndexError:
                df = sp.Function.fdiff(n, i)
            terms.append(df * da)
        return sp.Add(*terms)


def derivative(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """Return ``sp.diff(expr, wrt)``, computed once per distinct node (see Differentiator)."""
    return Differentiator(wrt)(expr)
