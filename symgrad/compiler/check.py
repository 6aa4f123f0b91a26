"""Safe mode: run every emitted function at fixed points and compare it with a 50-digit mpmath
evaluation of sympy's own derivative of the plain (unrewritten) expression.

The bar is the plain formula itself: an emitted result may be no less accurate than that
derivative evaluated naively in float64 (up to ``TOLERANCE``), and must be finite wherever the
naive form is. This is how symgrad checks its own rewrites, as black's safe mode checks its
own formatting: a stabilizing rule that loses accuracy somewhere is caught before any write.
"""

from __future__ import annotations

import math
import random
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

import mpmath
import numpy as np
import sympy as sp

from symgrad.compiler.config import DEFAULT
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
from symgrad.compiler.traverse import Interner, atoms_of, derivative, replace_types

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
#: The stronger contract (docs/fuzzing.md): a relative error within this many ulps times the
#: condition number of the function itself (``Reference.condition``), not of the formula.
CONTRACT_ULPS = 16.0
#: The relative step of the condition number's difference quotient (the reference holds 30
#: digits or more beyond it).
_STEP = mpmath.mpf(10) ** -20
#: Below this magnitude a result and the exact value are as good as float64 allows (0 and
#: the subnormals), in the floor's check, the stronger contract and the search's scoring.
TINY = 1e-290
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


#: What a float64 evaluation of the plain formula costs, in digits of a reference one.
_NAIVE_COST = 4 * DIGITS


class Work:
    """The check's budget as a count of work, not time: each reference evaluation costs its
    form's distinct nodes times its digits / DIGITS. Points met after the budget is spent
    are left unchecked, the same points on every machine however loaded, so what safe mode
    lets through (and with it the emitted code) never depends on the machine's speed."""

    def __init__(self, forms: dict, limit: float) -> None:
        self.left = limit
        self.sizes = {}
        for form, expr in forms.items():
            intern = Interner()
            intern(expr)
            self.sizes[form] = len(intern.table)

    def charge(self, form: str, dps: int) -> bool:
        """Spend one evaluation of ``form`` at ``dps`` digits (a float64 evaluation of the
        plain formula costs ``_NAIVE_COST``: it sorts each sum as sympy prints it); False once
        none is left."""
        cost = self.sizes[form] * dps / DIGITS
        if cost > self.left:  # (no overdraft: one 3200-digit evaluation can cost minutes)
            return False
        self.left -= cost
        return True


class Reference:
    """The plain forms of one spec (value, gradient, second derivative), exact and naive."""

    def __init__(self, spec: Spec, work: float = DEFAULT.check_work) -> None:
        self.spec = spec
        value = _plain(spec.expr)
        grad = derivative(value, spec.wrt)  # sp.diff's result, once per distinct node
        self.forms = {"value": value, "grad": grad, "hess": derivative(grad, spec.wrt)}
        self.args = [*spec.inputs, *(s for s, _ in spec.hyper)]
        self.work = Work(self.forms, work)
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

    def condition(
        self, form: str, point: Sequence, hyper: Sequence, charge: Callable | None = None
    ) -> float | None:
        """Return the condition number of the function ``form`` itself at ``point``:
        sum over every input and hyper-parameter p_i of |p_i df/dp_i| / |f|, from a forward
        difference at a relative step of 1e-20 in the reference's digits. It is how much any
        algorithm must lose from the rounding of its inputs alone, whatever the formula
        (``1 - cos x`` near 0 has condition 2: its cancellation is the formula's, not the
        function's). None where the reference is undefined or the work budget is spent
        (``charge(form, dps)``, by default this reference's own ``Work``)."""
        key = ("function_condition", form, tuple(point))
        cache = self.exact_cache
        if key in cache:
            return cache[key]
        args = (*point, *hyper)
        exact = self.exact(form)
        spend = charge or self.work.charge
        charge = lambda dps: spend(form, dps)  # noqa: E731
        base = cache.get((form, tuple(point)))
        if base is None:
            base, _ = _enough_digits(exact, args, charge)
        out = None
        if base is not None and mpmath.isfinite(base) and base != 0:
            total = mpmath.mpf(0)
            for i, p in enumerate(args):
                if p == 0:
                    continue  # (p_i df/dp_i is 0 there)
                with mpmath.workdps(DIGITS):
                    moved = list(map(mpmath.mpf, args))
                    moved[i] = moved[i] * (1 + _STEP)
                value, _ = _enough_digits(exact, moved, charge)
                if value is None or not mpmath.isfinite(value):
                    total = None
                    break
                with mpmath.workdps(DIGITS):
                    total += abs((value - base) / (_STEP * base))
            out = None if total is None else float(total)
        cache[key] = out
        return out

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


def within_contract(got: float, exact, condition: float) -> bool:
    """Tell whether ``got`` keeps the stronger contract against ``exact``: relative error at
    most ``CONTRACT_ULPS`` ulps times the function's own ``condition`` (at least 1), or both
    below the normal range (as good as float64 allows)."""
    if not math.isfinite(got):
        return False
    if abs(float(exact)) < TINY and abs(got) < TINY:
        return True
    return relative_error(got, exact) <= CONTRACT_ULPS * EPS * max(1.0, condition)


def breaks_contract(  # noqa: PLR0913
    ref: Reference, form: str, point, hyper, got: float, exact, *, charge: Callable | None = None
) -> bool | None:
    """Tell whether ``got`` breaks the stronger contract at ``point``: the function's condition
    number (``Reference.condition``, charged to ``charge``) is computed only where the error
    passes ``CONTRACT_ULPS`` ulps. None where that number is out of reach (budget spent,
    reference undefined): the caller decides."""
    if within_contract(got, exact, 1.0):
        return False
    condition = ref.condition(form, point, hyper, charge)
    return None if condition is None else not within_contract(got, exact, condition)


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
    if abs(float(exact)) < TINY and abs(got) < TINY:
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


#: Seeded random points checked after the fixed ones (the seed is the spec's name).
RANDOM_POINTS = 8


def _seed(spec: Spec) -> int:
    """Return a seed from ``spec``'s name alone (not Python's salted hash)."""
    return zlib.crc32(spec.name.encode())


def _draw(rng: random.Random, domain: str) -> float:
    """Return one value in ``domain``: spread over magnitudes 1e-3 .. 1e3 and both signs."""
    if domain in ("unit", "open_unit", "simplex"):
        return rng.choice((rng.random(), rng.uniform(1e-6, 1e-3), 1 - rng.uniform(1e-6, 1e-3)))
    if domain == "sign":
        return rng.choice((-1.0, 1.0))
    magnitude = 10 ** rng.uniform(-3, 3) if rng.random() < 0.5 else rng.uniform(0, 4)
    if domain in ("positive", "nonnegative"):
        return magnitude
    if domain == "log_simplex":
        return -magnitude
    return magnitude if rng.random() < 0.5 else -magnitude


def random_points(spec: Spec, k: int = RANDOM_POINTS) -> list[tuple[float, ...]]:
    """Return ``k`` points drawn from a generator seeded by the spec's name (so the check,
    and with it the emitted code, is the same on every run): every input, the second ones
    included, takes values between and beyond the fixed grid, within its declared domain."""
    rng = random.Random(_seed(spec))
    return [tuple(_draw(rng, spec.domain(s.name)) for s in spec.inputs) for _ in range(k)]


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
        for point in pts if pts is not None else points(spec) + random_points(spec):
            failure = _check_point(
                spec, ref, name, fn, forms, point, hyper=hyper, cache=exact_cache, strict=fp
            )
            if failure is not None:
                failures[name] = failure
                break
    if pts is None:
        failures.update(
            check_batches(spec, module, functions, ref, exact_cache, failures, fp=bool(fp))
        )
    return failures


def outside_contract(
    spec: Spec,
    module: ModuleType,
    pts: Sequence[tuple[float, ...]],
    reference: Reference | None = None,
) -> list[tuple[str, tuple[float, ...], float, float, float]]:
    """Return (function, point, got, exact, condition) wherever an emitted value, gradient or
    second derivative of ``spec`` in ``module`` breaks the stronger contract
    (``within_contract``, scaled by the function's own condition number) at ``pts``: what the
    fuzzer and ``benchmarks/fuzz_explore.py --contract`` measure. Points at a kink, where the
    reference is undefined or out of budget, or where the emitted call raises are skipped
    (the floor's check reports those)."""
    ref = reference or Reference(spec)
    hyper = [v for _, v in spec.hyper]
    out = []
    for suffix, forms in checked_functions(spec, ref.forms):
        fn = getattr(module, spec.name + suffix, None)
        if fn is None:
            continue
        for point in pts:
            if ref.near_switch((*point, *hyper)):
                continue
            with np.errstate(all="ignore"):
                try:
                    got = _call(fn, spec, point)
                except (ArithmeticError, ValueError, TypeError):
                    continue
            for g, form in zip(got, forms, strict=True):
                exact = _exact_value(ref, form, point, hyper, ref.exact_cache)
                if exact is None or not mpmath.isfinite(exact) or abs(exact) > _BIG:
                    continue
                if breaks_contract(ref, form, point, hyper, g, exact):
                    condition = ref.condition(form, point, hyper)  # (cached by the call above)
                    out.append((spec.name + suffix, tuple(point), g, float(exact), condition))
    return out


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
        charge = lambda dps: ref.work.charge(form, dps)  # noqa: E731
        value, condition = _enough_digits(ref.exact(form), (*point, *hyper), charge)
        cache[key] = value
        cache[("condition", form, point)] = condition
    return cache[key]


def _enough_digits(
    fn: Callable, args, charge: Callable[[int], bool] | None = None
) -> tuple[object, float]:
    """Return ``fn(*args)`` in mpmath from DIGITS digits, doubled while precision is lost
    (None if it still is at MAX_DIGITS, or once ``charge(dps)`` says the work budget is
    spent), and the condition number the evaluation saw."""
    dps, previous = DIGITS, _LOST
    while True:
        if charge is not None and not charge(dps):
            return None, 1.0
        EXACT.condition = 1.0
        value = _evaluate(fn, args, dps)
        condition = EXACT.condition
        settled = value is not _LOST and (
            value is None or condition < _TRUSTED or _agree(previous, value)
        )
        if settled or dps >= MAX_DIGITS:
            return (None if value is _LOST or not settled else value), min(condition, 1e12)
        # each sum may cancel up to 25 digits unnoticed, and chained sums compound: where the
        # formula is this ill-conditioned the value stands only once twice the digits agree
        previous = value
        dps *= 2


#: Below this condition number (sum(|terms|) / |sum|, or the amplification of exp and log)
#: the DIGITS-digit reference is trusted as it is; above, it is confirmed at twice the digits.
_TRUSTED = 1e4


def _agree(a, b) -> bool:
    """Tell whether two reference values agree to far more than float64's 17 digits."""
    if a is _LOST or a is None:
        return False
    return abs(a - b) <= abs(b) * mpmath.mpf(10) ** -30


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
    if any(e is None for e in exact) or not all(ref.work.charge(f, _NAIVE_COST) for f in forms):
        return None
    if ref.near_switch((*point, *hyper)):
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


# ---------------------------------------------------------------- reductions over a batch

#: Elements per batch, and the weights a loss's batch is checked with.
BATCH = 5
BATCH_WEIGHTS = (1.0, 0.5, 2.0, 0.0, 3.0)
#: (weighted, count=) of each batch call of a loss: plain mean, weighted mean, count= alone
#: (blocks adding up) and both.
_LOSS_BATCHES = ((False, None), (True, None), (False, 3.0), (True, 7.0))


def _batch_points(spec: Spec, ref: Reference, hyper, cache: dict) -> list[tuple[float, ...]]:
    """Return up to BATCH points (random ones first, then the grid) where every form of the
    plain formula is a finite float64 number away from any kink."""
    chosen: list[tuple[float, ...]] = []
    for point in random_points(spec) + points(spec):
        if point in chosen or ref.near_switch((*point, *hyper)):
            continue
        exact = [_exact_value(ref, form, point, hyper, cache) for form in ref.forms]
        if all(e is not None and abs(float(e)) < 1e300 for e in exact):
            chosen.append(point)
            if len(chosen) == BATCH:
                break
    return chosen


def check_batches(  # noqa: PLR0913
    spec: Spec,
    module: ModuleType,
    functions: Sequence[str] | None,
    ref: Reference,
    cache: dict,
    failed: dict | None = None,
    *,
    fp: bool = True,
) -> dict[str, Failure]:
    """Return the first failure of each emitted function of element-wise ``spec`` called on a
    batch of several elements: a loss's mean (plain, with ``weight=``, with ``count=``, with
    both) and its derivatives over the same divisor, a regularizer's sum, an activation's
    values, each element against the exact plain formula (a term constant in the inputs must
    count once per element, and a weight of 0 must drop its element). With ``fp``, as
    ``check_module``'s, a floating-point error where the result is finite fails too (the
    array-api and cupy targets promise no quiet floating-point state, only right numbers)."""
    if spec.class_axis:
        return {}  # (class-axis rows are checked by check_class_module)
    hyper = [v for _, v in spec.hyper]
    batch = _batch_points(spec, ref, hyper, cache)
    if len(batch) < 2:
        return {}
    failures: dict[str, Failure] = {}
    calls = _LOSS_BATCHES if spec.role == "loss" else ((False, None),)
    for suffix, forms in checked_functions(spec, ref.forms):
        name = spec.name + suffix
        fn = getattr(module, name, None)
        if (
            fn is None
            or (functions is not None and name not in functions)
            or name in (failed or {})
        ):
            continue
        for weighted, count in calls:
            failure = _check_batch(
                spec, ref, name, fn, forms, batch=batch, call=(weighted, count), cache=cache, fp=fp
            )
            if failure is not None:
                failures[name] = failure
                break
    return failures


def _check_batch(  # noqa: PLR0913
    spec, ref, name, fn, forms, *, batch, call, cache, fp: bool = True
) -> Failure | None:
    weighted, count = call
    hyper = [v for _, v in spec.hyper]
    w = BATCH_WEIGHTS[: len(batch)] if weighted else (1.0,) * len(batch)
    loss = spec.role == "loss"
    divisor = (count or (sum(w) if weighted else len(batch))) if loss else 1.0
    arrays = [np.array(column, dtype=np.float64) for column in zip(*batch, strict=True)]
    kwargs = {}
    if loss:
        kwargs = {"weight": np.array(w) if weighted else None, "count": count}
    got, error = _quiet_call(lambda: fn(*arrays, **kwargs))
    error = error if fp else None
    outs = got if isinstance(got, tuple) else (got,)
    label = f"{name}[batch of {len(batch)}" + (", weighted" if weighted else "")
    label += f", count={count:g}]" if count else "]"
    for form, out in zip(forms, outs, strict=True):
        exact = [_exact_value(ref, form, p, hyper, cache) for p in batch]
        if any(e is None for e in exact) or not ref.work.charge(form, _NAIVE_COST * len(batch)):
            return None
        naive = [_naive_value(ref, form, p, hyper) for p in batch]
        raises = any(r for _, r in naive)
        cond = max(cache.get(("condition", form, p), 1.0) for p in batch)
        if form == "value" and spec.role != "activation":
            terms = [mpmath.mpf(wi) * e for wi, e in zip(w, exact, strict=True)]
            total = mpmath.fsum(terms) / divisor
            plain = float(sum(np.float64(wi) * v for wi, (v, _) in zip(w, naive, strict=True)))
            spread = mpmath.fsum(abs(t) for t in terms) / divisor
            cond = max(cond, float(spread / abs(total)) if total else 1.0)
            checks = [(float(np.ravel(out)[0]), plain / divisor, total)]
        else:
            values = np.ravel(out)
            checks = [
                (float(g), float(np.float64(wi) * v / divisor), mpmath.mpf(wi) * e / divisor)
                for g, wi, e, (v, _) in zip(values, w, exact, naive, strict=True)
            ]
        for g, plain, e in checks:
            why = acceptable(g, plain, e, cond)
            if why is None and error is not None and not raises:
                why = f"{_FP} error ({error}) where the result is finite"
            if why is not None:
                return Failure(spec.name, label, batch[0], g, float(e), plain, why)
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

    def __init__(self, spec: Spec, work: float = DEFAULT.check_work) -> None:
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
        self.work = Work(self.forms, work)
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
    charge = lambda dps: ref.work.charge(form, dps)  # noqa: E731
    return _enough_digits(lambda: ref.evaluate(form, rows, j, EXACT), (), charge)


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
