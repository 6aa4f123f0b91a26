"""Gradient-boosting objectives for XGBoost and LightGBM from any symgrad loss.

A boosting library wants, per sample, the first and second derivative of the loss in the raw
score, with no 1/n, times the sample's weight, in its own argument order and layout. This module
gets them from the emitted ``name_grad_hess(..., count=1)`` (one CSE for both; run block by
block on large element-wise inputs, so its scratch stays in cache; no second copy of the
maths), makes the Hessian safe where the loss is kinked or non-convex, and
finds the optimal constant start (``base_score`` / ``init_score``) by a 1-D Newton solve on the
same derivatives. XGBoost and LightGBM are imported by the caller, never here.

On large inputs the derivatives run on ``threads=`` threads (default: every core, as XGBoost
and LightGBM use by default; they sit idle while the objective runs), with the same numbers, bit
for bit, as on one.

A loss's hyper-parameters and the adapter's options never share a namespace: the loss takes
``hyper={"delta": 30.0}`` or comes as a ``(loss, {hyper})`` pair; the options below are
keywords. A keyword that names one of the loss's hyper-parameters is refused with both named.

Hessian policies (``hessian=``), applied to the unweighted per-sample second derivative h:

- ``"auto"`` (default): h where h > 0, ``constant`` where h <= 0 (L1, quantile and hinge
  losses, Huber's linear part). Unless ``constant=`` is given it is derived from the target's
  spread around the constant start: max |g| / mean |y - start| (1 / the mean absolute
  deviation for L1, max(tau, 1 - tau) / it for pinball), so a leaf's step is at most the
  residuals' mean size whatever the target's units (XGBoost's own L1 and quantile objectives use 1 and then refit each leaf to the
  residuals' quantile, which a custom objective cannot do). A loss with a sigmoid or softmax
  link, or a class axis, gets 1.
- ``"exact"``: h as derived.
- ``"floor"``: max(h, ``floor``).
- ``"abs"``: max(\\|h\\|, ``floor``), for non-convex losses.
- ``"constant"``: ``constant`` everywhere (plain gradient boosting, step 1/constant).

A :class:`HessianWarning` says when h <= 0 on more than ``warn_share`` of the values and the
caller chose no policy (neither ``hessian=`` nor ``constant=``); it points at the caller's line.

Labels, weights and the start's targets are checked against the loss's declared domains
(``KERNELS``: finite everywhere; ``unit``, ``nonnegative``, ``sign`` ...), with one-line errors.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from symgrad import blocked
from symgrad.blocked import DEFAULT_BLOCK as _BLOCK
from symgrad.domains import BOUNDS, contains, require
from symgrad.errors import HessianWarning
from symgrad.kernels import resolve
from symgrad.losses import one_hot
from symgrad.recycle import Recycler

if TYPE_CHECKING:
    from symgrad.compiler.spec import Spec

__all__ = [
    "HESSIAN_POLICIES",
    "HessianWarning",
    "LightGBMObjective",
    "OPTIONS",
    "Objective",
    "XGBoostObjective",
    "lightgbm",
    "xgboost",
]

HESSIAN_POLICIES = ("auto", "exact", "floor", "abs", "constant")
#: The adapter's options and their defaults (``constant=None``: derived from the target).
OPTIONS: dict[str, Any] = {
    "hessian": "auto",
    "floor": 1e-6,
    "constant": None,
    "scale": 1.0,
    "class_scale": None,
    "warn_share": 0.5,
    "threads": None,
}
#: Options that choose the Hessian policy: given either, the caller gets no HessianWarning.
_POLICY_OPTIONS = frozenset({"hessian", "constant"})
#: Relative tolerance on the constant start, and the largest number of bracket doublings.
_XTOL = 1e-12
_DOUBLINGS = 64
#: The first guess's flatness test: |g| this small against the first guess's means the
#: gradient never changes sign (all labels 1 for a logistic loss: the optimum is infinite).
_FLAT = 1e-14


class Objective:
    """A loss with its hyper-parameters bound, giving per-sample derivatives for boosting.

    ``loss`` is a built-in name, a user spec or a ``(loss, {hyper-parameter: value})`` pair;
    ``hyper`` gives (more) hyper-parameters. Options (keywords only, see ``OPTIONS``):
    ``hessian``, ``floor`` and ``constant`` choose the Hessian policy (module docstring);
    ``scale`` multiplies the gradient and Hessian (the loss times a constant: XGBoost's and
    LightGBM's squared error is 0.5 * mse, so ``xgboost("mse", scale=0.5)`` is
    ``reg:squarederror``); ``class_scale`` multiplies the Hessian diagonal of a class-axis loss
    (XGBoost's ``multi:softprob`` uses 2, LightGBM's ``multiclass`` k / (k - 1));
    ``warn_share`` is the share of non-positive second derivatives that warns; ``threads``
    is how many threads compute an element-wise loss's derivatives on large inputs (blocks of
    ``symgrad.blocked``'s pool): ``None`` (default) is every core, ``os.cpu_count()``, as
    XGBoost's and LightGBM's own default (their cores are idle while the objective runs), 1
    one thread. The numbers are the same, bit for bit, whatever the thread count.
    """

    #: The class_scale a class-axis loss gets by default (a subclass: its library's convention).
    default_class_scale: Callable[[int], float] = staticmethod(lambda k: 1.0)

    def __init__(
        self, loss: Any, *, hyper: Mapping[str, float] | None = None, **options: Any
    ) -> None:
        base, given = _split_pair(loss, hyper)
        self._args = (base, dict(given), dict(options))
        spec, module, bound_hyper, _ = resolve("loss", (base, given))
        if len(spec.inputs) != 2:
            raise ValueError(f"loss {spec.name!r}: a boosting objective needs inputs (yhat, y)")
        _check_options(type(self).__name__, spec, given, options)
        settings = {**OPTIONS, **options}
        self.spec, self.hyper = spec, bound_hyper
        self._fn = {s: partial(getattr(module, spec.name + s), **bound_hyper) for s in _SUFFIXES}
        self.hessian, self.floor = settings["hessian"], settings["floor"]
        self.constant, self.scale = settings["constant"], settings["scale"]
        self.class_scale, self.warn_share = settings["class_scale"], settings["warn_share"]
        threads = settings["threads"]
        self.threads: int | None = None if threads is None else int(threads)
        #: the caller chose a Hessian policy (no HessianWarning then)
        self.policy_chosen = bool(_POLICY_OPTIONS & options.keys())
        #: the constant derived from the target's spread (``constant=None``), once known
        self.derived_constant: float | None = None
        self._warned = False
        #: float32 scores are computed in float64 from now on (see ``grad_hess``)
        self._wide = False
        #: the last large call's (grad, hess), written again once the caller let them go
        self._results = Recycler()

    def __deepcopy__(self, memo: dict) -> Objective:
        # LightGBM deep-copies its params, objective included: the kernels are immutable
        return self

    def __reduce__(self) -> tuple:
        # pickled as the loss, hyper-parameters and options it was made from (a user spec is
        # recompiled)
        return _rebuild, (type(self), *self._args)

    @property
    def name(self) -> str:
        """Return the loss's name (the metric's name too)."""
        return self.spec.name

    def __repr__(self) -> str:
        hyper = f", hyper={self.hyper!r}" if self.hyper else ""
        return f"{type(self).__name__}({self.name!r}{hyper}, hessian={self.hessian!r})"

    # ------------------------------------------------------------------ layout

    def targets(
        self, y: Any, shape: tuple[int, ...], dtype: Any = np.float64, *, check: bool = True
    ) -> np.ndarray:
        """Return ``y`` as ``dtype`` in the loss's layout for raw scores of ``shape``, checked
        against the loss's label domain (``check=False``: the caller checks, ``_check_labels``):
        class labels become one-hot rows for a class-axis loss; a flat multi-output label (row
        by row, as XGBoost gives it) is reshaped; any other shape (a transposed (k, n) label
        for (n, k) scores) is refused."""
        y = np.asarray(y, dtype=dtype)
        if self.spec.class_axis and y.ndim == len(shape) - 1:
            k = shape[-1]
            require("real", y, f"{self.name}: class labels")
            return one_hot(y, k, dtype=dtype, name=self.name)
        if y.shape != tuple(shape):
            flat = y.ndim == 1 and y.size == int(np.prod(shape))
            if not flat and np.squeeze(y).shape != np.empty(shape).squeeze().shape:
                raise ValueError(
                    f"{self.name}: labels of shape {y.shape} do not fit raw scores of shape "
                    f"{tuple(shape)}; give them as {tuple(shape)} or flat, row by row"
                )
            y = y.reshape(shape)
        if check:
            self._check_labels(y)
        return y

    def _check_labels(self, y: np.ndarray, span: tuple[float, float] | None = None) -> None:
        """Raise ``require``'s one-line error unless every label is finite and in the loss's
        label domain. ``span``: y's (min, max), already known (``blocked.grad_hess`` takes them
        block by block while each is in cache): an interval domain then needs no pass over y
        at all unless a label is outside it."""
        domain = self.spec.domains.get(self.spec.inputs[1], "real")
        if span is not None and domain in BOUNDS and contains(domain, span):
            return
        require(domain, y, f"{self.name}: labels")

    def _weight(self, weight: Any, yhat: np.ndarray) -> np.ndarray | None:
        """Return per-row weights shaped for the kernels (None when absent or empty)."""
        if weight is None or np.size(weight) == 0:
            return None
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != yhat.shape[:1]:
            raise ValueError(f"{self.name}: {w.size} weights for {yhat.shape[0]} rows")
        require("nonnegative", w, f"{self.name}: weights")
        if self.spec.class_axis or yhat.ndim == 1:
            return w
        return w.reshape(w.shape + (1,) * (yhat.ndim - 1))

    # ------------------------------------------------------------------ derivatives

    def grad_hess(
        self, yhat: Any, y: Any, weight: Any = None, *, warn: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-sample gradient and safe Hessian in the raw score ``yhat`` (no 1/n),
        times ``weight`` when given, shaped like ``yhat``.

        Float32 scores (what XGBoost and LightGBM hand a custom objective, and keep gradients
        in) are computed in float32, with no conversion either way and float32's faster exp,
        while every h > 0 there. A float32 h of 0 may be an underflow (the logistic's beyond
        |z| ~ 88), not a zero of the loss, so then the call is made again in float64 (as is
        every later call of this objective): the Hessian policy decides on what it always saw.

        On large inputs (``_blocked``) the results are written into the previous call's result
        arrays when nothing outside this objective refers to them any more
        (``symgrad.recycle``): XGBoost and LightGBM copy them before the next round, and fresh
        memory of that size costs a third of the call in page faults. A result the caller
        keeps, or any view of it, is never written again.
        """
        scores = np.asarray(yhat)
        single = scores.dtype == np.float32 and not self._wide
        scores = scores.astype(np.float32 if single else np.float64, copy=False)
        blocks = self._blocked(scores)  # the labels are then checked block by block
        labels = self.targets(y, scores.shape, scores.dtype, check=not blocks)
        grad, h, lowest = self._derivatives(scores, labels)
        if single and not lowest > 0:  # NaN is not either
            self._wide = True
            return self.grad_hess(scores, y, weight, warn=warn)
        yhat, y = scores, labels
        w = self._weight(weight, yhat)
        if w is not None:
            grad *= w[:, None] if self.spec.class_axis else w
        positive = bool(lowest > 0)  # NaN is not
        if self._needs_constant(positive):
            self.derived_constant = self._spread_constant(yhat, y, w)
        hess = self.safe_hessian(h, warn=warn, lowest=lowest)
        if self.spec.class_axis:
            k = yhat.shape[-1]
            hess *= self.default_class_scale(k) if self.class_scale is None else self.class_scale
        if w is not None:
            hess *= w[:, None] if self.spec.class_axis else w
        if self.scale != 1:
            grad *= self.scale
            hess *= self.scale
        if blocks:
            self._results.keep(grad, hess)
        return grad, hess

    def _derivatives(self, yhat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Return the per-sample gradient, the unweighted second derivative h (one emitted
        ``_grad_hess``: one CSE) and min(h) (NaN if any h is), after checking the labels where
        they come in blocks (``_blocked``).

        An element-wise loss's large inputs go through the kernel in ``symgrad.blocked``'s
        blocks (``block_size``), on ``threads`` threads of its pool, so the scratch arrays stay
        in cache; the arithmetic is the same element by element, so the numbers are too,
        whatever the block or thread count. min(h) is taken block by block while each block
        is in cache too."""
        fn = self._fn["_grad_hess"]
        if not self._blocked(yhat):
            grad, h = fn(yhat, y, count=1)
            return grad, h, float(np.min(h, initial=np.inf))
        out = self._results.take(2, yhat.size, yhat.dtype)
        grad, h, lowest, span = blocked.grad_hess(
            fn, yhat, y, workers=self.threads_in_use, out=out, count=1
        )
        self._check_labels(y, span)
        return grad, h, lowest

    def _blocked(self, yhat: np.ndarray) -> bool:
        """Tell whether the derivatives at ``yhat`` run in ``symgrad.blocked``'s blocks (an
        element-wise loss on more than one block's elements); the labels are then checked from
        their per-block (min, max) (``_check_labels``), not by passes over them of their own."""
        return not self.spec.class_axis and yhat.size > _BLOCK

    @property
    def threads_in_use(self) -> int:
        """Return the number of threads the derivatives run on: ``threads``, else every core
        (``os.cpu_count()``)."""
        return self.threads if self.threads is not None else os.cpu_count() or 1

    def _needs_constant(self, positive: bool) -> bool:
        """Tell whether the policy needs a constant the caller left to the data, not yet known
        (``positive``: every second derivative is > 0)."""
        wanted = self.hessian == "constant" or (self.hessian == "auto" and not positive)
        return wanted and self.constant is None and self.derived_constant is None

    def _spread_constant(self, yhat: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
        """Return max |g| / mean |y - yhat| (over rows of positive weight; weighted mean): the
        constant Hessian whose steps -g / c are at most the residuals' mean size (1 for a
        linked or class-axis loss, or where the residuals vanish)."""
        if self.spec.class_axis or self.spec.link not in (None, "identity"):
            return 1.0
        weights = None if w is None else np.broadcast_to(w, y.shape)
        grad = np.abs(self._fn["_grad"](yhat, y, count=1))
        spread = np.average(np.abs(y - yhat), weights=weights)
        largest = np.max(grad if weights is None else grad[weights > 0], initial=0.0)
        ratio = largest / spread if spread > 0 else 1.0
        return float(ratio) if np.isfinite(ratio) and ratio > 0 else 1.0

    @property
    def constant_in_use(self) -> float:
        """Return the constant Hessian the policy uses: ``constant``, else the one derived
        from the target (1 until a start or a gradient has seen one)."""
        if self.constant is not None:
            return float(self.constant)
        return 1.0 if self.derived_constant is None else self.derived_constant

    def safe_hessian(
        self, h: np.ndarray, *, warn: bool = True, lowest: float | None = None
    ) -> np.ndarray:
        """Apply the Hessian policy to the unweighted per-sample second derivative ``h``,
        warning once per objective when it is zero or negative on much of the data and the
        caller chose no policy. ``lowest``: min(h) when the caller knows it already.

        Where every h is positive (a strictly convex loss away from underflow: every round of
        a logistic or Poisson objective), ``exact`` and ``auto`` return ``h`` itself and
        ``floor``/``abs`` do when min(h) >= ``floor``: one reduction instead of a mask, its
        mean and a select."""
        if lowest is None:
            lowest = float(np.min(h, initial=np.inf))
        if lowest > 0:  # NaN is not: it takes the general path
            if self.hessian in ("exact", "auto") or (
                self.hessian in ("floor", "abs") and lowest >= self.floor
            ):
                return h
            if self.hessian != "constant":
                return np.maximum(h, self.floor)  # |h| = h here
            return np.full_like(h, self.constant_in_use)
        bad = ~(h > 0)
        share = float(np.mean(bad)) if h.size else 0.0
        if warn and not self.policy_chosen and share > self.warn_share and not self._warned:
            self._warned = True
            warnings.warn(_warning(self, share), HessianWarning, stacklevel=_caller_level())
        if self.hessian == "exact":
            return h
        if self.hessian == "auto":
            return np.where(bad, self.constant_in_use, h)
        if self.hessian == "floor":
            return np.maximum(h, self.floor)
        if self.hessian == "abs":
            return np.maximum(np.abs(h), self.floor)
        return np.full_like(h, self.constant_in_use)

    def value(self, yhat: Any, y: Any, weight: Any = None) -> float:
        """Return the weighted mean loss sum(w*l) / sum(w) at raw scores ``yhat``."""
        yhat = np.asarray(yhat, dtype=np.float64)
        return float(
            self._fn[""](yhat, self.targets(y, yhat.shape), weight=self._weight(weight, yhat))
        )

    # ------------------------------------------------------------------ the constant start

    def constant_start(self, y: Any, weight: Any = None, n_classes: int | None = None) -> Any:
        """Return the raw score c minimizing sum_i w_i l(c, y_i): a float, or one value per
        class (or output) for a class-axis (or multi-output) loss.

        Each coordinate starts from the best of the closed forms (the weighted mean of the
        target, its log and its logit, and 0) and is a 1-D root solve of the summed gradient
        with the safe Hessian: a bracket of its sign change is found first, then Newton steps
        are kept inside it (bisection when one leaves it), so L1 and quantile losses converge
        too, at any target scale. Several classes are solved in turn until none moves. A loss
        unchanged by adding one constant to every class (softmax) gets the solution with mean
        zero. The derived Hessian constant (``constant=None``) is set from the same start.
        """
        y = np.asarray(y, dtype=np.float64)
        if self.spec.class_axis:
            require("real", y, f"{self.name}: class labels")
            k = n_classes or (y.shape[-1] if y.ndim == 2 else int(np.max(y)) + 1)
            shape: tuple[int, ...] = (len(y), k)
        else:
            shape = y.shape
        targets = self.targets(y, shape)
        weights = self._weight(weight, np.empty(shape))
        if weights is not None and not np.sum(weights) > 0:
            raise ValueError(f"{self.name}: the weights sum to zero")
        c = np.zeros(shape[1:])
        means = np.average(targets, axis=0, weights=None if weights is None else weight)
        for _ in range(100 if c.ndim else 1):
            before = c.copy()
            for j in np.ndindex(c.shape):
                sums = partial(self._sums, c, j, targets, weight)
                c[j] = _root(sums, _first_guess(sums, float(np.asarray(means)[j])))
            if np.all(np.abs(c - before) <= 1e-10 * (1 + np.abs(c))):
                break
        if c.ndim and self.spec.class_axis:
            centred = c - np.mean(c)
            if np.isclose(self._total(centred, targets, weight), self._total(c, targets, weight)):
                c = centred
        self.derived_constant = None  # derive it again, from this target
        self.grad_hess(np.broadcast_to(c, shape), targets, weight)
        return float(c) if c.ndim == 0 else c

    def _sums(self, c: np.ndarray, j: tuple, y: np.ndarray, weight: Any, x: float) -> tuple:
        """Return the summed gradient and safe Hessian in coordinate ``j`` at ``c[j] = x``."""
        trial = c.copy()
        trial[j] = x
        with np.errstate(over="ignore", invalid="ignore"):
            grad, hess = self.grad_hess(np.broadcast_to(trial, y.shape), y, weight, warn=False)
        index = (Ellipsis, *j)
        return float(np.sum(grad[index])), float(np.sum(hess[index]))

    def _total(self, c: np.ndarray, y: np.ndarray, weight: Any) -> float:
        return self.value(np.broadcast_to(c, y.shape).copy(), y, weight)


_SUFFIXES = ("", "_grad", "_hess", "_grad_hess", "_per_sample")


def _split_pair(loss: Any, hyper: Mapping[str, float] | None) -> tuple[Any, dict[str, float]]:
    """Return (loss, hyper-parameters) from ``loss`` (or a ``(loss, {hyper})`` pair) and
    ``hyper=``; a hyper-parameter given in both is an error."""
    given: dict[str, float] = {}
    if isinstance(loss, tuple) and len(loss) == 2 and isinstance(loss[1], Mapping):
        loss, given = loss[0], dict(loss[1])
    if hyper is not None:
        if not isinstance(hyper, Mapping):
            raise TypeError(f"hyper must be a mapping of hyper-parameters, got {hyper!r}")
        both = sorted(set(given) & set(hyper))
        if both:
            raise ValueError(
                f"hyper-parameter {both[0]!r} is given twice: in the (loss, {{...}}) pair and "
                "in hyper=; give it once"
            )
        given |= dict(hyper)
    return loss, given


def _check_options(owner: str, spec: Any, hyper: Mapping[str, float], options: dict) -> None:
    """Raise a one-line error for an unknown option, an option that names one of the loss's
    hyper-parameters (unless that one is also given in ``hyper``) or a bad option value."""
    takes = spec.hyper_defaults
    for key, value in options.items():
        if key not in OPTIONS:
            if key in takes:
                raise ValueError(
                    f"{key}={value!r}: {key!r} is a hyper-parameter of loss {spec.name!r}, not "
                    f"an option of {owner}; pass it as hyper={{{key!r}: {value!r}}}"
                )
            raise TypeError(
                f"{owner} has no option {key!r}; options: {', '.join(OPTIONS)} (a loss's "
                "hyper-parameters go in hyper={...})"
            )
        if key in takes and key not in hyper:
            raise ValueError(
                f"{key}={value!r} is ambiguous: {key!r} is both an option of {owner} and a "
                f"hyper-parameter of loss {spec.name!r}; pass the hyper-parameter as "
                f"hyper={{{key!r}: ...}} (the option stays {key}=)"
            )
        _check_option(key, value)


def _check_option(key: str, value: Any) -> None:
    """Raise a one-line ValueError unless ``value`` suits option ``key``."""
    if key == "threads":
        whole = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
        if value is not None and not (whole and value >= 1):
            raise ValueError(
                f"threads must be a positive integer or None (every core), got {value!r}"
            )
        return
    if key == "hessian":
        if value not in HESSIAN_POLICIES:
            raise ValueError(
                f"hessian={value!r} is not a policy; choose one of: {', '.join(HESSIAN_POLICIES)}"
            )
        return
    if value is None and OPTIONS[key] is None:
        return
    number = isinstance(value, int | float | np.floating | np.integer)
    if key == "warn_share":
        if not (number and not isinstance(value, bool) and 0 <= value <= 1):
            raise ValueError(f"warn_share must be a number in [0, 1], got {value!r}")
        return
    if not (number and not isinstance(value, bool) and np.isfinite(value) and value > 0):
        none = " or None" if OPTIONS[key] is None else ""
        raise ValueError(f"{key} must be a positive finite number{none}, got {value!r}")


def _rebuild(cls: type, loss: Any, hyper: dict, options: dict) -> Objective:
    return cls(loss, hyper=hyper, **options)


def _caller_level() -> int:
    """Return the ``stacklevel`` that makes a warning raised by our caller point at the first
    frame outside symgrad (the user's line, or the boosting library calling the objective)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "symgrad":
        frame, level = frame.f_back, level + 1
    return level


def _warning(obj: Objective, share: float) -> str:
    constant = (
        f"{obj.constant_in_use:.3g} (from the target's spread)"
        if obj.constant is None
        else f"{obj.constant_in_use}"
    )
    what = {
        "exact": "trees cannot split on it; choose hessian='auto', 'floor', 'abs' or 'constant'",
        "auto": f"hessian='auto' uses {constant} there",
        "floor": f"hessian='floor' raises it to {obj.floor}",
        "abs": f"hessian='abs' uses |h|, at least {obj.floor}",
        "constant": f"hessian='constant' uses {constant} everywhere",
    }[obj.hessian]
    return (
        f"{obj.name}: the second derivative is zero or negative on {share:.0%} of the values, "
        f"unusable for boosting as it stands; {what} (pass hessian= or constant= to choose)"
    )


def _first_guess(sums: Callable[[float], tuple[float, float]], mean: float) -> float:
    """Return the closed-form start with the smallest finite summed gradient: the target's
    weighted mean (squared error), its log (Poisson), its logit (logistic) or 0."""
    candidates = [mean, 0.0]
    if mean > 0:
        candidates.append(float(np.log(mean)))
    if 0 <= mean <= 1:
        p = min(max(mean, 1e-15), 1 - 1e-15)
        candidates.append(float(np.log(p / (1 - p))))
    best, best_g = 0.0, np.inf
    for x in candidates:
        g = abs(sums(x)[0])
        if g < best_g:
            best, best_g = x, g
    return best


def _root(sums: Callable[[float], tuple[float, float]], x: float) -> float:
    """Return a zero of the summed gradient ``g(x)`` (``sums(x) = (g, h)``, h > 0 a safe
    Hessian) from a first guess ``x``: walk downhill, doubling the step (shortening it where g
    overflows), until g changes sign; then Newton steps inside that bracket, bisection when a
    step leaves it or does not halve (numerical recipes' rtsafe), until the bracket or the
    step is below a relative 1e-12. A gradient that only flattens (the optimum at infinity)
    stops where it is 1e-14 of the first guess's."""
    g, h = sums(x)
    if g == 0 or not np.isfinite(g):
        return x
    step = abs(g / h) if h > 0 and np.isfinite(g / h) else 1.0
    step = max(step, 1e-6 * (1 + abs(x)))
    a, ga = x, g
    for _ in range(_DOUBLINGS):
        b = a - np.sign(ga) * step
        gb, hb = sums(b)
        if not np.isfinite(gb):  # overflow (an exp far from the optimum): a shorter step
            step /= 4
            continue
        if gb == 0:
            return b
        if np.sign(gb) != np.sign(ga):
            break
        if abs(gb) <= _FLAT * abs(g):
            return b
        a, ga, step = b, gb, 2 * step
    else:
        return a
    lo, hi = (a, b) if ga < 0 else (b, a)
    floor = _XTOL * abs(hi - lo)  # an optimum at 0 ends on the bracket's own scale
    x, g, h = b, gb, hb
    width = step = abs(hi - lo)
    for _ in range(400):
        newton = x - g / h if h > 0 else np.nan
        if min(lo, hi) < newton < max(lo, hi) and abs(2 * g) <= abs(width * h):
            width, step = step, abs(g / h)
            x = newton
        else:
            width, step = step, 0.5 * abs(hi - lo)
            x = 0.5 * (lo + hi)
        if step <= _XTOL * abs(x) + floor:
            return x
        g, h = sums(x)
        if g == 0:
            return x
        lo, hi = (x, hi) if g < 0 else (lo, x)
        if abs(hi - lo) <= _XTOL * abs(x) + floor:
            break
    return x


class XGBoostObjective(Objective):
    """XGBoost's custom objective and metric for a loss.

    Native: ``xgb.train({"base_score": o.base_score(y)}, dtrain, obj=o.objective,
    custom_metric=o.metric)``. scikit-learn: ``XGBRegressor(objective=o.sklearn_objective,
    base_score=o.base_score(y), eval_metric=o.sklearn_metric)``; for ``XGBClassifier`` pass
    ``o.base_score(y, classifier=True)`` (it reads a binary base_score as a probability).
    Multiclass raw scores are (n, k); a class-axis loss's Hessian diagonal is doubled by
    default, as in ``multi:softprob``.
    """

    default_class_scale = staticmethod(lambda k: 2.0)

    def objective(self, preds: np.ndarray, dtrain: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return (grad, hess) for ``xgb.train(obj=...)``: raw scores, then the DMatrix."""
        return self.grad_hess(preds, dtrain.get_label(), dtrain.get_weight())

    def metric(self, preds: np.ndarray, dtrain: Any) -> tuple[str, float]:
        """Return (name, weighted mean loss) for ``xgb.train(custom_metric=...)``."""
        return self.name, self.value(preds, dtrain.get_label(), dtrain.get_weight())

    def sklearn_objective(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (grad, hess) for ``XGBRegressor/XGBClassifier(objective=...)``: targets first."""
        return self.grad_hess(y_pred, y_true, sample_weight)

    @property
    def sklearn_metric(self) -> Callable[..., float]:
        """Return the weighted mean loss as ``eval_metric`` for the scikit-learn API (named
        after the loss, which is how XGBoost names a callable metric)."""

        def metric(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None) -> float:
            return self.value(y_pred, y_true, sample_weight)

        metric.__name__ = self.name
        return metric

    def base_score(
        self, y: Any, sample_weight: Any = None, *, classifier: bool = False
    ) -> float | list[float]:
        """Return the optimal constant raw score as XGBoost's ``base_score`` (a list for
        multiclass); ``classifier=True`` gives a binary start as the probability
        ``XGBClassifier`` expects."""
        c = self.constant_start(y, sample_weight)
        if np.ndim(c):
            return [float(v) for v in c]
        return float(1 / (1 + np.exp(-c))) if classifier else float(c)


class LightGBMObjective(Objective):
    """LightGBM (>= 4) custom objective and metric for a loss.

    Native: ``lgb.train({"objective": o.objective}, lgb.Dataset(X, y, init_score=init),
    feval=o.metric)`` with ``init = o.init_score(y)``, then ``o.fold_init_score(booster,
    init)`` so the model predicts from the same start. scikit-learn: ``LGBMRegressor(
    objective=o.sklearn_objective).fit(X, y, init_score=init, eval_metric=o.sklearn_metric)``,
    then ``o.fold_init_score(model.booster_, init)``. Multiclass raw scores are (n, k); a
    class-axis loss's Hessian diagonal is scaled by k / (k - 1) by default, as in LightGBM's
    ``multiclass``.
    """

    default_class_scale = staticmethod(lambda k: k / (k - 1) if k > 1 else 1.0)

    def objective(self, preds: np.ndarray, train_set: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return (grad, hess) for ``params["objective"]``: raw scores, then the Dataset."""
        return self.grad_hess(preds, train_set.get_label(), train_set.get_weight())

    def metric(self, preds: np.ndarray, eval_set: Any) -> tuple[str, float, bool]:
        """Return (name, weighted mean loss, False) for ``lgb.train(feval=...)``."""
        return self.name, self.value(preds, eval_set.get_label(), eval_set.get_weight()), False

    def sklearn_objective(
        self, y_true: np.ndarray, y_pred: np.ndarray, weight: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (grad, hess) for ``LGBMRegressor(objective=...)``: targets first."""
        return self.grad_hess(y_pred, y_true, weight)

    def sklearn_metric(
        self, y_true: np.ndarray, y_pred: np.ndarray, weight: Any
    ) -> tuple[str, float, bool]:
        """Return (name, weighted mean loss, False) for ``fit(eval_metric=...)``."""
        return self.name, self.value(y_pred, y_true, weight), False

    def init_score(
        self, y: Any, sample_weight: Any = None, n_classes: int | None = None
    ) -> np.ndarray:
        """Return the optimal constant raw score repeated per row, as ``init_score``."""
        c = self.constant_start(y, sample_weight, n_classes)
        return np.tile(c, (len(y), 1)) if np.ndim(c) else np.full(len(y), c)

    def fold_init_score(self, booster: Any, init_score: Any) -> Any:
        """Add a constant start (``init_score``'s first row, as :meth:`init_score` gives it)
        to the first iteration's trees, as LightGBM's boost_from_average does, so
        ``booster.predict`` includes it. A second call with the same start changes nothing;
        with another start it is refused (the booster holds one start already)."""
        rows = np.asarray(init_score, dtype=np.float64)
        if rows.ndim == 0 or len(rows) == 0:
            raise ValueError(f"{self.name}: init_score must be init_score(y)'s rows, got {rows!r}")
        require("real", rows, f"{self.name}: init_score")
        if np.any(rows != rows[0]):
            raise ValueError(
                f"{self.name}: init_score varies between rows; fold_init_score folds the "
                "constant start that init_score(y) gives, not the labels"
            )
        start = np.atleast_1d(rows[0])
        mark = ",".join(repr(float(c)) for c in start)
        done = getattr(booster, _FOLDED, None)
        if done is not None:
            if done == mark:
                return booster
            raise ValueError(
                f"{self.name}: this booster already holds the start [{done}]; folding "
                f"[{mark}] as well would add a second one"
            )
        trees = booster.dump_model()["tree_info"]
        for tree, c in zip(trees[: len(start)], start, strict=True):
            index = tree["tree_index"]
            for leaf in range(tree["num_leaves"]):
                booster.set_leaf_output(index, leaf, booster.get_leaf_output(index, leaf) + c)
        setattr(booster, _FOLDED, mark)
        return booster


#: The attribute set on a LightGBM booster once its start is folded (a second fold is a no-op).
_FOLDED = "symgrad_folded_init_score"


def xgboost(
    loss: str | Spec | tuple, *, hyper: Mapping[str, float] | None = None, **options: Any
) -> XGBoostObjective:
    """Return XGBoost's objective, metric and base_score for ``loss`` (a built-in name, a
    user spec or a ``(loss, {hyper})`` pair); ``hyper``: the loss's hyper-parameters;
    ``options``: :class:`Objective`'s settings (``OPTIONS``)."""
    return XGBoostObjective(loss, hyper=hyper, **options)


def lightgbm(
    loss: str | Spec | tuple, *, hyper: Mapping[str, float] | None = None, **options: Any
) -> LightGBMObjective:
    """Return LightGBM's objective, metric and init_score for ``loss`` (a built-in name, a
    user spec or a ``(loss, {hyper})`` pair); ``hyper``: the loss's hyper-parameters;
    ``options``: :class:`Objective`'s settings (``OPTIONS``)."""
    return LightGBMObjective(loss, hyper=hyper, **options)
