"""Bits of error, Herbie's metric, of the emitted value, gradient and second derivative.

For each case (a loss or activation written by hand, or a textbook cancellation problem from
Hamming's *Numerical Methods for Scientists and Engineers*, ch. 3, as Herbie's benchmark suite
has them), points are drawn uniformly over the float64 bit patterns of the input's domain and
each result is scored as log2(1 + the number of doubles between it and the exact value
rounded to float64); a non-finite result where the exact value is a finite double scores 64.
Points where the exact value is not a finite double are redrawn. The exact value is the
plain formula evaluated in mpmath with digits raised until they agree (safe mode's reference,
``symgrad/compiler/check.py``). Three evaluations are compared:

- ``symgrad``: the emitted ``f``, ``f_grad``, ``f_hess`` (safe mode on);
- ``naive``: ``sympy.lambdify`` of sympy's derivatives of the expression as written;
- ``jax``: ``jax.grad`` (twice for the second derivative) of the expression lambdified to
  jax.numpy, in float64 (skipped, and said so, when jax is not installed).

    PYTHONPATH=. python benchmarks/accuracy.py               # the table, 64 points per case
    PYTHONPATH=. python benchmarks/accuracy.py --points 256 --only focal
    PYTHONPATH=. python benchmarks/accuracy.py --symgrad-from /path/to/other/checkout

``--symgrad-from`` also compiles the cases with another checkout of symgrad (in a subprocess
run there) and scores its emitted code as the column "before", against the same points and
reference: the before/after table in docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

X = sp.Symbol("x", real=True)
FORMS = ("value", "grad", "hess")
SUFFIX = {"value": "", "grad": "_grad", "hess": "_hess"}
BIG = 1.7976931348623157e308


@dataclass(frozen=True)
class Case:
    """One function of ``X`` on the domain [low, high]."""

    name: str
    group: str
    expr: sp.Expr
    low: float = -BIG
    high: float = BIG


def _sig(u: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-u))


def _focal(y: int, gamma_pos: float, gamma_neg: float) -> sp.Expr:
    p = _sig(X)
    return -(y * (1 - p) ** gamma_pos * sp.log(p) + (1 - y) * p**gamma_neg * sp.log(1 - p))


def _tweedie(y: float, power: float) -> sp.Expr:
    mu = sp.exp(X)
    a, b = sp.Float(1 - power), sp.Float(2 - power)
    return 2 * (y**b / (a * b) - y * mu**a / a + mu**b / b)


_C = sp.Float(4.685)  # Tukey's constant
_HALF = sp.Rational(1, 2)

#: (a) losses and activations as users write them by hand (logits and residuals: all reals)
CORPUS = (
    Case("focal_y1", "corpus", _focal(1, 2, 2)),
    Case("focal_y0", "corpus", _focal(0, 2, 2)),
    Case("asym_focal_y1", "corpus", _focal(1, 1, 4)),
    Case("asym_focal_y0", "corpus", _focal(0, 1, 4)),
    Case("log_cosh", "corpus", sp.log(sp.cosh(X))),
    Case(
        "tukey",
        "corpus",
        sp.Piecewise(
            (_C**2 / 6 * (1 - (1 - (X / _C) ** 2) ** 3), sp.Abs(X) <= _C), (_C**2 / 6, True)
        ),
    ),
    Case("cauchy", "corpus", sp.log(1 + (X / 2) ** 2) * 2),
    Case("pseudo_huber", "corpus", 4 * (sp.sqrt(1 + (X / 2) ** 2) - 1)),
    Case("poisson_dev", "corpus", 2 * (2 * sp.log(2) - 2 * X - 2 + sp.exp(X))),
    Case("gamma_dev", "corpus", 2 * (X - sp.log(2) + 2 * sp.exp(-X) - 1)),
    Case("tweedie_dev", "corpus", _tweedie(2.0, 1.5)),
    Case("smooth_quantile", "corpus", sp.Float(0.3) * X + _HALF * sp.log(1 + sp.exp(-2 * X))),
    Case("softplus", "corpus", sp.log(1 + sp.exp(X))),
    Case("softplus_beta", "corpus", sp.log(sp.exp(2 * X) + 1) / 2),
    Case("log_sigmoid", "corpus", sp.log(_sig(X))),
    Case("log_sigmoid_ratio", "corpus", sp.log(sp.exp(X) / (1 + sp.exp(X)))),
    Case("log_one_minus_sigmoid", "corpus", sp.log(1 - _sig(X))),
    Case("gelu", "corpus", X / 2 * (1 + sp.erf(X / sp.sqrt(2)))),
    Case(
        "gelu_tanh",
        "corpus",
        X / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (X + sp.Float(0.044715) * X**3))),
    ),
    Case("swish", "corpus", X / (1 + sp.exp(-X))),
    Case("swish_beta", "corpus", X * _sig(sp.Float(1.5) * X)),
    Case("mish", "corpus", X * sp.tanh(sp.log(1 + sp.exp(X)))),
)

#: (b) Hamming's chapter-3 problems (Herbie's "hamming" benchmarks), one input each
HAMMING = (
    Case("2sqrt", "hamming", sp.sqrt(X + 1) - sp.sqrt(X), 0.0, BIG),
    Case("2isqrt", "hamming", 1 / sp.sqrt(X) - 1 / sp.sqrt(X + 1), 5e-324, BIG),
    Case("2frac", "hamming", 1 / (X + 1) - 1 / X, 5e-324, BIG),
    Case("3frac", "hamming", 1 / (X + 1) - 2 / X + 1 / (X - 1), 1.0000000000000002, BIG),
    Case("2log", "hamming", sp.log(X + 1) - sp.log(X), 5e-324, BIG),
    Case("2atan", "hamming", sp.atan(X + 1) - sp.atan(X)),
    Case("2cbrt", "hamming", (X + 1) ** sp.Rational(1, 3) - X ** sp.Rational(1, 3), 0.0, BIG),
    Case("expm1", "hamming", sp.exp(X) - 1),
    Case("exp2", "hamming", sp.exp(X) - 2 + sp.exp(-X)),
    Case("expq2", "hamming", sp.exp(X) / (sp.exp(X) - 1)),
    Case("2sinh", "hamming", sp.exp(X) - sp.exp(-X)),
    Case("cos2", "hamming", (1 - sp.cos(X)) / X**2, -1e4, 1e4),
    Case("tanhf", "hamming", (1 - sp.cos(X)) / sp.sin(X), -1e4, 1e4),
    Case("invcot", "hamming", 1 / X - 1 / sp.tan(X), -1e4, 1e4),
    Case("sintan", "hamming", (X - sp.sin(X)) / (X - sp.tan(X)), -1e4, 1e4),
    Case("qlog", "hamming", sp.log(1 - X) / sp.log(1 + X), -1.0, 1.0),
    Case("logq", "hamming", sp.log((1 - X) / (1 + X)), -1.0, 1.0),
    Case("sqrtexp", "hamming", sp.sqrt((sp.exp(2 * X) - 1) / (sp.exp(X) - 1))),
    Case("logs", "hamming", (X + 1) * sp.log(X + 1) - X * sp.log(X) - 1, 5e-324, BIG),
)

CASES = CORPUS + HAMMING


# ---------------------------------------------------------------- float64 bit patterns


def _metric():
    """Return symgrad's module of Herbie's metric (``ordinal``, ``from_ordinal``,
    ``bits_of_error``: one definition, the search's own), imported when scoring: the
    subprocess that renders an older checkout's code imports this file without it."""
    from symgrad.compiler import search

    return search


def sample(low: float, high: float, n: int, rng: np.random.Generator) -> list[float]:
    """Return ``n`` doubles drawn uniformly over the bit patterns between ``low`` and ``high``."""
    metric = _metric()
    a, b = metric.ordinal(low), metric.ordinal(high)
    draws = rng.integers(a, b, size=n, endpoint=True, dtype=np.int64)
    return [metric.from_ordinal(int(i)) for i in draws]


# ---------------------------------------------------------------- the three evaluations


def spec_of(case: Case):
    import symgrad as sg

    return sg.Spec(kernel_name(case), "activation", (X,), (), case.expr)


def kernel_name(case: Case) -> str:
    """Return the emitted kernel's name (Herbie's names may start with a digit)."""
    return case.name if case.name.isidentifier() else f"h{case.name}"


def _symgrad_module(case: Case):
    import symgrad as sg

    return sg.compile(spec_of(case))


def _from_source(text: str):
    from types import ModuleType

    module = ModuleType("accuracy_other")
    exec(compile(text, "<accuracy_other>", "exec"), module.__dict__)  # noqa: S102 - ours
    return module


_OTHER_SCRIPT = """
import json, sys
sys.path.insert(0, {bench!r})
import accuracy
out = {{}}
for case in accuracy.CASES:
    try:
        out[case.name] = accuracy._symgrad_module(case).__source__
    except Exception as exc:  # refused or failed: scored as an error
        out[case.name] = "error: " + type(exc).__name__ + ": " + str(exc)[:200]
json.dump(out, sys.stdout)
"""


def other_sources(root: str) -> dict[str, str]:
    """Return each case's emitted module source compiled by the symgrad checkout at ``root``."""
    env = {**os.environ, "PYTHONPATH": root, "SYMGRAD_SKIP_PACKAGING": "1"}
    script = _OTHER_SCRIPT.format(bench=os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(  # (run there: python -c puts the working directory first)
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    return json.loads(done.stdout)


def symgrad_functions(case: Case, source: str | None = None) -> dict[str, Callable] | str:
    """Return the emitted value/grad/hess of ``case`` (or why it did not compile)."""
    try:
        if source is None:
            module = _symgrad_module(case)
        elif source.startswith("error: "):
            return source[len("error: ") :]
        else:
            module = _from_source(source)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return f"{type(exc).__name__}: {exc}"[:200]
    return {form: getattr(module, kernel_name(case) + SUFFIX[form]) for form in FORMS}


def naive_functions(case: Case) -> dict[str, Callable]:
    """Return lambdify of sympy's own derivatives of the expression as written."""
    grad = sp.diff(case.expr, X)
    forms = {"value": case.expr, "grad": grad, "hess": sp.diff(grad, X)}
    return {f: sp.lambdify(X, e, "numpy") for f, e in forms.items()}


def jax_functions(case: Case) -> dict[str, Callable] | str:
    """Return jax.grad of the expression as written (lambdified to jax.numpy, float64)."""
    try:
        import jax
    except ImportError:
        return "jax is not installed"
    jax.config.update("jax_enable_x64", True)
    f = sp.lambdify(X, case.expr, "jax")
    g = jax.grad(f)
    h = jax.grad(g)
    return {
        "value": jax.jit(jax.vmap(f)),
        "grad": jax.jit(jax.vmap(g)),
        "hess": jax.jit(jax.vmap(h)),
    }


# ---------------------------------------------------------------- scoring


def exact_values(case: Case, form: str, xs: list[float]) -> list[float | None]:
    """Return the exact ``form`` at each of ``xs`` rounded to float64, None where it is not a
    finite double (or the reference cannot settle it)."""
    from symgrad.compiler import check

    ref = _reference(case)
    out = []
    for x in xs:
        value, _ = check._enough_digits(ref.exact(form), (x,))
        v = None if value is None else float(value)
        out.append(v if v is not None and math.isfinite(v) else None)
    return out


_REFS: dict = {}


def _reference(case: Case):
    from symgrad.compiler import check

    if case.name not in _REFS:
        _REFS[case.name] = check.Reference(spec_of(case), math.inf)
    return _REFS[case.name]


def points(case: Case, form: str, n: int, seed: int) -> tuple[list[float], list[float]]:
    """Return up to ``n`` points of the domain where ``form`` is a finite double, and its exact
    values there (drawn in rounds from a generator seeded by ``seed`` and the case)."""
    rng = np.random.default_rng([seed, sum(map(ord, case.name)), FORMS.index(form)])
    xs: list[float] = []
    exact: list[float] = []
    for _ in range(8):
        draw = sample(case.low, case.high, n, rng)
        for x, e in zip(draw, exact_values(case, form, draw), strict=True):
            if e is not None and len(xs) < n:
                xs.append(x)
                exact.append(e)
        if len(xs) >= n:
            break
    return xs, exact


def _call(fn: Callable, xs: list[float]) -> list[float]:
    with np.errstate(all="ignore"):
        try:
            out = np.asarray(fn(np.array(xs, dtype=np.float64)), dtype=np.float64)
        except Exception:  # noqa: BLE001 - a function that raises scores 64 bits
            return [math.nan] * len(xs)
    return [float(v) for v in np.broadcast_to(out, (len(xs),))]


def score(case: Case, n: int, seed: int, before: str | None = None) -> dict:
    """Return {method: {form: mean bits}} (or {method: reason}) for one case; ``before`` is
    the module source another checkout emits for it (scored as method "before")."""
    methods = {
        "symgrad": symgrad_functions(case),
        "naive": naive_functions(case),
        "jax": jax_functions(case),
    }
    if before is not None:
        methods = {"before": symgrad_functions(case, before), **methods}
    out: dict = {m: (fns if isinstance(fns, str) else {}) for m, fns in methods.items()}
    for form in FORMS:
        xs, exact = points(case, form, n, seed)
        for method, fns in methods.items():
            if isinstance(fns, str):
                continue
            if not xs:
                fns_bits = math.nan
            else:
                got = _call(fns[form], xs)
                fns_bits = sum(map(_metric().bits_of_error, got, exact)) / len(xs)
            out[method][form] = fns_bits
        out.setdefault("points", {})[form] = len(xs)
    return out


def _cell(result: dict, method: str, form: str) -> str:
    r = result[method]
    if isinstance(r, str):
        return "error" if method in ("symgrad", "before") else "n/a"
    v = r.get(form, math.nan)
    return "-" if math.isnan(v) else f"{v:.1f}"


def table(results: dict[str, dict], methods: tuple[str, ...]) -> str:
    """Return the markdown table: one row per case, bits per method and order, group means."""
    head = "| case | " + " | ".join(f"{f} {m}" for f in FORMS for m in methods) + " |"
    lines = [head, "|" + "---|" * (1 + len(FORMS) * len(methods))]
    for group in ("corpus", "hamming"):
        sums: dict = {}
        for case in CASES:
            if case.group != group or case.name not in results:
                continue
            r = results[case.name]
            cells = [_cell(r, m, f) for f in FORMS for m in methods]
            lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
            for f in FORMS:
                for m in methods:
                    v = r[m] if isinstance(r[m], str) else r[m].get(f, math.nan)
                    if not isinstance(v, str) and not math.isnan(v):
                        sums.setdefault((f, m), []).append(v)
        means = [
            f"**{sum(sums[(f, m)]) / len(sums[(f, m)]):.1f}**" if sums.get((f, m)) else "-"
            for f in FORMS
            for m in methods
        ]
        lines.append(f"| *{group} mean* | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=64, help="points per case and order")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument(
        "--symgrad-from", help="also score the code another symgrad checkout (this path) emits"
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    sources = other_sources(args.symgrad_from) if args.symgrad_from else {}
    results = {}
    for case in cases:
        results[case.name] = score(case, args.points, args.seed, sources.get(case.name))
        print(f"{case.name}: {json.dumps(results[case.name])}", file=sys.stderr)
    methods = ("symgrad", "naive", "jax")
    if all(isinstance(r["jax"], str) for r in results.values()):
        print("jax is not installed: no jax column", file=sys.stderr)
        methods = ("symgrad", "naive")
    if sources:
        methods = ("before", *methods)
    print(table(results, methods))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
