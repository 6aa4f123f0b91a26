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

from symgrad.compiler.emitted import TABLE
from symgrad.compiler.evaluate import (
    EXACT,
    NAIVE,
    PrecisionLost,
    Undefined,
    _mp_exp,
    _mp_log,
    evaluate,
)
from symgrad.compiler.primitives import N_CLASSES, REDUCTIONS, Abs, axis_sum, sign
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
#: ``check_module(fp=STRICT)``: a floating-point error is a failure wherever the exact result
#: is a float64 number, even where the plain formula raises one too (exploration only)
STRICT = "strict"
_BIG = float(np.finfo(np.float64).max)


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
        #: exact values by (form, point), shared by the checks of every target
        self.exact_cache: dict = {}

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


def checked_functions(spec: Spec, forms) -> list[tuple[str, tuple[str, ...]]]:
    """Return (suffix, forms it returns) of every function in the emitted table whose forms
    the reference has (``forms``); a class-axis loss's mean is its ``total``."""
    rename = {"value": "total"} if spec.class_axis and spec.role == "loss" else {}
    out = []
    for fn in TABLE[spec.role]:
        returned = tuple(rename.get(f, f) for f in fn.forms)
        if all(f in forms for f in returned):
            out.append((fn.suffix, returned))
    return out


def checkable(spec: Spec) -> bool:
    """Tell whether safe mode checks ``spec`` (every element-wise or class-axis loss and
    activation; a class-axis regularizer has no reference here)."""
    return not spec.class_axis or spec.role in ("activation", "loss")


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
    fp: bool | str = True,
) -> dict[str, Failure]:
    """Return the first failure of each emitted function of ``spec`` in ``module`` (by name).

    With ``fp`` (the default, and safe mode's), a floating-point error (overflow, invalid,
    divide; underflow is exempt) raised under ``np.errstate(..="raise")`` where the result is
    finite and the plain formula raises none is a failure too: emitted kernels compute the
    branches a select may discard under a local ``np.errstate`` that ignores them.
    """
    ref = reference or Reference(spec)
    hyper = [v for _, v in spec.hyper]
    failures: dict[str, Failure] = {}
    exact_cache = ref.exact_cache
    for suffix, forms in checked_functions(spec, ref.forms):
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
        value, condition = _enough_digits(ref.exact(form), (*point, *hyper))
        cache[key] = value
        cache[("condition", form, point)] = condition
    return cache[key]


def _enough_digits(fn: Callable, args) -> tuple[object, float]:
    """Return ``fn(*args)`` in mpmath from DIGITS digits, doubled while precision is lost
    (None if it still is at MAX_DIGITS), and the condition number the evaluation saw."""
    dps = DIGITS
    while True:
        EXACT.condition = 1.0
        value = _evaluate(fn, args, dps)
        if value is not _LOST or dps >= MAX_DIGITS:
            return (None if value is _LOST else value), min(EXACT.condition, 1e12)
        dps *= 2


def _plain_float(call: Callable[[], object]) -> tuple[float, bool]:
    """Return ``call()`` (the plain formula) as a float64 and whether it raises a
    floating-point error under ``np.errstate(..="raise")`` (underflow exempt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
                call()
            raises = False
        except (FloatingPointError, *_SKIP):
            raises = True
        with np.errstate(all="ignore"):
            try:
                return float(call()), raises
            except _SKIP:
                return math.nan, raises


def _quiet_call(call: Callable[[], object]) -> tuple[object, str | None]:
    """Return ``call()`` (an emitted function) and the floating-point error it raises under
    ``np.errstate(..="raise")``, if any (then the result is the one computed quietly)."""
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            return call(), None
    except FloatingPointError as exc:
        with np.errstate(all="ignore"):
            return call(), str(exc)


def _naive_value(ref: Reference, form: str, point, hyper) -> tuple[float, bool]:
    """Return the plain formula in float64 and whether it raises a floating-point error."""
    args = [np.float64(p) for p in (*point, *hyper)]
    fn = ref.naive(form)
    return _plain_float(lambda: fn(*args))


def _cached_naive(ref: Reference, form: str, point, hyper, cache: dict) -> tuple[float, bool]:
    """Return ``_naive_value``, computed once per form and point for every target's check."""
    key = ("naive", form, point)
    if key not in cache:
        cache[key] = _naive_value(ref, form, point, hyper)
    return cache[key]


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
    got, fp = _quiet_call(lambda: _call(fn, spec, point))
    naive = [_cached_naive(ref, form, point, hyper, cache) for form in forms]
    naive_raises = any(r for _, r in naive)
    for form, g, e, (plain, _) in zip(forms, got, exact, naive, strict=True):
        why = acceptable(g, plain, e, cache.get(("condition", form, point), 1.0))
        excused = naive_raises if strict != STRICT else abs(float(e)) > _BIG
        if why is None and strict and fp is not None and not excused:
            why = f"{_FP} error ({fp}) where the result is finite"
        if why is not None:
            label = name if len(forms) == 1 else f"{name}[{forms.index(form)}]"
            return Failure(spec.name, label, point, g, float(e), plain, why)
    return None


# ---------------------------------------------------------------- class-axis specs

#: Rows of the differentiated input for a class-axis spec (3 classes): typical logits, ties,
#: tiny ones, and rows whose logits lie far apart in both tails.
ROWS = (
    (0.5, -1.0, 2.0), (0.0, 0.0, 0.0), (1e-8, -1e-8, 0.0), (6.0, 6.0, -6.0),
    (30.0, -30.0, 0.0), (300.0, 0.0, -300.0), (700.0, -700.0, 0.0), (-700.0, -700.0, -699.0),
    (-2.5, 1.0, 2.5), (0.2, 0.3, 0.5), (1e-8, 0.5, 0.49999999), (1.0, 1e-300, 1e-12),
)  # fmt: skip
#: Rows of the other inputs (targets: one-hot and soft), and of the vector / cotangent.
OTHER_ROWS = ((0.0, 1.0, 0.0), (0.2, 0.5, 0.3), (1.0, 0.0, 0.0))
VECTOR_ROW = (1.0, -0.5, 0.25)


class ClassReference:
    """The plain forms of a class-axis spec, evaluated one row of classes at a time: each
    reduction (axis_sum, logsumexp) is evaluated over the row first, exactly or naively."""

    def __init__(self, spec: Spec) -> None:
        from symgrad.compiler.derive import derivative, hvp, vjp
        from symgrad.compiler.kernel import COTANGENT, VECTOR

        self.spec = spec
        value = _plain(spec.expr)
        self.elementwise = (*spec.inputs, VECTOR, COTANGENT)
        if spec.role == "activation":
            self.forms = {"value": value, "vjp": vjp(value, spec.wrt, COTANGENT)}
        else:
            grad = derivative(value, spec.wrt)
            total = axis_sum(value) if _varies(value, self.elementwise) else value
            self.forms = {
                "total": total,
                "grad": grad,
                "hess": derivative(grad, spec.wrt),
                "hvp": hvp(grad, spec.wrt, VECTOR),
            }
        self.hyper = {s: v for s, v in spec.hyper}
        #: (reduction, rows, arithmetic, digits) -> value: a row's reductions are shared by
        #: every class and every form
        self.reduced: dict = {}
        self.cache: dict = {}

    def evaluate(self, form: str, rows: dict, j: int, arith) -> object:
        """Return ``form`` at class ``j`` of ``rows`` (symbol -> row) in ``arith``."""
        expr = self.forms[form]
        number = mpmath.mpf if arith is EXACT else np.float64
        base = {s: number(v) for s, v in self.hyper.items()}
        base[N_CLASSES] = number(len(next(iter(rows.values()))))
        return evaluate(expr, self._env(expr, rows, j, base, arith, number), arith)

    def _env(self, expr, rows, j, base, arith, number) -> dict:
        env = dict(base)
        env.update({s: number(r[j]) for s, r in rows.items()})
        key = tuple(sorted((s.name, r) for s, r in rows.items()))
        for red in sorted(expr.atoms(*REDUCTIONS), key=sp.count_ops):
            at = (red, key, arith is EXACT, mpmath.mp.dps)
            if at not in self.reduced:
                self.reduced[at] = self._reduce(red, rows, base, arith, number)
            env[red] = self.reduced[at]
        return env

    def _reduce(self, red, rows, base, arith, number):
        arg = red.args[0]
        size = len(next(iter(rows.values())))
        values = [evaluate(arg, self._env(arg, rows, k, base, arith, number), arith)
                  for k in range(size)]  # fmt: skip
        if isinstance(red, axis_sum):
            return arith.add(values)
        if arith is EXACT:
            return _mp_log(arith.add([_mp_exp(v) for v in values]))
        top = max(values)  # the primitive as users know it (scipy.special.logsumexp)
        return top + np.log(sum(np.exp(v - top) for v in values))


def _varies(expr: sp.Expr, elementwise, memo: dict | None = None) -> bool:
    """Tell whether ``expr`` depends on an element-wise input outside every reduction (each
    distinct node visited once)."""
    memo = {} if memo is None else memo
    if expr not in memo:
        if isinstance(expr, REDUCTIONS):
            memo[expr] = False
        elif expr.is_Symbol:
            memo[expr] = expr in elementwise
        else:
            memo[expr] = any(_varies(a, elementwise, memo) for a in expr.args)
    return memo[expr]


def class_rows(spec: Spec) -> list[dict]:
    """Return the deterministic rows of a class-axis check: symbol -> row of 3 classes."""
    from symgrad.compiler.kernel import COTANGENT, VECTOR
    from symgrad.domains import contains

    out = []
    for i, row in enumerate(ROWS):
        rows = {spec.wrt: row}
        for k, s in enumerate(spec.inputs[1:]):
            rows[s] = OTHER_ROWS[(i + k) % len(OTHER_ROWS)]
        if all(contains(spec.domain(s.name), r) for s, r in rows.items()):
            rows[VECTOR] = rows[COTANGENT] = VECTOR_ROW
            out.append(rows)
    return out


def check_class_module(
    spec: Spec,
    module: ModuleType,
    functions: Sequence[str] | None = None,
    reference: ClassReference | None = None,
    fp: bool = True,
) -> dict[str, Failure]:
    """Return the first failure of each emitted function of class-axis ``spec`` in ``module``
    at the rows of ``class_rows`` (as ``check_module`` does element-wise)."""
    ref = reference or ClassReference(spec)
    failures: dict[str, Failure] = {}
    for suffix, forms in checked_functions(spec, ref.forms):
        name = spec.name + suffix
        fn = getattr(module, name, None)
        if fn is None or (functions is not None and name not in functions):
            continue
        for rows in class_rows(spec):
            failure = _check_row(ref, name, fn, forms, rows, fp)
            if failure is not None:
                failures[name] = failure
                break
    return failures


def _cached(fn: Callable) -> Callable:
    def wrapper(ref: ClassReference, form: str, rows: dict, j: int):
        key = (fn.__name__, form, tuple(sorted((s.name, r) for s, r in rows.items())), j)
        if key not in ref.cache:
            ref.cache[key] = fn(ref, form, rows, j)
        return ref.cache[key]

    return wrapper


@_cached
def _class_exact(ref: ClassReference, form: str, rows: dict, j: int):
    return _enough_digits(lambda: ref.evaluate(form, rows, j, EXACT), ())


@_cached
def _class_naive(ref: ClassReference, form: str, rows: dict, j: int) -> tuple[float, bool]:
    return _plain_float(lambda: ref.evaluate(form, rows, j, NAIVE))


def _call_row(fn, spec: Spec, name: str, rows: dict) -> list[np.ndarray]:
    from symgrad.compiler.kernel import COTANGENT, VECTOR

    args = [np.array([rows[s]], dtype=np.float64) for s in spec.inputs]
    if name.endswith("_hvp"):
        args.append(np.array([rows[VECTOR]], dtype=np.float64))
    elif name.endswith("_vjp"):
        args.append(np.array([rows[COTANGENT]], dtype=np.float64))
    out = fn(*args)
    return [np.ravel(o) for o in (out if isinstance(out, tuple) else (out,))]


def _check_row(ref: ClassReference, name, fn, forms, rows, fp: bool) -> Failure | None:
    spec = ref.spec
    got, error = _quiet_call(lambda: _call_row(fn, spec, name, rows))
    point = tuple(rows[spec.wrt])
    # an error anywhere in the row is excused where the plain formula raises one in that row
    plain_raises = any(
        _class_naive(ref, form, rows, 0 if form == "total" else j)[1]
        for form, values in zip(forms, got, strict=True)
        for j in range(len(values))
    )
    for form, values in zip(forms, got, strict=True):
        for j, g in enumerate(values):
            k = 0 if form == "total" else j
            exact, condition = _class_exact(ref, form, rows, k)
            if exact is None:
                break
            plain, _ = _class_naive(ref, form, rows, k)
            why = acceptable(float(g), plain, exact, condition)
            if why is None and fp and error is not None and not plain_raises:
                why = f"{_FP} error ({error}) where the result is finite"
            if why is not None:
                label = f"{name}[{j}]"
                return Failure(spec.name, label, point, float(g), float(exact), plain, why)
    return None
