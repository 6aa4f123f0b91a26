"""The one door from the run-time into the compiler, and how compiled kernels travel as source.

:func:`compile` is the only call from the numpy run-time into the compiler: sympy and jinja2
load inside it, on first use. The module it returns is registered as
``symgrad.compiled.k_<sha256 of its source>``, so compiling the same specs again returns the
same module. Its functions pickle by reference to that name, and the name itself pickles as
the module's source text with its hash (pickle protocol 4 or later; pickle's memo writes the
text once per pickle). A process that has never seen the module (a spawned worker, a
``dask worker``, a ``GridSearchCV`` child) checks the text against the hash and runs it: numpy
only, no sympy, no compiler, no setup call.

Importing a ``symgrad.compiled.*`` name never decodes, unpickles or runs anything: a name this
process did not register, or receive as source inside a pickle, is one ImportError.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import re
import sys
import threading
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any

from symgrad.resources import module_from_source

if TYPE_CHECKING:
    from symgrad.compiler.spec import Spec

__all__ = ["compile", "load"]

#: submodules of this (file-less) package are the compiled modules; the finder below answers
__path__: list[str] = []
_PREFIX = f"{__name__}.k_"
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: content hash -> the module its source defines, for every module this process holds
_MODULES: dict[str, ModuleType] = {}
_LOCK = threading.RLock()


def compile(  # noqa: A001 - public API name
    *specs: Spec | str,
    safe: bool = True,
    target: str = "numpy",
    output: Spec | str | None = None,
) -> ModuleType:
    """Return a module built in memory from exactly the source ``symgrad generate`` would write.

    ``target``: "numpy", "array-api" or "cupy". ``safe=False`` skips the safe-mode check of
    every emitted function against the plain formula. ``output``: an activation (a built-in
    name or a spec) fused under the one loss given (a built-in name or a spec), compiled as
    ``loss(output(z))`` and differentiated as a whole (what models do for ``output=``).

    The module is registered as ``symgrad.compiled.k_<hash of its source>``; its functions
    pickle with that source, so they run in a fresh process or on a Dask worker without sympy.
    """
    from symgrad.compiler.codegen import compile_source  # the one crossing into the compiler

    return load(compile_source(*specs, safe=safe, target=target, output=output))


def load(source: str, digest: str | None = None) -> ModuleType:
    """Return the module that emitted ``source`` defines, registered under its content hash.

    With ``digest`` (the sha256 hex the source was sent with), source that does not match is
    refused before anything runs. Loading the same source again returns the same module.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be the emitted module's text, got {type(source).__name__}")
    key = hashlib.sha256(source.encode("utf-8")).hexdigest()
    if digest is not None and digest != key:
        shown = repr(digest)[:20]
        raise ValueError(f"digest {shown} does not match the compiled kernel source's sha256")
    with _LOCK:
        module = _MODULES.get(key)
        if module is None:
            name = _Name(_PREFIX + key)
            name.source = source
            module = _MODULES[key] = module_from_source(source, name)
        sys.modules.setdefault(_PREFIX + key, module)
    return module


class _Name(str):
    """A compiled module's name, which pickles as its module's source checked by its hash.

    pickle writes a function as its module's name and its own; from protocol 4 the module name
    is saved as an object, so this one is saved as the call that rebuilds the module from its
    text and returns the plain name to import.
    """

    source: str

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return _received, (self[len(_PREFIX) :], self.source)


def _received(digest: str, source: str) -> str:
    """Rebuild a compiled module from the source a pickle carried; return its name."""
    load(source, digest)
    return f"{_PREFIX}{digest}"


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answer imports of ``symgrad.compiled.*``: a module this process holds, else ImportError."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not fullname.startswith(f"{__name__}."):
            return None
        digest = fullname[len(_PREFIX) :] if fullname.startswith(_PREFIX) else ""
        if _DIGEST.fullmatch(digest) and digest in _MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        shown = fullname if len(fullname) <= 90 else f"{fullname[:90]}..."
        raise ImportError(
            f"{shown}: not a compiled kernel of this process; compiled modules arrive as source "
            "inside a pickle, checked against their hash, never rebuilt from a name",
            name=fullname,
        )

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return _MODULES[spec.name[len(_PREFIX) :]]

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: :meth:`create_module` returned a module that is ready."""


if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
    sys.meta_path.append(_Finder())
