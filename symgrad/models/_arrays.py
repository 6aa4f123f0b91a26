"""Array helpers of the numpy fast path: dtypes, shapes, one-hot targets, penalties."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symgrad.losses import one_hot
from symgrad.models._kernels import _Kernel


def _init_dtype(dtype: Any) -> np.dtype:
    """Return ``dtype`` as a numpy float dtype (float32 or float64), or raise ValueError."""
    out = np.dtype(dtype)
    if out not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {out}")
    return out


def _params_dtype(params: Any) -> np.dtype:
    """Return float32 when every parameter array is float32 (the model then computes in
    float32, see ``init(dtype=)``), else float64."""
    values = params.values() if isinstance(params, Mapping) else ()
    dtypes = {getattr(v, "dtype", None) for v in values}
    return np.dtype(np.float32) if dtypes == {np.dtype(np.float32)} else np.dtype(np.float64)


def _matrix(X: Any, n_features: int, dtype: Any = float) -> np.ndarray:
    """Return X as a 2-D float array with ``n_features`` columns, or raise ValueError."""
    X = np.asarray(X, dtype=dtype)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the parameters expect {n_features}")
    return X


def _param(params: Mapping[str, Any], key: str, shape: tuple[int, ...] | None = None) -> Any:
    """Return ``params[key]``, checking it exists (and its shape, when given)."""
    try:
        value = params[key]
    except (KeyError, TypeError):
        raise ValueError(f"params has no {key!r}; got keys {sorted(params)}") from None
    if shape is not None and np.shape(value) != shape:
        raise ValueError(f"params[{key!r}] has shape {np.shape(value)}, expected {shape}")
    return value


def _are_rows(shape: tuple[int, ...], n: int, n_classes: int) -> bool:
    """Return True when class targets of ``shape`` are (n, n_classes) rows, False when they
    are ``n`` labels; raise ValueError for any other shape (any array namespace's ``y``)."""
    shape = tuple(shape)
    if len(shape) == 2:
        if shape != (n, n_classes):
            raise ValueError(f"target rows y have shape {shape}, expected {(n, n_classes)}")
        return True
    if shape != (n,):
        raise ValueError(
            f"y must be {n} integer labels or ({n}, {n_classes}) target rows, got shape {shape}"
        )
    return False


def _one_hot(y: Any, n: int, n_classes: int, dtype: Any = float) -> np.ndarray:
    """Return ``n`` integer labels one-hot encoded (by :func:`symgrad.losses.one_hot`, which
    checks them), or (n, n_classes) target rows as given."""
    y = np.asarray(y)
    if _are_rows(y.shape, n, n_classes):
        return y.astype(dtype, copy=False)
    return one_hot(y, n_classes, dtype=dtype, name="y")


def _check_shape(y: Any, shape: tuple[int, ...], dtype: Any = float) -> np.ndarray:
    """Return y as floats, raising ValueError unless it has ``shape`` (no silent broadcasting)."""
    y = np.asarray(y, dtype=dtype)
    if y.shape != shape:
        raise ValueError(f"y has shape {y.shape}, expected {shape}")
    return y


def _penalize(reg: _Kernel | None, weights: Sequence[np.ndarray], grads: Sequence[np.ndarray]):
    """Return the regularizer summed over ``weights``, adding its gradient into ``grads``."""
    if reg is None:
        return 0.0
    total = 0.0
    for W, g in zip(weights, grads, strict=True):
        total += float(reg.fn(W))
        g += reg.grad(W)
    return total
