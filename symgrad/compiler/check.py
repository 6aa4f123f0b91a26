"""Safe mode: run every emitted function at fixed points and compare it with a 50-digit mpmath
evaluation of sympy's own derivative of the plain (unrewritten) expression.

The bar is the plain formula itself: an emitted result may be no less accurate than that
derivative evaluated naively in float64 (up to ``TOLERANCE``), and must be finite wherever the
naive form is. This is how symgrad checks its own rewrites, as black's safe mode checks its
own formatting: a stabilizing rule that loses accuracy somewhere is caught before any write.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

import mpmath
import numpy as np
import sympy as sp

from symgrad.compiler.evaluate import EXACT, NAIVE, PrecisionLost, Undefined, evaluate
from symgrad.compiler.primitives import Abs, has_reduction, sign
from symgrad.compiler.spec import Spec
from symgrad.compiler.traverse import atoms_of, derivative, replace_types

#: Values of the differentiated input: typical, tiny, and deep in both tails.
POINTS = (
    0.0, 1e-8, -1e-8, 1e-4, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 6.0, -6.0,
    30.0, -30.0, 300.0, -300.0, 700.0, -700.0,
)  # fmt: skip
#: Values of the other inputs (targets, weights).
OTHERS = (0.0, 1.0, 0.25, -2.0)
#: An emitted result may be this many times less accurate than the naive plain formula ...
TOLERANCE = 16.0
#: ... or, where the naive formula happens to be (almost) exact, within this many ulps.
ULPS = 8.0
EPS = float(np.finfo(np.float64).eps)
DIGITS = 50
#: The most digits the reference may use (a sum that cancels more is not checked).
MAX_DIGITS = 3200
_FP = "floating-point"


@dataclass(frozen=True)
class Failure:
    """One emitted function that is less accurate than the plain formula at one point."""

    spec: str
    function: str
    point: tuple[float, ...]
    got: float
    expected: float
    naive: float
    why: str

    def __str__(self) -> str:
        where = ", ".join(repr(v) for v in self.point)
        return (
            f"spec {self.spec!r}: {self.function}({where}) = {self.got!r}, expected "
            f"{self.expected!r} (plain float64 formula: {self.naive!r}; {self.why})"
        )


_SKIP = (ArithmeticError, ValueError, TypeError, MemoryError, Undefined)


def _plain(expr: sp.Expr) -> sp.Expr:
    """Return ``expr`` with Abs/sign taken as real-argument functions (no re/im detours)."""
    return replace_types(replace_types(expr, {sp.Abs: Abs}), {sp.sign: sign})


def _exact(value) -> float | None:
    """Return a finite real mpmath value as a float (may round to 0 or inf), else None."""
    if isinstance(value, mpmath.mpc):
        if abs(value.imag) > mpmath.mpf(10) ** (-DIGITS // 2) * (1 + abs(value.real)):
            return None
        value = value.real
    try:
        if not mpmath.isfinite(value):
            return None
    except TypeError:
        return None
    return value


class Reference:
    """The plain forms of one spec (value, gradient, second derivative), exact and naive."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        value = _plain(spec.expr)
        grad = derivative(value, spec.wrt)  # sp.diff's result, once per distinct node
        self.forms = {"value": value, "grad": grad, "hess": derivative(grad, spec.wrt)}
        self.args = [*spec.inputs, *(s for s, _ in spec.hyper)]

    @cached_property
    def _switches(self) -> list[sp.Expr]:
        """Return every kink/jump argument of the value (a point where one is ~0 is skipped)."""
        e = self.forms["value"]
        sw = [a.args[0] for a in atoms_of(e, Abs, sign, sp.Heaviside)]
        sw += [r.lhs - r.rhs for r in atoms_of(e, sp.core.relational.Relational)]
        for m in atoms_of(e, sp.Max, sp.Min):
            keys = [(sp.default_sort_key(a), a) for a in m.args]
            sw += [a - b for ka, a in keys for kb, b in keys if ka < kb]
        return sw

    def exact(self, form: str) -> Callable:
        expr = self.forms[form]
        return lambda *values: evaluate(expr, dict(zip(self.args, values, strict=True)), EXACT)

    def naive(self, form: str) -> Callable:
        expr = self.forms[form]
        return lambda *values: evaluate(expr, dict(zip(self.args, values, strict=True)), NAIVE)

    def near_switch(self, point: Sequence) -> bool:
        """Tell whether ``point`` sits at (or next to) a kink or jump of the value."""
        scale = 1e-6 * (1 + max(abs(p) for p in point))
        env = dict(zip(self.args, map(mpmath.mpf, point), strict=True))
        with mpmath.workdps(DIGITS):
            for u in self._switches:
                try:
                    v = _exact(evaluate(u, env, EXACT))
                except _SKIP:
                    return True
                if v is None or abs(v) <= scale:
                    return True
        return False


def relative_error(got: float, exact) -> float:
    """Return |got - exact| / |exact| (inf for a non-finite ``got``; 0 if both are 0)."""
    if not math.isfinite(got):
        return math.inf
    if exact == 0:
        return 0.0 if got == 0 else math.inf
    return float(abs((mpmath.mpf(got) - exact) / exact))


def acceptable(got: float, naive: float, exact, condition: float = 1.0) -> str | None:
    """Return why ``got`` is worse than the naive plain ``naive`` against ``exact``, or None.

    ``condition`` (sum of |terms| / |sum| over the formula's sums) scales the rounding floor:
    where the formula itself cancels, any evaluation order loses that many digits, and the
    naive one may merely be lucky (2.5 - 2.5 + e**-6.25 left to right is exact).
    """
    err = relative_error(got, exact)
    base = relative_error(naive, exact)
    if not math.isfinite(got):
        return None if not math.isfinite(naive) else "not finite where the plain formula is"
    # a result that rounds to 0 or to the smallest subnormals against a tiny exact value is as
    # good as float64 allows
    if abs(float(exact)) < 1e-290 and abs(got) < 1e-290:
        return None
    if err <= TOLERANCE * max(base, ULPS * EPS * condition):
        return None
    return f"relative error {err:.2g} vs {base:.2g} for the plain formula"


#: How each emitted function reads its forms: (suffix, forms it returns).
_ROLE_FUNCTIONS = {
    "activation": (("", ("value",)), ("_grad", ("grad",)), ("_hess", ("hess",))),
    "regularizer": (("", ("value",)), ("_grad", ("grad",)), ("_hess", ("hess",))),
    "loss": (
        ("", ("value",)),
        ("_grad", ("grad",)),
        ("_value_and_grad", ("value", "grad")),
        ("_hess", ("hess",)),
    ),
}


def checkable(spec: Spec) -> bool:
    """Tell whether safe mode checks ``spec`` (class-axis reductions are checked by the tests)."""
    return not has_reduction(spec.expr)


def points(spec: Spec, xs: Sequence[float] = POINTS) -> list[tuple[float, ...]]:
    """Return the deterministic check points: each of ``xs`` for the first input, the other
    inputs cycling through OTHERS (so every value meets several x's, at len(xs) points)."""
    n = len(spec.inputs) - 1
    return [(x, *(OTHERS[(i + k) % len(OTHERS)] for k in range(n))) for i, x in enumerate(xs)] + [
        (1.0, *(v,) * n) for v in OTHERS if n
    ]


def check_module(
    spec: Spec,
    module: ModuleType,
    functions: Sequence[str] | None = None,
    pts: Sequence[tuple[float, ...]] | None = None,
    reference: Reference | None = None,
    fp: bool = False,
) -> dict[str, Failure]:
    """Return the first failure of each emitted function of ``spec`` in ``module`` (by name).

    With ``fp``, a floating-point error (overflow, invalid, divide) raised where the result is
    finite and the plain formula raises none is a failure too. Safe mode leaves it off: such an
    error is an intermediate overflowing on the way to a correct 0 or inf-free result (a
    denominator b**11 where the plain formula's b**-11 underflows), which costs no accuracy.
    """
    ref = reference or Reference(spec)
    hyper = [v for _, v in spec.hyper]
    failures: dict[str, Failure] = {}
    exact_cache: dict = {}
    for suffix, forms in _ROLE_FUNCTIONS[spec.role]:
        name = spec.name + suffix
        fn = getattr(module, name, None)
        if fn is None or (functions is not None and name not in functions):
            continue
        for point in pts if pts is not None else points(spec):
            failure = _check_point(
                spec, ref, name, fn, forms, point, hyper=hyper, cache=exact_cache, strict=fp
            )
            if failure is not None:
                failures[name] = failure
                break
    return failures


_LOST = object()


def _evaluate(fn: Callable, args, dps: int):
    with mpmath.workdps(dps):
        try:
            return _exact(fn(*(mpmath.mpf(a) for a in args)))
        except PrecisionLost:
            return _LOST
        except _SKIP:
            return None


def _exact_value(ref: Reference, form: str, point, hyper, cache: dict):
    """Evaluate at DIGITS, with more wherever a sum cancels or absorbs more digits than it
    holds: a plain formula can cancel (1 - tanh(x)**2 at x = 300 needs 260 digits), and the
    reference must not."""
    key = (form, point)
    if key not in cache:
        fn = ref.exact(form)
        args = (*point, *hyper)
        dps = DIGITS
        EXACT.condition = 1.0
        value = _evaluate(fn, args, dps)
        while value is _LOST and dps < MAX_DIGITS:
            dps *= 2
            EXACT.condition = 1.0
            value = _evaluate(fn, args, dps)
        cache[key] = None if value is _LOST else value
        cache[("condition", form, point)] = min(EXACT.condition, 1e12)
    return cache[key]


def _naive_value(ref: Reference, form: str, point, hyper) -> tuple[float, bool]:
    """Return the plain formula in float64 and whether it raises a floating-point error."""
    args = [np.float64(p) for p in (*point, *hyper)]
    fn = ref.naive(form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
                fn(*args)
            raises = False
        except (FloatingPointError, *_SKIP):
            raises = True
        with np.errstate(all="ignore"):
            try:
                return float(fn(*args)), raises
            except _SKIP:
                return math.nan, raises


def _call(fn, spec: Spec, point) -> tuple:
    arrays = [np.array([p], dtype=np.float64) for p in point]
    out = fn(*arrays)
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(float(np.ravel(o)[0]) if np.ndim(o) else float(o) for o in outs)


def _check_point(  # noqa: PLR0913
    spec, ref, name, fn, forms, point, *, hyper, cache, strict
) -> Failure | None:
    exact = [_exact_value(ref, f, point, hyper, cache) for f in forms]
    if any(e is None for e in exact) or ref.near_switch((*point, *hyper)):
        return None
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            got = _call(fn, spec, point)
        fp = None
    except FloatingPointError as exc:
        fp = str(exc)
        with np.errstate(all="ignore"):
            got = _call(fn, spec, point)
    naive = [_naive_value(ref, form, point, hyper) for form in forms]
    naive_raises = any(r for _, r in naive)
    for form, g, e, (plain, _) in zip(forms, got, exact, naive, strict=True):
        why = acceptable(g, plain, e, cache.get(("condition", form, point), 1.0))
        if why is None and strict and fp is not None and not naive_raises:
            why = f"{_FP} error ({fp}) where the result is finite"
        if why is not None:
            label = name if len(forms) == 1 else f"{name}[{forms.index(form)}]"
            return Failure(spec.name, label, point, g, float(e), plain, why)
    return None
