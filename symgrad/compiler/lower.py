"""Turn derived expressions into straight-line statements: one CSE per emitted function.

Every target prints the same ``Emitter``; what each function computes comes from the
table in ``emitted``, and how a target writes it from ``symgrad.compiler.targets``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import sympy as sp

from symgrad.compiler.kernel import INV_N, Derived
from symgrad.compiler.primitives import N_CLASSES, cosh_, exp_, keep_order, step
from symgrad.compiler.printer import FORMULA_NODES, SymgradPrinter, strip_outer_parens
from symgrad.compiler.rewrite import lower_primitives
from symgrad.compiler.scaled import factor_scaled_sums, numbered, schedule
from symgrad.compiler.traverse import atoms_of, bottom_up, fold_numbers, has_node, nodes, tree_size


def _not_real(e: sp.Expr) -> sp.Expr:
    if e.is_number and e.is_extended_real is False and not e.has(sp.nan, sp.zoo):
        return sp.nan
    return e


def _real_constants(expr: sp.Expr) -> sp.Expr:
    """Replace complex constants by NaN: they only arise in a branch its condition discards
    (e.g. sqrt(-1) after clamping), and real kernels write into float arrays."""
    return bottom_up(expr, _not_real) if has_node(expr, sp.I) else expr


def _density_power(e: sp.Expr) -> tuple[sp.Expr, sp.Expr, int] | None:
    """Return (t, u, k) if product ``e`` has t**k / (1 + t)**(2k) with t = exp(-|u|)."""
    powers: dict[sp.Expr, sp.Expr] = {}
    for f in e.args:  # not as_powers_dict: it splits exp(u) into E**u
        base, k = (f.base, f.exp) if f.is_Pow else (f, sp.S.One)
        powers[base] = powers.get(base, 0) + k
    for t, k in powers.items():
        if isinstance(t, sp.exp) and k.is_Integer and k > 0 and isinstance(-t.args[0], sp.Abs):
            if powers.get(1 + t) == -2 * k:
                return t, (-t.args[0]).args[0], int(k)
    return None


def cosh_densities(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """Print the logistic density sigmoid(u) sigmoid(-u), lowered as t / (1 + t)**2 with
    t = exp(-|u|), as 1 / (2 + 2 cosh u) where nothing else in the function needs t: three
    numpy passes (cosh, add, divide) instead of six (abs, negative, exp, add, square, divide).
    Exact in the tails; cosh overflows to inf only where the density is below the smallest
    normal number (|u| > 89 in float32, 710 in float64), and 1/inf is its limit 0."""

    def rule(e: sp.Expr, t: sp.Expr) -> sp.Expr:
        found = _density_power(e) if e.is_Mul else None
        if found is None or found[0] != t:
            return e
        _, u, k = found
        return e / (t**k * (1 + t) ** (-2 * k)) * sp.S.Half**k * (1 + cosh_(u)) ** -k

    candidates = {
        found[0]
        for e in exprs
        for m in atoms_of(e, sp.Mul)
        if (found := _density_power(m)) is not None
    }
    for t in sorted(candidates, key=sp.default_sort_key):
        rewritten = [bottom_up(e, lambda node, t=t: rule(node, t)) for e in exprs]
        if not any(has_node(e, t) for e in rewritten):  # t shared with sigmoid/softplus: keep it
            exprs = rewritten
    return exprs


def signs_from_steps(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """Write -c |u| (c > 0 a number) as c u (1 - 2 step(u)) where the sign 1 - 2 step(u) (-1 for
    u >= 0, 1 below) is computed anyway, as a sigmoid pair's select has it
    (rewrite._sigmoid_sums): one multiply instead of abs and negative, exactly (a product with
    +-1: -0 gives +0, as -|-0| does)."""
    present = {n for e in exprs for n in nodes(e)}
    signs = {n.args[0]: 1 - 2 * n for n in present if isinstance(n, step)}
    signs = {u: s for u, s in signs.items() if s in present}
    if not signs:
        return exprs

    def rule(m: sp.Expr) -> sp.Expr:
        c, rest = m.as_coeff_Mul() if m.is_Mul else (sp.S.One, m)
        if c.is_negative and isinstance(rest, sp.Abs):
            u = rest.args[0]
            for v in (u, -u):  # |u| = |-u|; u (1 - 2 step(u)) = -|u| for either sign of u
                if v in signs:
                    return -c * v * signs[v]
        return m

    return [bottom_up(e, rule) for e in exprs]


def _quotient_powers(m: sp.Expr, x: sp.Symbol, d: sp.Symbol) -> tuple[int, int] | None:
    """Return (j, k) if product ``m`` holds x**j / d**k with k >= j >= 1 whole, else None."""
    if not m.is_Mul:
        return None
    powers = dict(f.as_base_exp() for f in m.args)
    j, k = powers.get(x, sp.S.Zero), -powers.get(d, sp.S.Zero)
    if j.is_Integer and k.is_Integer and k >= j >= 1:
        return int(j), int(k)
    return None


def share_quotients(
    replacements: list[tuple[sp.Symbol, sp.Expr]], outputs: list[sp.Expr]
) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """Give q = x / (1 + x) a temporary of its own, for x = exp(...) a CSE temporary, where two
    or more products divide x**j by (1 + x)**k (k >= j >= 1): each becomes q**j / (1 + x)**(k - j),
    a division fewer, the quotient computed once. A sigmoid pair and its density have it:
    sigmoid(-|u|) = t / (1 + t) beside t / (1 + t)**2 (rewrite._sigmoid_sums). x >= 0, so q is
    in [0, 1): no product overflows or underflows where it did not. Temporaries are numbered
    again in order of definition."""
    defs = dict(replacements)
    pairs = {}  # 1 + x -> x
    for sym, e in replacements:
        if e.is_Add and len(e.args) == 2 and sp.S.One in e.args:
            x = e.args[1] if e.args[0] == 1 else e.args[0]
            if isinstance(defs.get(x), sp.exp | exp_):
                pairs[sym] = x
    exprs = [*(e for _, e in replacements), *outputs]
    products = [n for e in exprs for n in nodes(e) if n.is_Mul]
    shared = [
        d
        for d, x in pairs.items()
        if sum(_quotient_powers(m, x, d) is not None for m in dict.fromkeys(products)) >= 2
    ]
    if not shared:
        return replacements, outputs
    quotients = {d: sp.Dummy() for d in shared}

    def rule(m: sp.Expr) -> sp.Expr:
        for d, q in quotients.items():
            found = _quotient_powers(m, pairs[d], d)
            if found is not None:
                j, k = found
                others = [f for f in m.args if f.as_base_exp()[0] not in (pairs[d], d)]
                return sp.Mul(*others, q**j, d ** (j - k))
        return m

    out: list[tuple[sp.Symbol, sp.Expr]] = []
    for sym, e in replacements:
        out.append((sym, bottom_up(e, rule)))
        if sym in quotients:
            out.append((quotients[sym], pairs[sym] / sym))
    rename = dict(zip((s for s, _ in out), numbered("t"), strict=False))
    return (
        [(rename[s], e.xreplace(rename)) for s, e in out],
        [bottom_up(e, rule).xreplace(rename) for e in outputs],
    )


class Emitter:
    """CSE a list of expressions and print them as ``t0 = ...`` statements."""

    def __init__(
        self,
        derived: Derived,
        exprs: list[sp.Expr],
        printer: type = SymgradPrinter,
        sizes: Callable[..., list[str]] | None = None,
    ) -> None:
        scalars = frozenset(s for s, _ in derived.spec.hyper) | {INV_N, N_CLASSES}
        self.printer = printer(scalars=scalars)
        lowered = [lower_primitives(e, not derived.ordered) for e in exprs]
        # a deep composition: canonical order sorts every sum's and product's arguments by
        # their size as trees (exponential; sympy's own argument order is deterministic too),
        # and sums sympy distributed are factored back (scaled.py)
        huge = any(tree_size(e, FORMULA_NODES + 1) > FORMULA_NODES for e in lowered)
        names = numbered("t")
        lowered, shared = factor_scaled_sums(lowered, names) if huge else (lowered, [])
        prepared = [_real_constants(fold_numbers(e)) for e in [*(d for _, d in shared), *lowered]]
        if self.printer.COSH_DENSITY:
            prepared = cosh_densities(prepared)
        prepared = signs_from_steps(prepared)
        if derived.ordered:
            prepared = [keep_order(e) for e in prepared]
        replacements, reduced = sp.cse(
            prepared,
            symbols=names,
            order="none" if huge else "canonical",
        )
        if shared:
            defined = zip((s for s, _ in shared), reduced[: len(shared)], strict=True)
            replacements = schedule(replacements, list(defined))
            reduced = reduced[len(shared) :]
        replacements, reduced = share_quotients(replacements, reduced)
        spec = derived.spec
        used = set().union(
            *(e.free_symbols for _, e in replacements), *(e.free_symbols for e in reduced)
        )
        self.replacements = replacements
        self.used = used
        self.lines: list[str] = (sizes or size_lines)(spec, used)
        self.deps: dict[sp.Symbol, frozenset[sp.Symbol]] = {}
        for sym, e in replacements:
            self.deps[sym] = self.depends(e)
            self.printer.ranks[sym] = self.printer.rank(e)
            self.lines.append(f"{sym.name} = {strip_outer_parens(self.printer.doprint(e))}")
        self.outputs = reduced

    def depends(self, expr: sp.Expr) -> frozenset[sp.Symbol]:
        """Return the input symbols ``expr`` depends on, seeing through CSE temporaries."""
        out: set[sp.Symbol] = set()
        for s in expr.free_symbols:
            out |= self.deps.get(s, {s})
        return frozenset(out)

    def text(self, i: int) -> str:
        return strip_outer_parens(self.printer.doprint(self.outputs[i]))

    def operand(self, i: int) -> str:
        """Print output ``i`` so it can be an operand of ``+``."""
        text = self.text(i)
        node = ast.parse(text, mode="eval").body
        simple = (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Constant)
        return text if isinstance(node, simple) else f"({text})"


def size_lines(spec, used: set) -> list[str]:
    """Return the statements defining ``n_classes`` and ``inv_n`` if the body uses them.

    An emitted loss sets ``inv_n`` through the run-time's ``_weighting`` instead: its mean
    divides by the caller's ``count`` when given (so blocks of one batch, or micro-batches,
    each return their share of the whole batch's mean), else by the sum of the weights.
    """
    x = spec.wrt.name
    lines = []
    if N_CLASSES in used:
        lines.append(f"n_classes = np.shape({x})[-1]")
    if INV_N in used:
        n = f"np.size({x}) / np.shape({x})[-1]" if spec.class_axis else f"np.size({x})"
        lines.append(f"inv_n = 1 / ({n})" if spec.class_axis else f"inv_n = 1 / {n}")
    return lines
