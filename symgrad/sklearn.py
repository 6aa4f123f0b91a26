"""scikit-learn estimators over :mod:`symgrad.models`: any built-in or user loss in a Pipeline.

``SymgradRegressor`` and ``SymgradClassifier`` are thin adapters: the objective, its gradient
and Hessian come from the models (and so from the generated kernels); this module only
validates data, encodes targets and picks a solver. Both minimise

    sum_i w_i L(f(x_i), t_i) / sum_i w_i  +  alpha * R(W)

(the mean also runs over outputs), where ``w`` is ``sample_weight`` (ones by default), ``f``
the linear model (or an MLP with ``hidden_layer_sizes``), ``L`` the ``loss`` and ``R`` the
``regularizer`` with ``lam = 1``: ``alpha / 2 ||W||^2`` for ``"l2"``, ``alpha ||W||_1`` for
``"l1"``, on weights only (never on intercepts). ``alpha`` is passed as the regularizer's
``lam`` hyper-parameter, so a user regularizer must take one. This is ``SGDRegressor``'s
``alpha`` (mean loss plus ``alpha R(w)``); on ``n`` samples (``n = sum(w)`` when weighted):

* ``Ridge(alpha=a)`` is ``SymgradRegressor(loss="mse", alpha=2 * a / n)``;
* ``LogisticRegression(C=c)`` is ``SymgradClassifier(alpha=1 / (c * n))`` (binary or
  multinomial; ``loss="log_loss"`` is the default).

``loss``, ``regularizer`` and ``activation`` take a built-in name, a user spec
(``@symgrad.loss`` ...) or a pair ``(name_or_spec, {hyper-parameter: value})``. Specs compare
by value, so clones reuse the compiled kernels, and estimators pickle with user specs (their
compiled kernels travel as source, so a process that loads one compiles nothing).

Classifiers score each class with a logit. ``"log_loss"`` is the logistic loss for two classes
and the softmax cross-entropy for more. An element-wise loss sees one logit per class
(one-vs-rest; a single one for two classes) against 0/1 targets, or against -1/+1 for a loss
that declares its labels in the ``sign`` domain (``domains={"y": "sign"}``: hinge,
squared_hinge, a user's margin loss) and for the built-in regression losses (mse, l1, huber,
smooth_l1, log_cosh, pinball); those have no ``predict_proba``. Targets outside the label
domain a loss declares (``KERNELS``) are refused, for the regressor too (``poisson_nll`` on
negative y, a logistic loss on y outside [0, 1]), and so is an X whose entries pass 1e150
(the objective's curvature would overflow). A class-axis loss (softmax
cross-entropy, or a user spec written with ``symgrad.axis_sum``) sees all logits of a row.

``solver="auto"`` is :func:`symgrad.solvers.choose`, which reads the kernels' ``KERNELS``
facts: on a linear model, Newton's method when the loss and regularizer are smooth and
declared convex (mse, log_cosh, poisson_nll, the logistic and softmax losses, l2), L-BFGS
for kinked ones (l1, hinge, huber, pinball ...) or beyond 2000 parameters, and
Levenberg-Marquardt damped Newton for the rest and user specs (safe where curvature is flat
or negative); an MLP gets Adam. Choices: ``"newton"``, ``"newton-cg"``, ``"damped-newton"``,
``"lbfgs"`` (the solver core :mod:`symgrad.solvers`, shared with :mod:`symgrad.dask`),
``"trust-ncg"``, ``"trust-exact"``, ``"trust-krylov"`` (scipy, through :mod:`symgrad.scipy`)
or a first-order optimizer from
``symgrad.optim.OPTIMIZERS`` (``"adam"``, ``"sgd"`` ...; ``learning_rate``, ``batch_size``).

This module needs scikit-learn (and scipy for its solvers); ``import symgrad`` never loads it.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

import symgrad.activations as _activations
import symgrad.scipy as _sg_scipy
from symgrad import errors, models, optim, solvers
from symgrad.domains import require
from symgrad.fit import fit, takes_out
from symgrad.kernels import adopt, builtin_twin, carried, resolve
from symgrad.losses import one_hot

__all__ = ["SymgradClassifier", "SymgradRegressor"]

Params = dict[str, np.ndarray]

#: solver name -> the solver core's method (symgrad.solvers.minimize)
_CORE = {
    "newton": "newton",
    "newton-cg": "newton_cg",
    "damped-newton": "damped_newton",
    "lbfgs": "lbfgs",
}
#: solver name -> scipy.optimize.minimize's method
_SCIPY = {
    "trust-ncg": "trust-ncg",
    "trust-exact": "trust-exact",
    "trust-krylov": "trust-krylov",
}
#: built-in losses defined on margins or residuals: a classifier encodes its classes as -1/+1
_SIGNED = frozenset(
    {"hinge", "squared_hinge", "mse", "l1", "huber", "smooth_l1", "log_cosh", "pinball"}
)
#: built-in losses on probabilities, log-probabilities or rates, not on a logit
_NOT_ON_LOGITS = frozenset(
    {"binary_cross_entropy", "categorical_cross_entropy", "kl_div", "poisson_nll"}
)
#: gradient-norm tolerance of the second-order and scipy solvers, relative to the start's
_SECOND_ORDER_TOL = 1e-10
#: relative loss change per epoch that stops a first-order optimizer
_FIRST_ORDER_TOL = 1e-6


class _Targets:
    """Targets and sample weights sliced together, so ``symgrad.fit``'s batches keep them aligned."""

    def __init__(self, Y: np.ndarray, weight: np.ndarray | None) -> None:
        self.Y, self.weight = Y, weight

    def __len__(self) -> int:
        return len(self.Y)

    def __getitem__(self, idx: Any) -> _Targets:
        return _Targets(self.Y[idx], None if self.weight is None else self.weight[idx])


class _Weighted:
    """A model with its sample weights bound, for solvers that call ``objective(params, X, y)``."""

    def __init__(self, model: Any, weight: np.ndarray | None) -> None:
        self.model, self.kw = model, {} if weight is None else {"sample_weight": weight}

    def objective(self, params: Params, X: Any, y: Any) -> tuple[float, Params]:
        return self.model.objective(params, X, y, **self.kw)

    def hessian(self, params: Params, X: Any, y: Any) -> np.ndarray:
        return self.model.hessian(params, X, y, **self.kw)

    def hvp_operator(self, params: Params, X: Any, y: Any) -> Any:
        return self.model.hvp_operator(params, X, y, **self.kw)


def _hidden(sizes: Any) -> tuple[int, ...]:
    """Return ``hidden_layer_sizes`` as a tuple of positive ints (``()`` for a linear model)."""
    if sizes is None:
        return ()
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if not isinstance(sizes, Sequence) or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(f"hidden_layer_sizes must be None or positive integers, got {sizes!r}")
    return tuple(int(s) for s in sizes)


def _regularizer(choice: Any, alpha: Any) -> Any:
    """Return the models' regularizer choice with ``lam = alpha`` (None for no penalty)."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    if choice is None or alpha == 0:
        return None
    spec, hyper, _ = models.kernel_spec("regularizer", choice)
    if "lam" not in spec.hyper_defaults:
        raise ValueError(
            f"regularizer {spec.name!r} has no hyper-parameter 'lam' for alpha to set; "
            "write it as lam * penalty"
        )
    if "lam" in hyper:
        raise ValueError("set the regularizer's strength with alpha, not with its 'lam'")
    base = choice[0] if isinstance(choice, tuple) else choice
    return (base, {**hyper, "lam": float(alpha)})


def _builtin_name(choice: Any) -> str | None:
    """Return the built-in loss a choice names (or a spec equal to a library one), else None."""
    info, module, _, user = resolve("loss", choice)
    return info.name if user is None or builtin_twin(info, module) else None


def _label_encoding(choice: Any) -> str:
    """Return how a classifier encodes its classes for an element-wise loss: ``"signed"``
    (-1/+1) where the loss declares its labels in the ``sign`` domain (``KERNELS``) or is a
    built-in margin or regression loss, else ``"binary"`` (0/1)."""
    info = models.kernel_spec("loss", choice)[0]
    declared = info.domains.get(info.inputs[1]) if len(info.inputs) > 1 else None
    return "signed" if declared == "sign" or _builtin_name(choice) in _SIGNED else "binary"


def _require_label_domain(owner: str, choice: Any, Y: np.ndarray, what: str) -> None:
    """Raise a one-line ValueError unless the targets ``Y`` lie in the label domain the loss
    declares (``KERNELS``; finite when it declares none)."""
    info = models.kernel_spec("loss", choice)[0]
    domain = info.domains.get(info.inputs[1], "real") if len(info.inputs) > 1 else "real"
    require(domain, Y, f"{owner}: {what} for loss {info.name!r}")


#: Largest |X| accepted: the objective's curvature holds products of two entries (X^T X), and
#: the square of this still leaves float64 room for a few thousand features.
_X_LIMIT = 1e150


def _require_scale(owner: str, X: np.ndarray) -> None:
    """Raise a one-line ValueError when ``X``'s entries are so large that the objective's
    gradient or curvature overflows float64 (the user never chose the tolerance that would)."""
    largest = float(np.max(np.abs(X), initial=0.0))
    if largest > _X_LIMIT:
        raise ValueError(
            f"{owner}: X has entries up to {largest:.3g}, beyond {_X_LIMIT:g}: the objective's "
            "gradient and curvature overflow float64 at that scale; rescale X (e.g. with "
            "sklearn.preprocessing.StandardScaler)"
        )


def _gradient_tolerance(tol: float | None, grads: Any) -> float:
    """Return the gradient-norm tolerance ``tol`` (default ``_SECOND_ORDER_TOL``) relative to
    the start's gradient norm (at least 1); a start whose gradient is not finite is an error
    about the data's scale."""
    if not np.isfinite(solvers.gradient_norm(grads)):
        raise ValueError(
            "the loss's gradient at the start is not finite; check X and y for huge values"
        )
    return solvers.relative_tolerance(_SECOND_ORDER_TOL if tol is None else tol, grads)


def _seed(random_state: Any) -> int:
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _check_count(name: str, value: Any, least: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


class _SymgradEstimator(BaseEstimator):
    """Share fitting, solvers and pickling between the regressor and the classifier."""

    def _build(self) -> Any:
        """Return the symgrad model described by ``_model_args_`` (cached compile of specs)."""
        kind, args = self._model_args_
        return getattr(models, kind)(*args)

    def _make_model(self, loss: Any, n_in: int, n_out: int, *, softmax: bool = False) -> Any:
        hidden = _hidden(self.hidden_layer_sizes)
        reg = _regularizer(self.regularizer, self.alpha)
        if softmax:
            self._model_args_ = ("SoftmaxRegression", (n_out, reg, bool(self.fit_intercept)))
        elif not hidden and not models.kernel_spec("loss", loss)[0].class_axis:
            self._model_args_ = ("LinearRegression", (loss, reg, bool(self.fit_intercept)))
        else:
            sizes = (n_in, *hidden, n_out)
            self._model_args_ = ("MLP", (sizes, self.activation, loss, reg))
        self.model_ = self._build()
        return self.model_

    def _solver(self, model: Any, X: np.ndarray, Y: np.ndarray) -> str:
        """Return the solver to run: ``solver``, or for "auto" :func:`symgrad.solvers.choose`'s
        pick from the kernels' facts."""
        solver = self.solver
        if solver == "auto":
            chosen = solvers.choose(model, X, Y)
            return {"newton_cg": "newton-cg", "damped_newton": "damped-newton"}.get(chosen, chosen)
        known = {*_CORE, *_SCIPY, *optim.OPTIMIZERS}
        if not isinstance(solver, str) or solver.lower() not in known:
            raise ValueError(f"unknown solver {solver!r}; choose 'auto' or one of {sorted(known)}")
        return solver.lower()

    def _start(self, model: Any, X: np.ndarray, Y: np.ndarray) -> Params:
        params = _sg_scipy.initial_params(model, X, Y, _seed(self.random_state))
        if model.facts().linear:  # convex: start at zero
            params = {key: np.zeros_like(value) for key, value in params.items()}
        return params

    def _fit_model(self, model: Any, X: np.ndarray, Y: np.ndarray, weight: Any, solver: str):
        """Minimise the model's objective; set ``params_`` and ``n_iter_``; warn if unconverged."""
        max_iter = _check_count("max_iter", self.max_iter, 1)
        if weight is not None:  # zero weights drop out of a weighted mean: skip those rows
            keep = weight > 0
            X, Y, weight = X[keep], Y[keep], weight[keep]
        params = self._start(model, X, Y)
        bound = _Weighted(model, weight)
        problems: list[str] = []
        if solver in _CORE or solver in _SCIPY:
            tol = _gradient_tolerance(self.tol, list(bound.objective(params, X, Y)[1].values()))
        if solver in _CORE:
            options = {"ftol": 64 * np.finfo(float).eps, "maxls": 50} if solver == "lbfgs" else {}
            problem = solvers.ModelProblem(model, X, Y, params, sample_weight=weight)
            with warnings.catch_warnings():  # raised below as scikit-learn's own warning
                warnings.simplefilter("ignore", errors.ConvergenceWarning)
                result = solvers.minimize(
                    problem, problem.x0, params, method=_CORE[solver], max_iter=max_iter,
                    tol=tol, progress=False, **options,
                )  # fmt: skip
            params, n_iter, problems = result.params, result.n_iter, list(result.warnings)
            # a stall after progress is round-off at the optimum, as in scikit-learn
            converged = result.stop_reason in ("tol", "stalled") and not problems
        elif solver in _SCIPY:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", errors.ConvergenceWarning)
                params, res = _sg_scipy.minimize(
                    model, X, Y, params, method=_SCIPY[solver], sample_weight=weight,
                    options={"maxiter": max_iter, "gtol": tol},
                )  # fmt: skip
            problems = list(getattr(res, "warnings", ()))
            # status 1 is scipy's iteration limit; other stops are at round-off (trust-region
            # precision loss) and count as converged, as in scikit-learn, unless a value was
            # non-finite or the result never left the start
            n_iter = int(res.nit)
            converged = (bool(res.success) or res.status != 1) and not problems
        else:
            params, n_iter, converged = self._first_order(bound, params, X, Y, weight, solver)
        if problems:
            warnings.warn(
                f"{type(self).__name__}: solver {solver!r} did not find a minimum: "
                + "; ".join(problems),
                ConvergenceWarning,
                stacklevel=3,
            )
        elif not converged:
            warnings.warn(
                f"{type(self).__name__}: solver {solver!r} stopped after max_iter={max_iter} "
                "iterations without converging; raise max_iter or tol",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.params_, self.n_iter_ = params, max(int(n_iter), 1)
        self._set_linear_attributes()

    def _first_order(self, bound: _Weighted, params: Params, X, Y, weight, solver: str):
        batch = self.batch_size
        if batch == "auto":
            batch = min(200, len(X))
        elif batch is not None:
            batch = _check_count("batch_size", batch, 1)

        model = bound.model

        def weights(t: _Targets) -> dict:
            return {} if t.weight is None else {"sample_weight": t.weight}

        if takes_out(model.objective):  # (the MLP) fit hands its joined gradient buffer

            def objective(p: Params, Xb: np.ndarray, t: _Targets, out: Params | None = None):
                return model.objective(p, Xb, t.Y, out=out, **weights(t))

        else:

            def objective(p: Params, Xb: np.ndarray, t: _Targets):
                return model.objective(p, Xb, t.Y, **weights(t))

        result = fit(
            objective, params, X, _Targets(Y, weight),
            optimizer=optim.get(solver, lr=self.learning_rate), epochs=self.max_iter,
            batch_size=batch, seed=_seed(self.random_state),
            tol=_FIRST_ORDER_TOL if self.tol is None else self.tol, tol_mode="rel_loss",
            progress=False,
        )  # fmt: skip
        return result.params, result.n_epochs, result.stop_reason == "tol"

    def _set_linear_attributes(self) -> None:
        """Expose ``coef_``/``intercept_`` (linear) or ``coefs_``/``intercepts_`` (MLP)."""
        p = self.params_
        if "W" in p:
            self.coef_ = np.asarray(p["W"]).T
            self.intercept_ = p["b"] if "b" in p else np.zeros(np.shape(p["W"])[1:])
        else:
            layers = len(p) // 2
            self.coefs_ = [p[f"W{i}"] for i in range(layers)]
            self.intercepts_ = [p[f"b{i}"] for i in range(layers)]

    def _scores(self, X: Any) -> np.ndarray:
        """Return the model's outputs (logits for a classifier) on validated ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.model_.decision_function(self.params_, X)

    def _weights(self, sample_weight: Any, X: np.ndarray) -> np.ndarray | None:
        if sample_weight is None:
            return None
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.any(w > 0):
            raise ValueError("sample_weight must contain at least one non-zero weight")
        return w

    def __getstate__(self) -> dict[str, Any]:
        """Drop the built model; ``__setstate__`` rebuilds it from the compiled kernels of user
        specs, which travel as source: a process that loads the estimator compiles nothing."""
        state = dict(super().__getstate__())
        state.pop("model_", None)
        state["_kernels_"] = carried(self.get_params(deep=False).values())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        adopt(state.pop("_kernels_", ()))
        super().__setstate__(state)
        if "_model_args_" in state:
            self.model_ = self._build()


class SymgradRegressor(RegressorMixin, _SymgradEstimator):
    """Regression with any symgrad loss: a linear model, or an MLP with ``hidden_layer_sizes``.

    ``y`` may have several columns (one output each). See the module docstring for the
    objective, the ``alpha`` mapping and the solvers. Fitted attributes: ``params_`` (the
    model's params dict), ``model_`` (the :mod:`symgrad.models` model), ``n_iter_``,
    ``coef_``/``intercept_`` (linear) or ``coefs_``/``intercepts_`` (MLP).
    """

    def __init__(
        self,
        loss: Any = "mse",
        regularizer: Any = "l2",
        alpha: float = 1e-4,
        hidden_layer_sizes: Any = None,
        activation: Any = "relu",
        solver: str = "auto",
        *,
        max_iter: int = 200,
        tol: float | None = None,
        learning_rate: float = 1e-3,
        batch_size: Any = "auto",
        fit_intercept: bool = True,
        random_state: Any = None,
    ) -> None:
        self.loss = loss
        self.regularizer = regularizer
        self.alpha = alpha
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.fit_intercept = fit_intercept
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SymgradRegressor:
        """Fit the model to ``X`` (n, d) and targets ``y`` (n,) or (n, k); return self."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        _require_scale(type(self).__name__, X)
        weight = self._weights(sample_weight, X)
        spec = models.kernel_spec("loss", self.loss)[0]
        if spec.class_axis:
            raise ValueError(
                f"loss {spec.name!r} reduces over a class axis; a regressor needs an "
                "element-wise loss (use SymgradClassifier)"
            )
        _require_label_domain(type(self).__name__, self.loss, y, "y")
        n_out = 1 if y.ndim == 1 else y.shape[1]
        model = self._make_model(self.loss, X.shape[1], n_out)
        self._one_column_ = y.ndim == 1
        self._fit_model(model, X, y, weight, self._solver(model, X, y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Return the predictions, shape (n,) or (n, k) like the fitted ``y``."""
        out = self._scores(X)
        return out[:, 0] if self._one_column_ and out.ndim == 2 else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class SymgradClassifier(ClassifierMixin, _SymgradEstimator):
    """Classification with any symgrad loss on logits: linear, or an MLP with ``hidden_layer_sizes``.

    ``loss="log_loss"`` (default) is logistic regression for two classes and softmax
    (multinomial) regression for more. Labels may be any values; ``classes_`` holds them in
    sorted order. See the module docstring for the objective, the ``alpha`` mapping, how
    other losses see the classes, and the solvers. Fitted attributes as for
    :class:`SymgradRegressor`, plus ``classes_``.
    """

    def __init__(
        self,
        loss: Any = "log_loss",
        regularizer: Any = "l2",
        alpha: float = 1e-4,
        hidden_layer_sizes: Any = None,
        activation: Any = "relu",
        solver: str = "auto",
        *,
        max_iter: int = 200,
        tol: float | None = None,
        learning_rate: float = 1e-3,
        batch_size: Any = "auto",
        fit_intercept: bool = True,
        random_state: Any = None,
    ) -> None:
        self.loss = loss
        self.regularizer = regularizer
        self.alpha = alpha
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.fit_intercept = fit_intercept
        self.random_state = random_state

    def _loss_for(self, n_classes: int) -> Any:
        """Return the loss choice for ``n_classes`` ("log_loss" resolved) and its spec."""
        choice = self.loss
        if isinstance(choice, str) and choice == "log_loss":
            choice = (
                "binary_cross_entropy_with_logits" if n_classes == 2 else "softmax_cross_entropy"
            )
        spec = models.kernel_spec("loss", choice)[0]
        if _builtin_name(choice) in _NOT_ON_LOGITS:
            raise ValueError(
                f"loss {spec.name!r} works on probabilities or rates, not on a classifier's "
                "logits; use 'log_loss', a logit loss or a margin loss"
            )
        return choice, spec

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SymgradClassifier:
        """Fit the classifier to ``X`` (n, d) and labels ``y`` (n,); return self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        _require_scale(type(self).__name__, X)
        weight = self._weights(sample_weight, X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        seen = codes if weight is None else codes[weight > 0]
        if np.unique(seen).size < 2:
            extra = "" if weight is None else " with positive sample_weight"
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes{extra}; "
                f"got 1 class ({self.classes_[seen[0]]!r})"
            )
        k = len(self.classes_)
        choice, spec = self._loss_for(k)
        if spec.class_axis:
            self._encoding_ = "classes"
            softmax = choice == "softmax_cross_entropy" and not _hidden(self.hidden_layer_sizes)
            model = self._make_model(choice, X.shape[1], k, softmax=softmax)
            Y = codes
        else:
            self._encoding_ = _label_encoding(choice)
            Y = (codes == 1).astype(float) if k == 2 else one_hot(codes, k)
            if self._encoding_ == "signed":
                Y = 2.0 * Y - 1.0
            _require_label_domain(type(self).__name__, choice, Y, "the classes encoded as targets")
            model = self._make_model(choice, X.shape[1], 1 if k == 2 else k)
        self._fit_model(model, X, Y, weight, self._solver(model, X, Y))
        if _builtin_name(choice) == "softmax_cross_entropy":
            self._center_logits()
        return self

    def _center_logits(self) -> None:
        """Give the last bias zero mean: softmax ignores a shift of all logits, so the solvers
        may leave any; centring makes ``decision_function`` the same whichever solver ran."""
        key = "b" if "b" in self.params_ else f"b{len(self.params_) // 2 - 1}"
        if key in self.params_:
            self.params_[key] = self.params_[key] - np.mean(self.params_[key])
            self._set_linear_attributes()

    def decision_function(self, X: Any) -> np.ndarray:
        """Return the logits: (n,) for two classes (positive means ``classes_[1]``), else (n, k)."""
        z = self._scores(X)
        if len(self.classes_) > 2:
            return z
        if z.ndim == 2 and z.shape[1] == 2:
            return z[:, 1] - z[:, 0]
        return z.reshape(len(z))

    def predict(self, X: Any) -> np.ndarray:
        """Return the class with the largest logit."""
        z = self.decision_function(X)
        idx = (z > 0).astype(int) if z.ndim == 1 else np.argmax(z, axis=1)
        return self.classes_[idx]

    def _has_proba(self) -> bool:
        """Tell whether the loss reads logits as probabilities (not a margin loss)."""
        if hasattr(self, "_encoding_"):
            return self._encoding_ != "signed"
        if isinstance(self.loss, str) and self.loss == "log_loss":
            return True
        try:
            return _label_encoding(self.loss) != "signed"
        except (TypeError, ValueError):  # a bad loss: fit will say so
            return True

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Return class probabilities (n, k): softmax of class-axis logits, else sigmoids
        (one-vs-rest ones normalised to sum to 1)."""
        z = self._scores(X)
        if self._encoding_ == "classes":
            return _activations.softmax(z)
        p = _activations.sigmoid(z)
        if len(self.classes_) == 2:
            p = p.reshape(len(p))
            return np.column_stack([1.0 - p, p])
        return p / np.sum(p, axis=1, keepdims=True)

    @available_if(_has_proba)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Return the log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))
