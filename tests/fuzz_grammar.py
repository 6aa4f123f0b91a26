"""A grammar of user-style specs for fuzzing the compiler (used by tests/compiler/test_fuzz.py).

Specs are built from draws (``choice``/``integer``), so the same grammar runs under hypothesis
(which shrinks failures) or from a seeded ``random.Random`` (for long exploratory runs):
activations, losses and regularizers of depth 1-6 over ``+ - * /``, integer and rational
powers, sqrt, exp, log, log(1 + exp(u)), 1/(1 + exp(-u)), tanh/sinh/cosh, atan, erf, Abs,
Max/Min and nested Piecewise with hyper-parameters (in values and in conditions), and the
spellings users write: log(cosh(u)), u*sigmoid(u), 1/(1 + u**2), |u|**1.5, exp(-u**2),
sqrt(1 + u**2).
Needs sympy (imported lazily by the compiler's users only).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import sympy as sp

from symgrad.compiler.spec import Spec, validate
from symgrad.errors import SpecError


class Draw(Protocol):
    """Where the grammar gets its choices from."""

    def choice(self, options: Sequence[Any]) -> Any: ...

    def integer(self, lo: int, hi: int) -> int: ...


class RandomDraw:
    """Draws from a seeded ``random.Random``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


HALF = sp.Rational(1, 2)
CONSTANTS = (sp.Integer(1), sp.Integer(2), HALF, sp.Rational(3, 2), sp.Float(0.75), sp.Integer(-1))
POWERS = (2, 3, -1, -2, HALF, sp.Rational(3, 2), -HALF, 4)
HYPER = (("a", 0.5), ("b", 2.0))

UNARY: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "exp": sp.exp,
    "gauss": lambda u: sp.exp(-(u**2)),
    "log": sp.log,
    "log1sq": lambda u: sp.log(1 + u**2),
    "sqrt": sp.sqrt,
    "sqrt1sq": lambda u: sp.sqrt(1 + u**2),
    "softplus": lambda u: sp.log(1 + sp.exp(u)),
    "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "atan": sp.atan,
    "erf": sp.erf,
    "abs": sp.Abs,
    "neg": lambda u: -u,
    # spellings users write for smooth losses and activations
    "logcosh": lambda u: sp.log(sp.cosh(u)),
    "swish": lambda u: u / (1 + sp.exp(-u)),
    "cauchy": lambda u: 1 / (1 + u**2),
    "abspow": lambda u: sp.Abs(u) ** sp.Rational(3, 2),
}
BINARY: dict[str, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "max": sp.Max,
    "min": sp.Min,
}


class Grammar:
    """Build one random expression over ``symbols`` and hyper-parameters ``hyper``."""

    def __init__(self, draw: Draw, symbols: Sequence[sp.Symbol], hyper: Sequence[sp.Symbol]):
        self.d = draw
        self.symbols = list(symbols)
        self.hyper = list(hyper)

    def leaf(self) -> sp.Expr:
        kind = self.d.integer(0, 5)
        if kind <= 2:
            return self.symbols[0] if kind < 2 else self.d.choice(self.symbols)
        if kind == 3 and self.hyper:
            return self.d.choice(self.hyper)
        return self.d.choice(CONSTANTS)

    def expr(self, depth: int) -> sp.Expr:
        if depth <= 0:
            return self.leaf()
        kind = self.d.integer(0, 9)
        if kind <= 4:
            name = self.d.choice(sorted(UNARY))
            return UNARY[name](self.expr(depth - 1))
        if kind == 5:
            return self.expr(depth - 1) ** self.d.choice(POWERS)
        if kind <= 7:
            op = self.d.choice(sorted(BINARY))
            return BINARY[op](self.expr(depth - 1), self.expr(self.d.integer(0, depth - 1)))
        if kind == 8:
            return self.piecewise(depth)
        return self.d.choice(CONSTANTS) * self.expr(depth - 1)

    def condition(self, depth: int) -> sp.Basic:
        lhs = self.expr(self.d.integer(0, max(depth - 2, 0)))
        rhs = self.d.choice([*self.hyper, sp.Integer(0), sp.Integer(1), sp.Integer(-1)])
        rel = self.d.choice([sp.Gt, sp.Lt, sp.Ge, sp.Le])
        if lhs.is_number:  # a constant condition (or zoo): compare the input instead
            lhs = self.symbols[0] + lhs if lhs.is_finite else self.symbols[0]
        return rel(lhs, rhs)

    def piecewise(self, depth: int) -> sp.Expr:
        pieces = [(self.expr(depth - 1), self.condition(depth))]
        if self.d.integer(0, 2) == 0:
            pieces.append((self.expr(depth - 1), self.condition(depth)))
        pieces.append((self.expr(self.d.integer(0, depth - 1)), sp.true))
        return sp.Piecewise(*pieces)


ROLES = ("activation", "loss", "regularizer")


def random_spec(draw: Draw, depth: int | None = None, name: str = "fuzzed") -> Spec:
    """Return a validated random spec; ``depth`` defaults to a draw in 1..6.

    Raises SpecError where the draw is not a valid spec (e.g. not real-valued: sqrt(-1)).
    """
    role = draw.choice(ROLES)
    depth = depth if depth is not None else draw.integer(1, 6)
    if role == "loss":
        inputs = (sp.Symbol("yhat", real=True), sp.Symbol("y", real=True))
    else:
        inputs = (sp.Symbol("w" if role == "regularizer" else "x", real=True),)
    n_hyper = draw.integer(0, 2)
    hyper = tuple((sp.Symbol(n, real=True), v) for n, v in HYPER[:n_hyper])
    grammar = Grammar(draw, inputs, [s for s, _ in hyper])
    expr = sp.S.Zero
    for _ in range(8):  # a constant expression has nothing to differentiate: draw again
        try:
            expr = grammar.expr(depth)
        except (TypeError, ValueError) as exc:  # sympy refuses it (Max of a complex constant)
            raise SpecError(name, f"invalid draw: {exc}") from None
        if inputs[0] in expr.free_symbols:
            break
    expr = expr if inputs[0] in expr.free_symbols else expr + inputs[0]
    used = expr.free_symbols
    hyper = tuple((s, v) for s, v in hyper if s in used)
    return validate(Spec(name, role, inputs, hyper, expr, origin="symgrad.fuzz"))
