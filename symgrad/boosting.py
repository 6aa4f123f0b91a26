"""Gradient-boosting objectives for XGBoost and LightGBM from any symgrad loss.

A boosting library wants, per sample, the first and second derivative of the loss in the raw
score, with no 1/n, times the sample's weight, in its own argument order and layout. This module
gets them from the emitted kernels (``name_grad(..., count=1, weight=w)`` and ``name_hess``: no
second copy of the maths), makes the Hessian safe where the loss is kinked or non-convex, and
finds the optimal constant start (``base_score`` / ``init_score``) by a 1-D Newton solve on the
same derivatives. XGBoost and LightGBM are imported by the caller, never here.

Hessian policies (``hessian=``), applied to the unweighted per-sample second derivative h:

- ``"auto"`` (default): h where h > 0, ``constant`` where h <= 0 (L1, quantile and hinge
  losses, Huber's linear part; what XGBoost's own L1 and quantile objectives use, 1 per unit
  weight).
- ``"exact"``: h as derived.
- ``"floor"``: max(h, ``floor``).
- ``"abs"``: max(\\|h\\|, ``floor``), for non-convex losses.
- ``"constant"``: ``constant`` everywhere (plain gradient boosting, step 1/constant).

A :class:`HessianWarning` says when h <= 0 on more than ``warn_share`` of the values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from symgrad.errors import HessianWarning
from symgrad.kernels import resolve

if TYPE_CHECKING:
    from symgrad.compiler.spec import Spec

__all__ = [
    "HESSIAN_POLICIES",
    "HessianWarning",
    "LightGBMObjective",
    "Objective",
    "XGBoostObjective",
    "lightgbm",
    "xgboost",
]

HESSIAN_POLICIES = ("auto", "exact", "floor", "abs", "constant")
#: Relative tolerance on the constant start, and the largest number of bracket doublings.
_XTOL = 1e-12
_DOUBLINGS = 64


class Objective:
    """A loss with its hyper-parameters bound, giving per-sample derivatives for boosting.

    ``scale`` multiplies the gradient and Hessian (the loss times a constant: XGBoost's and
    LightGBM's squared error is 0.5 * mse, so ``xgboost("mse", scale=0.5)`` is
    ``reg:squarederror``); ``class_scale`` multiplies the Hessian diagonal of a class-axis loss
    (XGBoost's ``multi:softprob`` uses 2, LightGBM's ``multiclass`` k / (k - 1)).
    """

    #: The class_scale a class-axis loss gets by default (a subclass: its library's convention).
    default_class_scale: Callable[[int], float] = staticmethod(lambda k: 1.0)

    def __init__(
        self,
        loss: str | Spec,
        *,
        hessian: str = "auto",
        floor: float = 1e-6,
        constant: float = 1.0,
        scale: float = 1.0,
        class_scale: float | None = None,
        warn_share: float = 0.5,
        **hyper: float,
    ) -> None:
        self._args = (loss, {**hyper, "hessian": hessian, "floor": floor, "constant": constant})
        self._args[1].update(scale=scale, class_scale=class_scale, warn_share=warn_share)
        spec, module, hyper, _ = resolve("loss", (loss, hyper))
        if len(spec.inputs) != 2:
            raise ValueError(f"loss {spec.name!r}: a boosting objective needs inputs (yhat, y)")
        if hessian not in HESSIAN_POLICIES:
            raise ValueError(
                f"hessian={hessian!r} is not a policy; choose one of: {', '.join(HESSIAN_POLICIES)}"
            )
        for label, value in (("floor", floor), ("constant", constant), ("scale", scale)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a positive finite number, got {value!r}")
        bound = {s: partial(getattr(module, spec.name + s), **hyper) for s in _SUFFIXES}
        self.spec, self.hyper, self._fn = spec, hyper, bound
        self.hessian, self.floor, self.constant, self.scale = hessian, floor, constant, scale
        self.class_scale, self.warn_share = class_scale, warn_share
        self._warned = False

    def __deepcopy__(self, memo: dict) -> Objective:
        # LightGBM deep-copies its params, objective included: the kernels are immutable
        return self

    def __reduce__(self) -> tuple:
        # pickled as the loss and options it was made from (a user spec is recompiled)
        return _rebuild, (type(self), *self._args)

    @property
    def name(self) -> str:
        """Return the loss's name (the metric's name too)."""
        return self.spec.name

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({self.name!r}, hessian={self.hessian!r}{options})"

    # ------------------------------------------------------------------ layout

    def targets(self, y: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Return ``y`` in the loss's layout for raw scores of ``shape``: class labels become
        one-hot rows for a class-axis loss; a flat multi-output label is reshaped."""
        y = np.asarray(y, dtype=np.float64)
        if self.spec.class_axis and y.ndim == len(shape) - 1:
            k = shape[-1]
            labels = y.astype(np.int64)
            if np.any(labels != y) or np.any(labels < 0) or np.any(labels >= k):
                raise ValueError(f"{self.name}: class labels must be integers in [0, {k})")
            return np.eye(k)[labels]
        if y.shape != shape and y.size == int(np.prod(shape)):
            return y.reshape(shape)
        return y

    def _weight(self, weight: Any, yhat: np.ndarray) -> np.ndarray | None:
        """Return per-row weights shaped for the kernels (None when absent or empty)."""
        if weight is None or np.size(weight) == 0:
            return None
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != yhat.shape[:1]:
            raise ValueError(f"{self.name}: {w.size} weights for {yhat.shape[0]} rows")
        if self.spec.class_axis or yhat.ndim == 1:
            return w
        return w.reshape(w.shape + (1,) * (yhat.ndim - 1))

    # ------------------------------------------------------------------ derivatives

    def grad_hess(
        self, yhat: Any, y: Any, weight: Any = None, *, warn: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-sample gradient and safe Hessian in the raw score ``yhat`` (no 1/n),
        times ``weight`` when given, shaped like ``yhat``."""
        yhat = np.asarray(yhat, dtype=np.float64)
        y = self.targets(y, yhat.shape)
        w = self._weight(weight, yhat)
        grad = self._fn["_grad"](yhat, y, count=1, weight=w)
        hess = self.safe_hessian(self._fn["_hess"](yhat, y, count=1), warn=warn)
        if self.spec.class_axis:
            k = yhat.shape[-1]
            hess *= self.default_class_scale(k) if self.class_scale is None else self.class_scale
        if w is not None:
            hess *= w[:, None] if self.spec.class_axis else w
        if self.scale != 1:
            grad *= self.scale
            hess *= self.scale
        return grad, hess

    def safe_hessian(self, h: np.ndarray, *, warn: bool = True) -> np.ndarray:
        """Apply the Hessian policy to the unweighted per-sample second derivative ``h``,
        warning once per objective when it is zero or negative on much of the data."""
        bad = ~(h > 0)
        share = float(np.mean(bad)) if h.size else 0.0
        if warn and share > self.warn_share and not self._warned:
            self._warned = True
            warnings.warn(_warning(self, share), HessianWarning, stacklevel=3)
        if self.hessian == "exact":
            return h
        if self.hessian == "auto":
            return np.where(bad, self.constant, h)
        if self.hessian == "floor":
            return np.maximum(h, self.floor)
        if self.hessian == "abs":
            return np.maximum(np.abs(h), self.floor)
        return np.full_like(h, self.constant)

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

        Each coordinate is a 1-D Newton solve on the spec's own per-sample derivatives with
        the safe Hessian, kept inside a bracket of the gradient's sign change (bisection when
        a Newton step leaves it), so it converges for L1 and quantile losses too; several
        classes are solved in turn until none moves. A loss unchanged by adding one constant
        to every class (softmax) gets the solution with mean zero.
        """
        y = np.asarray(y, dtype=np.float64)
        if self.spec.class_axis:
            k = n_classes or (y.shape[-1] if y.ndim == 2 else int(np.max(y)) + 1)
            shape: tuple[int, ...] = (len(y), k)
        else:
            shape = y.shape
        c = np.zeros(shape[1:])
        if not self.spec.class_axis and y.size:
            c = np.array(c + np.average(y, axis=0, weights=weight), dtype=np.float64)
        targets = self.targets(y, shape)
        for _ in range(100 if c.ndim else 1):
            before = c.copy()
            for j in np.ndindex(c.shape):
                c[j] = _root(partial(self._sums, c, j, targets, weight), float(c[j]))
            if np.all(np.abs(c - before) <= 1e-10 * (1 + np.abs(c))):
                break
        if c.ndim and self.spec.class_axis:
            centred = c - np.mean(c)
            if np.isclose(self._total(centred, targets, weight), self._total(c, targets, weight)):
                c = centred
        return float(c) if c.ndim == 0 else c

    def _sums(self, c: np.ndarray, j: tuple, y: np.ndarray, weight: Any, x: float) -> tuple:
        """Return the summed gradient and safe Hessian in coordinate ``j`` at ``c[j] = x``."""
        trial = c.copy()
        trial[j] = x
        grad, hess = self.grad_hess(np.broadcast_to(trial, y.shape), y, weight, warn=False)
        index = (Ellipsis, *j)
        return float(np.sum(grad[index])), float(np.sum(hess[index]))

    def _total(self, c: np.ndarray, y: np.ndarray, weight: Any) -> float:
        return self.value(np.broadcast_to(c, y.shape).copy(), y, weight)


_SUFFIXES = ("", "_grad", "_hess", "_per_sample")


def _rebuild(cls: type, loss: Any, options: dict) -> Objective:
    return cls(loss, **options)


def _warning(obj: Objective, share: float) -> str:
    what = {
        "exact": "trees cannot split on it; choose hessian='auto', 'floor', 'abs' or 'constant'",
        "auto": f"hessian='auto' uses {obj.constant} there",
        "floor": f"hessian='floor' raises it to {obj.floor}",
        "abs": f"hessian='abs' uses |h|, at least {obj.floor}",
        "constant": f"hessian='constant' uses {obj.constant} everywhere",
    }[obj.hessian]
    return (
        f"{obj.name}: the second derivative is zero or negative on {share:.0%} of the values, "
        f"unusable for boosting as it stands; {what}"
    )


def _root(sums: Callable[[float], tuple[float, float]], x: float) -> float:
    """Return a zero of the summed gradient ``g(x)`` (``sums(x) = (g, h)``, h > 0 a safe
    Hessian): Newton steps inside a bracket of g's sign change, bisection otherwise."""
    g, h = sums(x)
    if g == 0 or not np.isfinite(g):
        return x
    step = abs(g / h) if h > 0 else 1.0
    step = max(step, 1e-3 * (1 + abs(x)))
    # walk downhill, doubling the step, until g changes sign (or flattens to nothing)
    a, ga = x, g
    for _ in range(_DOUBLINGS):
        b = a - np.sign(ga) * step
        gb, hb = sums(b)
        if np.sign(gb) != np.sign(ga) or abs(gb) <= 1e-14 * abs(g):
            break
        a, ga, step = b, gb, 2 * step
    else:
        return a
    if gb == 0 or abs(gb) <= 1e-14 * abs(g):
        return b
    lo, hi = (a, b) if ga < 0 else (b, a)
    x, g, h = b, gb, hb
    width = step = abs(hi - lo)
    for _ in range(200):
        # Newton inside the bracket while it at least halves the step; bisection otherwise
        # (numerical recipes' rtsafe): a step-function gradient (L1) still converges
        newton = x - g / h if h > 0 else np.nan
        if min(lo, hi) < newton < max(lo, hi) and abs(2 * g) <= abs(width * h):
            width, step = step, abs(g / h)
            x = newton
        else:
            width, step = step, 0.5 * abs(hi - lo)
            x = 0.5 * (lo + hi)
        g, h = sums(x)
        if g == 0:
            return x
        lo, hi = (x, hi) if g < 0 else (lo, x)
        if abs(hi - lo) <= _XTOL * (1 + abs(x)):
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

    Native: ``lgb.train({"objective": o.objective}, lgb.Dataset(X, y,
    init_score=o.init_score(y)), feval=o.metric)``, then ``o.fold_init_score(booster, y)`` so
    the model predicts from the same start. scikit-learn: ``LGBMRegressor(objective=
    o.sklearn_objective).fit(X, y, init_score=o.init_score(y), eval_metric=o.sklearn_metric)``,
    then ``o.fold_init_score(model.booster_, y)``. Multiclass raw scores are (n, k); a
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
        """Add a constant start (``init_score``'s first row) to the first iteration's trees,
        as LightGBM's boost_from_average does, so ``booster.predict`` includes it."""
        start = np.atleast_1d(np.asarray(init_score, dtype=np.float64)[0])
        trees = booster.dump_model()["tree_info"]
        for tree, c in zip(trees[: len(start)], start, strict=True):
            index = tree["tree_index"]
            for leaf in range(tree["num_leaves"]):
                booster.set_leaf_output(index, leaf, booster.get_leaf_output(index, leaf) + c)
        return booster


def xgboost(loss: str | Spec, **options: Any) -> XGBoostObjective:
    """Return XGBoost's objective, metric and base_score for ``loss`` (a built-in name or a
    user spec); ``options``: the loss's hyper-parameters and :class:`Objective`'s settings."""
    return XGBoostObjective(loss, **options)


def lightgbm(loss: str | Spec, **options: Any) -> LightGBMObjective:
    """Return LightGBM's objective, metric and init_score for ``loss`` (a built-in name or a
    user spec); ``options``: the loss's hyper-parameters and :class:`Objective`'s settings."""
    return LightGBMObjective(loss, **options)
