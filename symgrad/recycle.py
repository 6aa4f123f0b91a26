"""Result arrays that a repeated call writes again once nothing else holds them.

A boosting objective is called once per round on arrays of one shape, and XGBoost and
LightGBM copy its (grad, hess) before the next round. New result arrays of a million rows
cost, in page faults on fresh memory, about a third of the kernel's own time (measured here:
two 8 MB arrays, 3.6 ms of a 12 ms call at one thread), and a third again when two threads
fault at once. Writing the previous call's results again is only safe when no one else can see
them, so the test is CPython's reference count of the arrays that own the memory: this
holder's own references and nothing more. A caller who kept a result, or any view of one
(a view holds the owner), gets new arrays, as does every call on an interpreter without
reference counts (PyPy) or without the GIL (a count there can race).
"""

from __future__ import annotations

import sys
import threading

import numpy as np


def _counted() -> bool:
    """Tell whether this interpreter's reference counts say who holds an array."""
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return sys.implementation.name == "cpython" and hasattr(sys, "getrefcount") and gil


def _owner(a: np.ndarray) -> np.ndarray:
    """Return the array that owns ``a``'s memory (numpy collapses chains of views to it)."""
    return a if a.base is None else a.base


def _counts(kept: tuple[np.ndarray, ...]) -> list[int]:
    """Return the reference count of each array in ``kept``, as this interpreter reports it."""
    return [sys.getrefcount(a) for a in kept]


#: the count an array held by nothing but a tuple reports through ``_counts``, measured on
#: this interpreter rather than assumed (3 on CPython 3.11: the tuple, the comprehension's
#: variable, getrefcount's argument; an interpreter that skips some of those increments
#: reports less, and a fixed 3 would then miss a caller's reference)
_HELD_HERE = _counts((np.empty(0),))[0]


def _alone(kept: tuple[np.ndarray, ...]) -> bool:
    """Tell whether nothing but ``kept`` (and this check) refers to any of its arrays."""
    return all(count <= _HELD_HERE for count in _counts(kept))


class Recycler:
    """Hand out the arrays a caller returned last time, flat, when no one holds them any more.

    ``keep(*results)`` after a call records the arrays that own the results' memory;
    ``take(count, size, dtype)`` before the next call returns them as flat arrays of ``size``
    elements of ``dtype`` to write into, or None (then the caller allocates): when they are
    not ``count`` distinct, writeable, C-contiguous owners of that size and dtype, or when
    anything else still refers to one of them. Taking empties the holder, so two threads never
    get the same arrays.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[np.ndarray, ...] = ()

    def keep(self, *results: np.ndarray) -> None:
        """Record the arrays that own ``results``' memory, for the next ``take``."""
        owners = tuple(_owner(r) for r in results)
        usable = len({id(o) for o in owners}) == len(owners) and all(
            type(o) is np.ndarray
            and o.base is None
            and o.flags.c_contiguous
            and o.flags.writeable
            and o.flags.owndata
            for o in owners
        )
        with self._lock:
            self._kept = owners if usable and _counted() else ()

    def take(self, count: int, size: int, dtype: np.dtype) -> tuple[np.ndarray, ...] | None:
        """Return the kept arrays as ``count`` flat arrays of ``size`` x ``dtype``, or None."""
        with self._lock:
            kept, self._kept = self._kept, ()
        if len(kept) != count:
            return None
        if any(a.size != size or a.dtype != dtype for a in kept) or not _alone(kept):
            return None
        return tuple(a.reshape(-1) for a in kept)

    def __getstate__(self) -> dict:
        return {}  # a copy shares no memory with its original

    def __setstate__(self, state: dict) -> None:
        self.__init__()
