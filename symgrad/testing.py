"""Gradient-check emitted kernels against central finite differences at random and awkward points."""

# Every derivative a kernel emits is compared, one sample (or one class-axis row) at a time,
# with float64 central differences of the function it differentiates: ``_grad`` (or ``_vjp``)
# against the value, ``_hess`` (or ``_hvp``) against ``_grad``, and ``_value_and_grad``
# against both. Points where the function is undefined (non-finite nearby) are skipped, and so
# are points within a step of a kink or jump (one-sided and finer differences disagree). The
# relative error of a point is ``|emitted - fd| / max(1, |fd|)``.

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from symgrad.compiler.spec import Spec

#: Awkward values for inputs over the real line, over (0, 1), over (0, inf) and for labels.
AWKWARD = {
    "real": (0.0, 1e-8, -1e-8, 30.0, -30.0, 700.0, -700.0),
    "unit": (1e-8, 1 - 1e-8, 1e-4, 0.5),
    "positive": (1e-8, 1e-4, 30.0, 700.0),
    "sign": (-1.0, 1.0),
    "log_simplex": (np.log(1e-8), np.log(0.5)),
}
#: What the other inputs (targets, weights) take at awkward points, besides random values.
SPECIAL = {
    "real": (0.0,),
    "unit": (0.0, 1.0),
    "positive": (1.0,),
    "sign": (-1.0, 1.0),
    "log_simplex": (np.log(0.5),),
}
#: Domains tried, in order, for an input whose spec declares none.
DOMAINS = ("real", "unit", "positive")
#: A declared domain (symgrad.domains) -> the sampler that draws points inside it.
DECLARED = {
    "real": "real",
    "positive": "positive",
    "nonnegative": "positive",
    "unit": "unit",
    "open_unit": "unit",
    "simplex": "unit",
    "sign": "sign",
    "log_simplex": "log_simplex",
}
EPS = np.finfo(float).eps
#: A loss whose second derivative is zero or negative on more than this share of the sampled
#: points gets a note: a boosting library's Newton step (-g / h) is undefined there.
FLAT_SHARE = 0.25
N_RANDOM = 16
N_CLASSES = 4


@dataclass
class Check:
    """The result of comparing one emitted function with finite differences."""

    function: str
    checked: int = 0
    skipped: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether every checked point agreed."""
        return not self.failures


@dataclass
class KernelResult:
    """Every check of one kernel, plus the sampling domains chosen for its inputs."""

    name: str
    checks: list[Check]
    domains: dict[str, str] = field(default_factory=dict)
    error: str = ""
    #: For a loss: the share of sampled points where its second derivative is <= 0.
    flat_share: float | None = None

    @property
    def ok(self) -> bool:
        """Tell whether every check passed and nothing raised."""
        return not self.error and all(c.ok for c in self.checks)

    @property
    def max_abs(self) -> float:
        """Return the largest absolute error over all checks."""
        return max((c.max_abs for c in self.checks), default=0.0)

    @property
    def max_rel(self) -> float:
        """Return the largest relative error over all checks."""
        return max((c.max_rel for c in self.checks), default=0.0)

    @property
    def checked(self) -> int:
        """Return the number of points compared, over all checks."""
        return sum(c.checked for c in self.checks)

    @property
    def skipped(self) -> int:
        """Return the number of points skipped (undefined, or at a kink), over all checks."""
        return sum(c.skipped for c in self.checks)

    def notes(self) -> list[str]:
        """Return one line per finding that is not a failure (a loss unusable for boosting)."""
        if self.flat_share is None or self.flat_share <= FLAT_SHARE:
            return []
        return [
            f"{self.name}: the second derivative is zero or negative on "
            f"{self.flat_share:.0%} of the sampled points: unusable for boosting as it stands "
            "(symgrad.boosting's hessian= policy replaces it)"
        ]

    def problems(self) -> list[str]:
        """Return one line per failure, naming the function and the point."""
        if self.error:
            return [f"{self.name}: {self.error}"]
        return [f"{self.name}: {msg}" for c in self.checks for msg in c.failures[:3]]


def _sample(domain: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if domain == "real":
        return rng.normal(size=shape) * 3
    if domain == "positive":
        return rng.exponential(2.0, size=shape) + 0.05
    if domain == "sign":
        return rng.choice([-1.0, 1.0], size=shape)
    if domain == "log_simplex":
        return np.log(_sample("unit", shape, rng))
    if len(shape) == 2:  # a class axis: rows on the probability simplex
        return rng.dirichlet(np.ones(shape[1]), size=shape[0])
    return rng.uniform(0.02, 0.98, size=shape)


def _awkward_rows(domain: str, n_classes: int | None) -> np.ndarray:
    values = np.array(AWKWARD[domain])
    if n_classes is None:
        return values
    if domain == "log_simplex":
        return np.log(_awkward_rows("unit", n_classes))
    if domain == "unit":  # a row close to a vertex of the simplex
        row = np.full(n_classes, 1e-8)
        row[0] = 1 - (n_classes - 1) * 1e-8
        return np.vstack([row, np.full(n_classes, 1 / n_classes)])
    return values[:, None] * np.linspace(-1, 1, n_classes)[None, :] + (
        0 if domain == "real" else 1e-8
    )


def _finite(value: object) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=float))))
    except (TypeError, ValueError):
        return False


class _Sampler:
    """Choose, for each input, the first domain on which the kernel and its gradient are finite."""

    def __init__(self, spec: Spec, module: ModuleType, rng: np.random.Generator) -> None:
        self.spec = spec
        self.module = module
        self.rng = rng
        self.classes = N_CLASSES if spec.class_axis else None

    def _shape(self, n: int) -> tuple[int, ...]:
        return (n,) if self.classes is None else (n, self.classes)

    def choose(self) -> tuple[str, ...]:
        """Use the domains the spec declares; try the others until the kernel is finite."""
        declared = self.spec.meta.get("domains", {})
        names = [s.name for s in self.spec.inputs]
        tries = [(DECLARED[declared[n]],) if n in declared else DOMAINS for n in names]
        value = getattr(self.module, self.spec.name)
        grad = self._grad_fn()
        k = len(names)
        for combo in itertools.product(*tries):
            args = [_sample(d, self._shape(N_RANDOM), self.rng) for d in combo]
            with np.errstate(all="ignore"):
                try:
                    if _finite(value(*args)) and _finite(grad(*args)):
                        return combo
                except Exception:  # noqa: BLE001 - a domain the kernel rejects
                    continue
        return ("real",) * k

    def _grad_fn(self) -> Callable:
        spec, module = self.spec, self.module
        if hasattr(module, f"{spec.name}_vjp"):
            vjp = getattr(module, f"{spec.name}_vjp")
            return lambda x: vjp(x, np.ones_like(x))
        return getattr(module, f"{spec.name}_grad")

    def points(self, domains: tuple[str, ...]) -> list[np.ndarray]:
        """Return inputs: random points, then awkward values of the first input."""
        n_cls = self.classes
        wrt = _awkward_rows(domains[0], n_cls)
        columns = [[_sample(domains[0], self._shape(N_RANDOM), self.rng), wrt]]
        others = domains[1:]
        for d in others:
            columns.append(
                [_sample(d, self._shape(N_RANDOM), self.rng), _sample(d, wrt.shape, self.rng)]
            )
        if others and n_cls is None:  # awkward values again, with targets at special values
            columns[0].append(wrt)
            for col, d in zip(columns[1:], others, strict=True):
                special = np.resize(np.array(SPECIAL[d]), wrt.shape)
                col.append(special)
        return [np.concatenate(parts) for parts in columns]


def _fd_point(
    f: Callable[[np.ndarray], float], x: np.ndarray, idx: tuple, rel_step: float
) -> tuple[float, float, str]:
    """Return (central difference, noise allowance, why skipped or '') at ``x[idx]``."""

    def at(h: float) -> float:
        xp = x.copy()
        xp[idx] += h
        return float(f(xp))

    f0 = float(f(x))
    if not np.isfinite(f0):
        return 0.0, 0.0, "undefined"
    base = rel_step * max(1.0, abs(float(x[idx])))
    for h in (base, base * 1e-2, base * 1e-4):
        vals = [at(s * h) for s in (1, -1, 0.25, -0.25)]
        if all(np.isfinite(vals)):
            break
    else:
        return 0.0, 0.0, "undefined"
    fp, fm, fp4, fm4 = vals
    central = (fp - fm) / (2 * h)
    fine = (fp4 - fm4) / (h / 2)
    left, right = (f0 - fm) / h, (fp - f0) / h
    left4, right4 = (f0 - fm4) / (h / 4), (fp4 - f0) / (h / 4)
    scale = max(1.0, abs(central))
    noise = 64 * EPS * max(abs(fp), abs(fm), abs(fp4), abs(fm4), abs(f0)) / h
    if abs(fine - central) > 1e-3 * scale + 4 * noise:
        return central, noise, "kink"
    spread = abs(left - right)
    if spread > 1e-3 * scale + 4 * noise and abs(left4 - right4) > 0.5 * spread:
        return central, noise, "kink"
    return (16 * fine - central) / 15, noise, ""  # Richardson: error O(h**4)


class _Tolerances(NamedTuple):
    """How closely an emitted derivative must match finite differences (``rtol``, ``atol``)
    and the differences' relative step (``rel_step``)."""

    rtol: float
    atol: float
    rel_step: float


def _compare(
    check: Check,
    label: str,
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    emitted: np.ndarray,
    tols: _Tolerances,
) -> None:
    """Compare ``emitted`` (shaped like ``x``) with central differences of ``f`` at ``x``."""
    rtol, atol, rel_step = tols
    emitted = np.asarray(emitted, dtype=float)
    for idx in np.ndindex(x.shape):
        with np.errstate(all="ignore"):
            central, noise, skip = _fd_point(f, x, idx, rel_step)
        if skip:
            check.skipped += 1
            continue
        g = float(np.broadcast_to(emitted, x.shape)[idx])
        point = f"{label}={float(x[idx]):.10g}" + (f" (class {idx[-1]})" if x.ndim > 1 else "")
        if not np.isfinite(g):
            check.failures.append(f"{check.function} at {point}: emitted {g}, fd {central:.6g}")
            check.checked += 1
            continue
        err = abs(g - central)
        rel = err / max(1.0, abs(central))
        check.checked += 1
        check.max_abs = max(check.max_abs, err)
        check.max_rel = max(check.max_rel, rel)
        if err > atol + rtol * max(1.0, abs(central)) + noise:
            check.failures.append(
                f"{check.function} at {point}: emitted {g:.10g}, finite differences {central:.10g}"
            )


def verify_spec(
    spec: Spec,
    module: ModuleType,
    *,
    name: str | None = None,
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    rel_step: float = 1e-6,
) -> KernelResult:
    """Check every derivative ``module`` emits for ``spec``; never raises for a bad kernel."""
    result = KernelResult(name or spec.name, [])
    try:
        tols = _Tolerances(rtol, atol, rel_step)
        _verify(spec, module, result, np.random.default_rng(seed), tols)
    except Exception as exc:  # noqa: BLE001 - a kernel that raises fails its check
        result.error = f"raised {type(exc).__name__}: {exc}"
    return result


def _verify(
    spec: Spec,
    module: ModuleType,
    result: KernelResult,
    rng: np.random.Generator,
    tols: _Tolerances,
) -> None:
    sampler = _Sampler(spec, module, rng)
    domains = sampler.choose()
    result.domains = {s.name: d for s, d in zip(spec.inputs, domains, strict=True)}
    inputs = sampler.points(domains)
    x, others = inputs[0], inputs[1:]
    n = x.shape[0]
    label = spec.wrt.name
    fn = {
        suffix: getattr(module, spec.name + suffix, None)
        for suffix in ("", "_grad", "_hess", "_vjp", "_hvp", "_value_and_grad")
    }
    value, grad = fn[""], fn["_grad"]
    scale = n if spec.role == "loss" else 1  # a loss is a mean over samples

    def rows(i: int) -> list[np.ndarray]:
        return [a[i : i + 1] for a in others]

    def run(function: str, f_of: Callable[[np.ndarray, int], float], emitted) -> None:
        """Compare ``emitted[i]`` with differences of ``v -> f_of(v, i)`` at each sample i."""
        check = Check(function)
        emitted = np.asarray(emitted, dtype=float)
        for i in range(n):
            f_i = partial(f_of, i=i)
            _compare(check, label, f_i, x[i : i + 1].copy(), emitted[i : i + 1], tols)
        result.checks.append(_require_points(check))

    with np.errstate(all="ignore"):
        if fn["_vjp"] is not None:
            go = rng.normal(size=x.shape)
            run(
                f"{spec.name}_vjp",
                lambda v, i: float(np.sum(value(v) * go[i : i + 1])),
                fn["_vjp"](x, go),
            )
            return
        g_full = np.asarray(grad(x, *others), dtype=float)
        run(f"{spec.name}_grad", lambda v, i: float(np.sum(value(v, *rows(i)))), g_full * scale)
        if fn["_hess"] is not None and spec.class_axis:
            h_full = np.asarray(fn["_hess"](x, *others), dtype=float)
            result.checks.append(_diagonal(spec.name, grad, x, others, h_full * scale, tols))
        elif fn["_hess"] is not None:
            h_full = np.asarray(fn["_hess"](x, *others), dtype=float)
            run(f"{spec.name}_hess", lambda v, i: float(np.sum(grad(v, *rows(i)))), h_full * scale)
        if fn["_hvp"] is not None:
            vec = rng.normal(size=x.shape)
            hv = np.asarray(fn["_hvp"](x, *others, vec), dtype=float)
            run(
                f"{spec.name}_hvp",
                lambda v, i: float(np.sum(grad(v, *rows(i)) * vec[i : i + 1])),
                hv * scale,
            )
        if fn["_value_and_grad"] is not None:
            result.checks.append(
                _consistency(spec.name, fn["_value_and_grad"], value, g_full, x, others)
            )
        if fn["_hess"] is not None and spec.role == "loss":
            declared = spec.meta.get("domains", {})
            targets = [declared.get(s.name, "unit") for s in spec.inputs[1:]]
            result.flat_share = _flat_share(fn["_hess"], x, targets, rng)


def _flat_share(hess: Callable, x: np.ndarray, target_domains: list[str], rng) -> float:
    """Return the share of the random points (not the awkward ones, where a softmax saturates
    to exact zeros) at which the loss's finite second derivative is zero or negative.

    Targets are drawn inside their declared domains, else inside (0, 1) (probability rows
    over a class axis): the labels and probabilities a loss on logits or probabilities is
    meant for, and as good as any for a loss of the residual, whose curvature does not
    depend on where the target sits.
    """
    x = x[:N_RANDOM]
    targets = [_sample(d, x.shape, rng) for d in target_domains]
    h = np.asarray(hess(x, *targets), dtype=float)  # the mean's 1/n keeps every sign
    h = h[np.isfinite(h)]
    return float(np.mean(h <= 0)) if h.size else 0.0


def _diagonal(name, grad, x, others, emitted, tols) -> Check:
    """Compare a class-axis ``name_hess`` (the Hessian's diagonal) with differences of
    ``grad``'s element (i, j) as ``x[i, j]`` alone moves."""
    check = Check(f"{name}_hess")
    for i, j in np.ndindex(x.shape):
        row, targets = x[i : i + 1].copy(), [a[i : i + 1] for a in others]

        def f(u: np.ndarray, row=row, targets=targets, j=j) -> float:
            moved = row.copy()
            moved[0, j] = u[0, 0]
            return float(grad(moved, *targets)[0, j])

        _compare(check, "yhat", f, row[:, j : j + 1], emitted[i : i + 1, j : j + 1], tols)
    return _require_points(check)


def _require_points(check: Check) -> Check:
    """Fail a check that could not compare a single point (every point skipped)."""
    if not check.checked:
        check.failures.append(f"{check.function}: no point where finite differences apply")
    return check


def _consistency(name, value_and_grad, value, g_full, x, others) -> Check:
    """Check ``name_value_and_grad`` returns exactly what ``name`` and ``name_grad`` return."""
    check = Check(f"{name}_value_and_grad")
    v2, g2 = value_and_grad(x, *others)
    v1 = value(x, *others)
    g2 = np.asarray(g2, dtype=float)
    both = np.isfinite(g_full) & np.isfinite(g2)
    err = np.abs(g2 - g_full)[both]
    check.checked = int(both.sum()) + 1
    check.skipped = int((~both).sum())
    check.max_abs = max(float(err.max()) if err.size else 0.0, abs(float(v2) - float(v1)))
    check.max_rel = max(
        float((err / np.maximum(1.0, np.abs(g_full[both]))).max()) if err.size else 0.0,
        abs(float(v2) - float(v1)) / max(1.0, abs(float(v1))),
    )
    if check.max_rel > 1e-12 or not np.array_equal(np.isfinite(g_full), np.isfinite(g2)):
        check.failures.append(f"{name}_value_and_grad disagrees with {name} and {name}_grad")
    return check


def verify_module(
    specs: tuple[Spec, ...] | list[Spec],
    module: ModuleType,
    *,
    prefix: str = "",
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> list[KernelResult]:
    """Check every spec's emitted functions in ``module``, in name order."""
    return [
        verify_spec(s, module, name=f"{prefix}{s.name}", seed=seed, rtol=rtol, atol=atol)
        for s in sorted(specs, key=lambda s: s.name)
    ]


def format_table(results: list[KernelResult], rtol: float | None = None) -> str:
    """Return the results as a table: kernel | checked | points | max rel err | result.

    The relative error is the one the check judges, ``|emitted - fd| / max(1, |fd|)``; the
    absolute error is left out, since a derivative of 1e300 is right with an absolute error
    of 1e290 and would read as a failure. With ``rtol`` the header names the tolerance.
    """
    rel = "max rel err" if rtol is None else f"max rel err (rtol {rtol:g})"
    head = ("kernel", "functions checked", "points", rel, "result")
    rows = []
    for r in results:
        functions = (
            ", ".join(c.function.removeprefix(r.name.rsplit(".", 1)[-1] + "_") for c in r.checks)
            or "-"
        )
        points = f"{r.checked}" + (f" (+{r.skipped} skipped)" if r.skipped else "")
        rows.append((r.name, functions, points, f"{r.max_rel:.1e}", "pass" if r.ok else "FAIL"))
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]

    def fmt(row) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(r) for r in rows)]) + "\n"
