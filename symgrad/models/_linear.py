"""The linear family ``X @ W + b``: linear, logistic and softmax regression."""

from __future__ import annotations

from typing import Any

import numpy as np

import symgrad.activations as _activations
from symgrad.models._arrays import (
    _check_shape,
    _init_dtype,
    _matrix,
    _one_hot,
    _param,
    _params_dtype,
    _penalize,
)
from symgrad.models._kernels import _Kernel, _resolve_loss, _resolve_regularizer
from symgrad.models._protocol import HVP, KernelChoice, ModelFacts, Params
from symgrad.models._second_order import (
    _choice_repr,
    _hvp,
    _in_order,
    _loss_hvp,
    _second,
    _weighted_gram,
    _weighting,
)
from symgrad.models._xp_point import (
    _activate,
    _argmax,
    _as_labels,
    _foreign,
    _init_like,
    _like_dtype,
    _xp_fn,
    _XpPoint,
)

#: Elements per block of rows when a Hessian is assembled from per-sample products (2**21
#: doubles, 16 MB), so memory stays bounded for many samples.
_ROW_BLOCK = 1 << 21


class _Linear:
    """Share init, objective and checks among the models ``X @ W + b``."""

    def __init__(self, loss: _Kernel, regularizer: KernelChoice | None, fit_intercept: bool):
        self._loss = loss
        self._reg = _resolve_regularizer(regularizer)
        self._regularizer = regularizer
        self.fit_intercept = bool(fit_intercept)

    def _out_shape(self, n_outputs: int | None) -> tuple[int, ...]:
        return () if n_outputs is None else (n_outputs,)

    def init_for(self, X: Any, y: Any, seed: int = 0) -> Params:
        """Return zero parameters for data like ``X, y`` (one output per column of a 2-D
        ``y`` for :class:`LinearRegression`)."""
        return self.init(seed, n_features=int(np.shape(X)[1]))

    def facts(self) -> ModelFacts:
        """Return the loss and regularizer facts; a linear model's outputs are linear."""
        return ModelFacts(self._loss.spec, None if self._reg is None else self._reg.spec, True)

    def init(
        self,
        seed: int = 0,
        *,
        n_features: int,
        n_outputs: int | None = None,
        dtype: Any = np.float64,
        like: Any = None,
    ) -> Params:
        """Return zero weights (and intercept) for ``n_features`` inputs.

        Linear models are convex, so they start at zero like scikit-learn; ``seed`` is
        accepted for the common ``init(seed)`` interface and does not change the result.
        ``dtype=np.float32`` gives float32 params: the model then computes in float32.
        ``like=X`` (any Array API array: torch, CuPy, JAX, ...) gives params of X's library,
        device and float dtype (``dtype`` when X is not float32/float64).
        """
        dtype = _like_dtype(like, dtype)
        if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        if n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        out = self._out_shape(n_outputs)
        params = {"W": np.zeros((int(n_features), *out), _init_dtype(dtype))}
        if self.fit_intercept:
            params["b"] = np.zeros(out, _init_dtype(dtype))
        return _init_like(params, like)

    def decision_function(self, params: Params, X: Any) -> np.ndarray:
        """Return the linear outputs ``X @ W + b`` (logits for the classifiers).

        With torch, CuPy, JAX or other Array API inputs the result is that library's array.
        """
        ref = _foreign(params, X)
        if ref is not None:
            return self._xp_decision(_XpPoint(ref, params), params, X)[1]
        W = np.asarray(_param(params, "W"))
        if W.ndim not in (1, 2):
            raise ValueError(f"params['W'] must be 1-D or 2-D, got shape {W.shape}")
        z = _matrix(X, W.shape[0], _params_dtype(params)) @ W
        if self.fit_intercept:
            z += _param(params, "b", W.shape[1:])
        return z

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _xp_targets(self, at: _XpPoint, y: Any, z: Any) -> Any:
        return at.shaped(y, tuple(z.shape))

    def _xp_decision(self, at: _XpPoint, params: Params, X: Any) -> tuple[Any, Any, Any]:
        """Return (X, z = X @ W + b, W) in the namespace of ``at``."""
        W = at.array(_param(params, "W"))
        if W.ndim not in (1, 2):
            raise ValueError(f"params['W'] must be 1-D or 2-D, got shape {tuple(W.shape)}")
        X = at.matrix(X, W.shape[0])
        z = X @ W
        if self.fit_intercept:
            z = z + at.array(_param(params, "b", tuple(W.shape[1:])))
        return X, z, W

    def _xp_objective(
        self, at: _XpPoint, params: Params, X: Any, y: Any, sample_weight: Any, kw: dict
    ) -> tuple[Any, Params]:
        """Return ``objective`` computed in the namespace of ``at`` (loss a 0-d array)."""
        X, z, W = self._xp_decision(at, params, X)
        weights = at.weighting(self._loss, z, sample_weight, kw["count"])
        loss, dz = _xp_fn(self._loss, "_value_and_grad")(z, self._xp_targets(at, y, z), **weights)
        grads = {"W": X.mT @ dz}
        if self.fit_intercept:
            grads["b"] = at.xp.sum(dz, axis=0)
        if kw["penalty"]:
            loss = at.penalize(self._reg, loss, {"W": W}, grads)
        return loss, {key: grads[key] for key in params if key in grads}

    def objective(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> tuple[float, Params]:
        """Return the mean loss plus the penalty on ``W``, and its gradients by key.

        With ``sample_weight`` (one per sample) the mean is the weighted mean. On a block of
        rows, ``count`` (the total number of samples) makes the result that block's exact
        share of the full mean, and ``penalty=False`` leaves the penalty out, so blocks add
        up (:mod:`symgrad.dask`); the same call on zero rows with ``count`` and
        ``penalty=True`` gives the penalty alone, to add once to the sum.

        When X or a parameter is a torch, CuPy, JAX or other Array API array, the same
        objective runs in that library (the ``generated/*_xp.py`` kernels) and returns its
        arrays: the loss as a 0-d array, the gradients in the params' float dtype.
        """
        ref = _foreign(params, X)
        if ref is not None:
            kw = {"count": count, "penalty": penalty}
            return self._xp_objective(_XpPoint(ref, params), params, X, y, sample_weight, kw)
        X = np.asarray(X, dtype=_params_dtype(params))
        z = self.decision_function(params, X)
        kw = _weighting(self._loss, z, sample_weight, count)
        loss, dz = self._loss.fn(z, self._targets(y, z), **kw)
        grads = {"W": X.T @ dz}
        if self.fit_intercept:
            grads["b"] = np.sum(dz, axis=0)
        if penalty:
            loss += _penalize(self._reg, [np.asarray(params["W"])], [grads["W"]])
        return loss, grads

    # ------------------------------------------------------------------- second order

    def _point(self, params: Params, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=_params_dtype(params))
        z = self.decision_function(params, X)
        return X, z, self._targets(y, z)

    def _blocks(self, W: np.ndarray) -> list[tuple[str, int]]:
        blocks = [("W", W.size)]
        if self.fit_intercept:
            blocks.append(("b", int(np.prod(W.shape[1:]))))
        return blocks

    def hvp_operator(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> HVP:
        """Return ``v -> H v``, the objective's exact Hessian at ``params`` times a direction.

        ``v`` and the result are dicts like ``params``. The loss curvature at ``X @ W + b`` is
        computed once, so each application costs two products with ``X`` (for Newton-CG).
        """
        X, z, Y = self._point(params, X, y)
        W = np.asarray(params["W"], dtype=float)
        curvature = _loss_hvp(self._loss, z, Y, sample_weight, count)
        reg_h = None if self._reg is None or not penalty else _second(self._reg)(W)
        shapes = {"W": W.shape, "b": W.shape[1:]}

        def apply(v: Params) -> Params:
            vW = np.asarray(_param(v, "W", W.shape), dtype=float)
            dz = X @ vW
            if self.fit_intercept:
                dz += _param(v, "b", shapes["b"])
            hz = curvature(dz)
            out = {"W": X.T @ hz}
            if self.fit_intercept:
                out["b"] = np.sum(hz, axis=0)
            if reg_h is not None:
                out["W"] += reg_h * vW
            return {key: out[key] for key in params if key in out}

        return apply

    hvp = _hvp

    def hessian(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> np.ndarray:
        """Return the objective's dense Hessian over ``flatten(params)`` (``W`` raveled, then ``b``).

        With the loss curvature ``h = loss_hess(X @ W + b, y)`` (element-wise, 1/n included)
        it is ``A.T @ diag(h) @ A`` for ``A = [X, 1]``: one BLAS syrk per output column (for
        logistic regression ``h = p (1 - p) / n``). The regularizer's diagonal ``R''(W)`` is
        added on the weights only. A 2-D ``W`` (``n_outputs=k``) gives a block per output.
        """
        X, z, Y = self._point(params, X, y)
        h = _second(self._loss)(z, Y, **_weighting(self._loss, z, sample_weight, count))
        W = np.asarray(params["W"], dtype=float)
        if W.ndim == 1:
            H = _weighted_gram(X, h, self.fit_intercept)
        else:
            m, k = X.shape[1] + self.fit_intercept, W.shape[1]
            H4 = np.zeros((m, k, m, k))  # rows of [W; b] by output column: C order of W, then b
            for j in range(k):
                H4[:, j, :, j] = _weighted_gram(X, h[:, j], self.fit_intercept)
            H = H4.reshape(m * k, m * k)
        return self._penalized(H, W, params, penalty)

    def _penalized(
        self, H: np.ndarray, W: np.ndarray, params: Params, penalty: bool = True
    ) -> np.ndarray:
        """Add the regularizer's diagonal on the weights and order ``H`` like ``params``."""
        if self._reg is not None and penalty:
            idx = np.arange(W.size)
            H[idx, idx] += np.ravel(_second(self._reg)(W))
        return _in_order(H, self._blocks(W), params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()})"

    def _settings(self) -> str:
        return f"regularizer={_choice_repr(self._regularizer)}"


class LinearRegression(_Linear):
    """Fit ``y ~ X @ W + b`` under an element-wise loss (mean squared error by default).

    ``init(n_features=d)`` gives ``W`` of shape ``(d,)`` for 1-D targets, or ``(d, k)`` with
    ``n_outputs=k`` for ``(n, k)`` targets. ``regularizer=("l2", {"lam": 2 * alpha / n})``
    is scikit-learn's ``Ridge(alpha)``.
    """

    def __init__(
        self,
        loss: KernelChoice = "mse",
        regularizer: KernelChoice | None = None,
        fit_intercept: bool = True,
    ) -> None:
        kernel = _resolve_loss(loss)
        if kernel.spec.class_axis:
            raise ValueError(
                f"LinearRegression needs an element-wise loss; {kernel.name!r} reduces over "
                "classes (use SoftmaxRegression or MLP)"
            )
        self._loss_choice = loss
        super().__init__(kernel, regularizer, fit_intercept)

    def init_for(self, X: Any, y: Any, seed: int = 0) -> Params:
        """Return zero parameters for ``X, y``: one output per column of a 2-D ``y``."""
        n_outputs = int(np.shape(y)[1]) if np.ndim(y) == 2 else None
        return self.init(seed, n_features=int(np.shape(X)[1]), n_outputs=n_outputs)

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        return _check_shape(y, z.shape, z.dtype)

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return the predictions ``X @ W + b``."""
        return self.decision_function(params, X)

    def _settings(self) -> str:
        return (
            f"loss={_choice_repr(self._loss_choice)}, {super()._settings()}, "
            f"fit_intercept={self.fit_intercept}"
        )


class LogisticRegression(_Linear):
    """Fit binary labels (0/1, or probabilities) with a sigmoid on ``X @ w + b``.

    The loss is ``binary_cross_entropy_with_logits``; ``regularizer=("l2", {"lam": 1 / (C n)})``
    is scikit-learn's ``LogisticRegression(C=C)``.
    """

    def __init__(self, regularizer: KernelChoice | None = None, fit_intercept: bool = True):
        super().__init__(
            _resolve_loss("binary_cross_entropy_with_logits"), regularizer, fit_intercept
        )

    def init(  # type: ignore[override]
        self, seed: int = 0, *, n_features: int, dtype: Any = np.float64, like: Any = None
    ) -> Params:
        """Return zero weights ``W`` of shape ``(n_features,)`` and a zero intercept ``b``."""
        return super().init(seed, n_features=n_features, dtype=dtype, like=like)

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        y = _check_shape(y, z.shape, z.dtype)
        if np.any((y < 0) | (y > 1)):
            raise ValueError("LogisticRegression labels must be 0/1 (or probabilities in [0, 1])")
        return y

    def _xp_targets(self, at: _XpPoint, y: Any, z: Any) -> Any:
        y = at.shaped(y, tuple(z.shape))
        if bool(at.xp.any((y < 0) | (y > 1))):
            raise ValueError("LogisticRegression labels must be 0/1 (or probabilities in [0, 1])")
        return y

    def predict_proba(self, params: Params, X: Any) -> np.ndarray:
        """Return P(y = 1) for each sample, shape ``(n,)``."""
        return _activate("sigmoid", self.decision_function(params, X))

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return 0/1 labels (1 where the logit is positive)."""
        return _as_labels(self.decision_function(params, X) > 0)


class SoftmaxRegression(_Linear):
    """Fit ``n_classes`` classes with a softmax on ``X @ W + b`` (multinomial logistic).

    Labels are integers ``0 .. n_classes - 1`` or ``(n, n_classes)`` target rows.
    """

    def __init__(
        self,
        n_classes: int,
        regularizer: KernelChoice | None = None,
        fit_intercept: bool = True,
    ) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.n_classes = int(n_classes)
        super().__init__(_resolve_loss("softmax_cross_entropy"), regularizer, fit_intercept)

    def init(  # type: ignore[override]
        self, seed: int = 0, *, n_features: int, dtype: Any = np.float64, like: Any = None
    ) -> Params:
        """Return zero weights ``W`` of shape ``(n_features, n_classes)`` and zero ``b``."""
        return super().init(
            seed, n_features=n_features, n_outputs=self.n_classes, dtype=dtype, like=like
        )

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        if z.shape[1:] != (self.n_classes,):
            raise ValueError(f"params['W'] must have {self.n_classes} columns, got {z.shape[1:]}")
        return _one_hot(y, len(z), self.n_classes, z.dtype)

    def _xp_targets(self, at: _XpPoint, y: Any, z: Any) -> Any:
        if tuple(z.shape[1:]) != (self.n_classes,):
            raise ValueError(
                f"params['W'] must have {self.n_classes} columns, got {tuple(z.shape[1:])}"
            )
        return at.one_hot(y, z.shape[0], self.n_classes)

    def predict_proba(self, params: Params, X: Any) -> np.ndarray:
        """Return class probabilities, shape ``(n, n_classes)``."""
        return _activate("softmax", self.decision_function(params, X))

    def hessian(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> np.ndarray:
        """Return the objective's dense Hessian over ``flatten(params)`` (``W`` raveled, then ``b``).

        Sample ``i``'s block over its logits is ``c_i / n (diag(p_i) - p_i p_i.T)`` with
        ``p_i = softmax(z_i)`` and ``c_i = sum(y_i)`` (1 for labels), the closed form of
        ``softmax_cross_entropy_hvp``. With ``A = [X, 1]``, the ``diag(p)`` part is one
        weighted Gram matrix ``A.T diag(c p_a / n) A`` per class ``a``, and the ``p p.T`` part
        ``Q.T Q`` with ``Q[i, (j, a)] = sqrt(c_i / n) A[i, j] p[i, a]``, built and multiplied
        (BLAS syrk) in blocks of rows to bound memory.
        """
        X, z, Y = self._point(params, X, y)
        W = np.asarray(params["W"], dtype=float)
        P = _activations.softmax(z)
        w = np.sum(Y, axis=1) / (len(z) if count is None else count)
        if sample_weight is not None:  # the weighted mean: c_i w_i / sum(w) in place of c_i / n
            sw = _weighting(self._loss, z, sample_weight)["weight"]
            w = np.sum(Y, axis=1) * (sw / (np.sum(sw) if count is None else count))
        (n, d), k = X.shape, self.n_classes
        m = d + self.fit_intercept
        H4 = np.zeros((m, k, m, k))
        for a in range(k):
            H4[:, a, :, a] = _weighted_gram(X, w * P[:, a], self.fit_intercept)
        H = H4.reshape(m * k, m * k)
        root = np.sqrt(np.abs(w))[:, None] * P
        sign = np.sign(w)[:, None, None]
        rows = max(1, _ROW_BLOCK // (m * k))
        for start in range(0, n, rows):
            block = slice(start, start + rows)
            R = root[block]
            Q = np.empty((len(R), m, k))
            np.multiply(X[block, :, None], R[:, None, :], out=Q[:, :d])
            if self.fit_intercept:
                Q[:, d] = R
            Q2 = Q.reshape(len(R), m * k)
            if np.all(w[block] >= 0):
                H -= Q2.T @ Q2
            else:
                H -= Q2.T @ (Q * sign[block]).reshape(len(R), m * k)
        if np.any(w < 0):
            H = 0.5 * (H + H.T)
        return self._penalized(H, W, params, penalty)

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return the most probable class of each sample."""
        return _argmax(self.decision_function(params, X))

    def _settings(self) -> str:
        return f"n_classes={self.n_classes}, {super()._settings()}"
