"""Make kernels built by :func:`symgrad.compile` travel by pickle (multiprocessing, Dask).

A compiled module is registered as ``symgrad.compiled.k<n>_<token>``, where ``n`` numbers the
modules compiled in this process and the token is their specs, pickled and compressed. Its functions pickle by reference under that name, so a process that
has never seen the module (a freshly spawned worker) rebuilds it from the token on import,
with no setup call. Importing this module is cheap; sympy loads only when a token is rebuilt.
"""

from __future__ import annotations

import base64
import importlib.abc
import importlib.util
import pickle
import sys
import zlib
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import FunctionType, ModuleType
from typing import Any

__all__ = ["register"]

#: submodules of this (file-less) package are compiled modules, found by the finder below
__path__: list[str] = []
_PREFIX = f"{__name__}.k"
_count = 0


def _token(specs: Sequence[Any]) -> str:
    raw = zlib.compress(pickle.dumps(tuple(specs), protocol=4), 9)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _specs(token: str) -> tuple[Any, ...]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return pickle.loads(zlib.decompress(raw))  # noqa: S301 - a token symgrad wrote itself


def register(module: ModuleType, specs: Sequence[Any]) -> str | None:
    """Register ``module`` (compiled from ``specs``) under an importable name; return the name.

    Its functions then pickle by reference to that name. Returns None (the module stays
    local to this process) when a spec cannot be pickled.
    """
    global _count
    try:
        token = _token(specs)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    _count += 1
    name = f"{_PREFIX}{_count}_{token}"  # one name per module: compiling twice gives two
    for value in vars(module).values():
        if isinstance(value, FunctionType) and value.__module__ == module.__name__:
            value.__module__ = name
    sys.modules[name] = module
    return name


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Rebuild ``symgrad.compiled.k<n>_<token>`` from its token when a pickle asks for it."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        from symgrad.compiler.codegen import compile as build

        try:
            specs = _specs(spec.name[len(_PREFIX) :].partition("_")[2])
        except Exception as exc:  # a damaged token: say so in one line
            raise ImportError(f"{spec.name[:60]}...: not a symgrad compiled-kernel token") from exc
        return build(*specs)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: :meth:`create_module` returned a module that is ready."""


if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
    sys.meta_path.append(_Finder())
