"""The Array API path: the same objectives on torch, CuPy, JAX ... arrays."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

import symgrad.activations as _activations
from symgrad import _xp
from symgrad.kernels import compiled_xp, xp_module
from symgrad.models._arrays import _are_rows
from symgrad.models._kernels import _Kernel
from symgrad.models._protocol import Params

# --------------------------------------------------------------------------- Array API path
# When X or a parameter is a torch, CuPy, JAX or other Array API array (not numpy), the
# objectives run these: the same arithmetic in that array's namespace with the
# generated/*_xp.py kernels (a user's spec compiled with target="array-api"), out of place.

#: (origin, kernel name, suffix, hyper-parameters) -> the Array API function, bound.
_XP_FNS: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _xp_fn(kernel: _Kernel, suffix: str = "") -> Callable[..., Any]:
    """Return the Array API twin of ``kernel``'s function ``name + suffix``, hyper bound."""
    key = (kernel.origin, kernel.name, suffix, tuple(sorted(kernel.hyper.items())))
    fn = _XP_FNS.get(key)
    if fn is None:
        origin = kernel.origin
        if origin[0] == "compose":
            module = compiled_xp(origin[1], output=origin[2])
        else:
            module = xp_module(origin)
        fn = _XP_FNS[key] = partial(getattr(module, kernel.name + suffix), **kernel.hyper)
    return fn


def _foreign(params: Any, X: Any) -> Any:
    """Return the first non-numpy array among ``X`` and the params (None: the numpy path)."""
    if _xp.is_foreign(X):
        return X
    return _xp.first_foreign(params.values()) if isinstance(params, Mapping) else None


class _XpPoint:
    """Hold the namespace, a reference array (device) and the dtype of an Array API call.

    The dtype follows ``_params_dtype``: float32 when every parameter is float32.
    """

    def __init__(self, ref: Any, params: Mapping[str, Any]) -> None:
        self.ref, self.xp = ref, _xp.namespace(ref)
        f32 = [v for v in params.values() if _is_float32(v)]
        self.dtype = self.xp.float32 if params and len(f32) == len(params) else self.xp.float64

    def array(self, a: Any) -> Any:
        """Return ``a`` in this namespace, on this device, in this dtype."""
        return _xp.like(a, self.ref, self.dtype)

    def matrix(self, X: Any, n_features: int) -> Any:
        """Return X as a 2-D array with ``n_features`` columns, or raise ValueError."""
        X = self.array(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
        if X.shape[1] != n_features:
            raise ValueError(f"X has {X.shape[1]} features but the parameters expect {n_features}")
        return X

    def shaped(self, y: Any, shape: tuple[int, ...]) -> Any:
        """Return y as floats, raising ValueError unless it has ``shape``."""
        y = self.array(y)
        if tuple(y.shape) != tuple(shape):
            raise ValueError(f"y has shape {tuple(y.shape)}, expected {tuple(shape)}")
        return y

    def one_hot(self, y: Any, n: int, n_classes: int) -> Any:
        """Return integer labels one-hot encoded, or (n, n_classes) target rows as given."""
        xp = self.xp
        y = _xp.like(y, self.ref)
        if _are_rows(y.shape, n, n_classes):
            return self.array(y)
        # the checks and words of symgrad.losses.one_hot, the numpy path's encoder
        if not xp.isdtype(y.dtype, "integral"):
            if not xp.isdtype(y.dtype, "real floating"):
                raise TypeError(f"y: class labels must be integers, got dtype {y.dtype}")
            if not bool(xp.all(xp.isfinite(y) & (y == xp.round(y)))):
                raise ValueError(
                    f"y: class labels must be whole numbers in [0, {n_classes}); pass one-hot "
                    "(or probability) rows for soft labels"
                )
            y = xp.astype(y, xp.int64)
        if n and bool(xp.any((y < 0) | (y >= n_classes))):
            raise ValueError(
                f"y: class labels must lie in [0, {n_classes}) for {n_classes} classes"
            )
        classes = xp.arange(n_classes, dtype=y.dtype, device=_xp.device(y))
        return xp.astype(xp.reshape(y, (n, 1)) == xp.reshape(classes, (1, n_classes)), self.dtype)

    def weighting(self, loss: _Kernel, z: Any, sample_weight: Any, count: Any) -> dict[str, Any]:
        """Return the loss kernels' ``weight=`` and ``count=`` keywords (see ``_weighting``)."""
        kw: dict[str, Any] = {}
        if count is not None:
            wide = not (loss.spec.class_axis or z.ndim == 1)
            kw["count"] = count * int(np.prod(tuple(z.shape[1:]))) if wide else count
        if sample_weight is None:
            return kw
        w = self.array(sample_weight)
        if tuple(w.shape) != tuple(z.shape[:1]):
            raise ValueError(
                f"sample_weight has shape {tuple(w.shape)}, expected ({z.shape[0]},), one per sample"
            )
        narrow = z.ndim == 1 or loss.spec.class_axis
        return kw | {"weight": w if narrow else self.xp.reshape(w, (-1, 1))}

    def penalize(self, reg: _Kernel | None, loss: Any, weights: Mapping[str, Any], grads: dict):
        """Return ``loss`` plus the regularizer on ``weights`` (by key), adding its gradient
        into ``grads`` under the same keys (out of place)."""
        if reg is None:
            return loss
        value, grad = _xp_fn(reg), _xp_fn(reg, "_grad")
        for key, W in weights.items():
            loss = loss + value(W)
            grads[key] = grads[key] + grad(W)
        return loss


def _activate(kernel: _Kernel | str, z: Any) -> Any:
    """Apply an activation (a resolved kernel, or a built-in name) to numpy or Array API ``z``."""
    if not _xp.is_foreign(z):
        return getattr(_activations, kernel)(z) if isinstance(kernel, str) else kernel.fn(z)
    if isinstance(kernel, str):
        return getattr(xp_module(("activation", None)), kernel)(z)
    return _xp_fn(kernel)(z)


def _argmax(z: Any) -> Any:
    """Return the index of each row's largest value (numpy or Array API)."""
    return np.argmax(z, axis=1) if not _xp.is_foreign(z) else _xp.namespace(z).argmax(z, axis=1)


def _as_labels(mask: Any) -> Any:
    """Return a boolean array as integer 0/1 labels (numpy ``int``, or the library's int64)."""
    if not _xp.is_foreign(mask):
        return mask.astype(int)
    xp = _xp.namespace(mask)
    return xp.astype(mask, xp.int64)


def _is_float32(v: Any) -> bool:
    dtype = getattr(v, "dtype", None)
    if _xp.is_foreign(v):
        return dtype == _xp.namespace(v).float32
    return dtype == np.float32


def _init_like(params: Params, like: Any) -> Params:
    """Return ``params`` as arrays of ``like``'s namespace and device (numpy: unchanged)."""
    if like is None or not _xp.is_foreign(like):
        return params
    return {key: _xp.like(value, like) for key, value in params.items()}


def _like_dtype(like: Any, dtype: Any) -> Any:
    """Return ``like``'s dtype when it is float32 or float64, else ``dtype``."""
    if like is None:
        return dtype
    if _xp.is_foreign(like):
        xp = _xp.namespace(like)
        found = np.float32 if like.dtype == xp.float32 else None
        found = np.float64 if like.dtype == xp.float64 else found
    else:
        found = np.asarray(like).dtype
    return found if found in (np.float32, np.float64) else dtype
