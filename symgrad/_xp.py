"""Tell numpy arrays from other Array API arrays (torch, CuPy, JAX, array-api-strict) cheaply.

Models, optimizers and :func:`symgrad.fit` compute in numpy unless an input is an array of
another library; then they compute in that library's namespace (``array_api_compat``, an
optional extra imported only on that path), so numpy inputs never pay for the check beyond
one ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

#: Top-level modules whose array types array_api_compat wraps without ``__array_namespace__``.
_FOREIGN_ROOTS = frozenset({"torch", "cupy", "jax", "jaxlib"})
_PLAIN = (np.ndarray, np.generic, float, int, bool, complex, list, tuple, type(None))


def is_foreign(x: Any) -> bool:
    """Tell whether ``x`` is an array of a library other than numpy (torch, CuPy, JAX, ...)."""
    if type(x) is np.ndarray or isinstance(x, _PLAIN):
        return False
    return (
        hasattr(x, "__array_namespace__") or type(x).__module__.partition(".")[0] in _FOREIGN_ROOTS
    )


def first_foreign(items: Iterable[Any]) -> Any:
    """Return the first non-numpy array among ``items``, or None (numpy everywhere)."""
    for x in items:
        if is_foreign(x):
            return x
    return None


def namespace(x: Any) -> Any:
    """Return the Array API namespace of ``x`` (needs ``pip install 'symgrad[array-api]'``)."""
    try:
        import array_api_compat
    except ImportError:  # pragma: no cover - the extra is part of the test environment
        raise ImportError(
            f"{type(x).__module__}.{type(x).__name__} arrays need array_api_compat: "
            "pip install 'symgrad[array-api]'"
        ) from None
    return array_api_compat.array_namespace(x)


def device(x: Any) -> Any:
    """Return the device ``x`` lives on (Array API ``device``)."""
    import array_api_compat

    return array_api_compat.device(x)


def is_float(xp: Any, x: Any) -> bool:
    """Tell whether ``x`` has a real floating dtype."""
    return xp.isdtype(x.dtype, "real floating")


def as_float(x: Any) -> Any:
    """Return a foreign array unchanged if it is floating, else cast to float64 (as numpy)."""
    xp = namespace(x)
    return x if is_float(xp, x) else xp.astype(x, xp.float64)


def like(x: Any, ref: Any, dtype: Any = None) -> Any:
    """Return ``x`` as an array of ``ref``'s namespace and device (numpy input is copied over)."""
    xp = namespace(ref)
    if not is_foreign(x):
        x = xp.asarray(np.asarray(x), device=device(ref))
    elif namespace(x) is not xp:
        raise TypeError(
            f"arrays of two libraries mixed: {type(x).__module__} and {type(ref).__module__}"
        )
    elif device(x) != device(ref):
        x = xp.asarray(x, device=device(ref))
    return x if dtype is None or x.dtype == dtype else xp.astype(x, dtype)


def module_of(x: Any) -> Any:
    """Return numpy for numpy arrays and Python scalars, else the array's namespace."""
    return np if isinstance(x, _PLAIN) else namespace(x)


def all_finite(x: Any) -> bool:
    """Tell whether every element of ``x`` (any library) is finite."""
    if isinstance(x, _PLAIN):
        return bool(np.all(np.isfinite(x)))
    xp = namespace(x)
    return bool(xp.all(xp.isfinite(x)))


def rows(x: Any) -> int:
    """Return the length of axis 0 (``len`` for numpy; ``shape[0]`` for Array API arrays)."""
    return int(x.shape[0]) if is_foreign(x) else len(x)


def take_rows(x: Any, idx: Any) -> Any:
    """Return rows ``idx`` (a slice or integer index array) of a foreign array."""
    if isinstance(idx, slice):
        return x[idx, ...]
    xp = namespace(x)
    return xp.take(x, xp.asarray(idx, device=device(x)), axis=0)
