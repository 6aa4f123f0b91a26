"""A pickled spec that a process unpickles only when it needs the spec itself.

A model or estimator built on a user's spec holds that spec (for its repr, its parameters and
the Array API twin of its kernels), while its compiled kernels travel as emitted source
(:mod:`symgrad.compiled`). Unpickling a spec needs sympy, and a Dask worker or a
``GridSearchCV`` child that only evaluates the kernels should never import it. So a spec
pickles as its name, its role and its own pickle: a process that already has the compiler
loaded gets the spec back at once; any other gets a :class:`SpecRef`, which unpickles the
spec (importing sympy) on its first use beyond ``name`` and ``role``. The inner pickle is
part of the outer one, so it is trusted exactly as much.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

__all__ = ["SpecRef", "materialize"]

_SPEC_MODULE = "symgrad.compiler.spec"


class SpecRef:
    """Stand in for a pickled spec until it is used: ``name`` and ``role`` are read without
    unpickling it; anything else (its expression, equality, hashing) unpickles it first."""

    __slots__ = ("_payload", "_spec", "name", "role")

    def __init__(self, name: str, role: str, payload: bytes) -> None:
        self.name, self.role, self._payload, self._spec = name, role, payload, None

    def spec(self) -> Any:
        """Return the spec itself, unpickled (and sympy imported) on the first call."""
        if self._spec is None:
            self._spec = pickle.loads(self._payload)  # noqa: S301 - part of the outer pickle
        return self._spec

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in SpecRef.__slots__:
            raise AttributeError(attr)
        return getattr(self.spec(), attr)

    def __eq__(self, other: object) -> bool:
        return self.spec() == materialize(other)

    def __hash__(self) -> int:
        return hash(self.spec())

    def __repr__(self) -> str:
        if self._spec is not None:
            return repr(self._spec)
        return f"<symgrad {self.role} spec {self.name!r}, not yet unpickled>"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return lazy, (self.name, self.role, self._payload)


def lazy(name: str, role: str, payload: bytes) -> Any:
    """Return the spec a pickle carries: the spec itself where the compiler is already loaded
    (nothing is saved by waiting), else a :class:`SpecRef` that unpickles it on first use."""
    ref = SpecRef(name, role, payload)
    return ref.spec() if _SPEC_MODULE in sys.modules else ref


def materialize(obj: Any) -> Any:
    """Return ``obj``, or the spec a :class:`SpecRef` stands for."""
    return obj.spec() if isinstance(obj, SpecRef) else obj
