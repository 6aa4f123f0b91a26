"""Collect specs from the built-in library or from user files and modules (the CLI's targets)."""

from __future__ import annotations

import importlib
import importlib.util
import keyword
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from symgrad.compiler.spec import Spec
from symgrad.errors import SpecError, TargetError


@dataclass(frozen=True)
class Target:
    """One output module: its specs, where they came from, and the file stem to write."""

    stem: str
    source: str
    specs: tuple[Spec, ...]
    title: str
    path: Path | None = None  # the spec file, for file targets

    @property
    def builtin(self) -> bool:
        """Tell whether this target is part of symgrad's own library."""
        return self.source.startswith("symgrad.library.")


def builtin_targets() -> list[Target]:
    """Return the built-in library as three targets: activations, losses, regularizers."""
    from symgrad.library import MODULES

    return [
        Target(stem, f"symgrad.library.{stem}", tuple(specs), title)
        for stem, (specs, title) in MODULES.items()
    ]


def specs_in(module: ModuleType) -> tuple[Spec, ...]:
    """Return the specs a module defines at top level, in name order."""
    found = {id(v): v for v in vars(module).values() if isinstance(v, Spec)}
    return tuple(sorted(found.values(), key=lambda s: (s.name, s.role)))


def display_path(path: Path) -> str:
    """Return ``path`` relative to the working directory when it lies inside it, in posix form
    (its repr if it holds a newline or other unprintable character, so messages stay one line)."""
    try:
        # lexical, not resolved: a symbolic link is named as itself, never as its target
        text = Path(os.path.abspath(path)).relative_to(os.getcwd()).as_posix()
    except (ValueError, OSError):
        text = Path(os.path.normpath(path)).as_posix()
    return text if text.isprintable() else repr(text)


def is_file_target(name: str) -> bool:
    """Tell whether ``name`` names a file (ends in .py, contains a slash, or exists)."""
    return name.endswith(".py") or "/" in name or os.sep in name or Path(name).exists()


def _exec_file(name: str, path: Path) -> ModuleType:
    if path.is_dir():
        raise TargetError(f"{name}: is a directory, expected a Python file")
    if not path.is_file():
        raise TargetError(f"{name}: no such file")
    check_stem(name, path.stem)  # before running the file: it could not be written anyway
    mod_name = f"_symgrad_target_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"{name}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    # appended, not prepended: a spec file's neighbours (numpy.py, inspect.py …) never shadow
    # the modules symgrad and numpy import
    sys.path.append(str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _import_module(name: str) -> ModuleType:
    # Like `python -m`, look in the working directory first; the console script does not.
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(missing + "."):
            raise TargetError(f"{name}: no such file or importable module") from None
        raise
    finally:
        if added:
            sys.path.remove(cwd)


#: Module names a generated file may not take: keywords cannot be imported, and a module
#: named like one of the standard library's or numpy's would shadow it next to the file.
_TAKEN = frozenset(sys.stdlib_module_names) | {"numpy", "scipy", "sympy", "jinja2", "symgrad"}


def check_stem(name: str, stem: str) -> None:
    """Raise TargetError unless ``stem`` can name the generated module."""
    shown = display_path(Path(name))
    if not stem.isidentifier() or keyword.iskeyword(stem) or keyword.issoftkeyword(stem):
        raise TargetError(f"{shown}: {stem!r} cannot be a module name; rename the file")
    if stem in _TAKEN:
        raise TargetError(
            f"{shown}: the generated module {stem!r} would shadow the module of that name; "
            "rename the file"
        )


def load_target(name: str) -> Target:
    """Import a Python file or an importable module and return its specs as a target."""
    if not name.strip():
        raise TargetError(f"{name!r}: an empty target; name a Python file or module")
    path = Path(name)
    try:
        if is_file_target(name):
            module = _exec_file(name, path)
            stem, source = path.stem, display_path(path)
        else:
            module = _import_module(name)
            stem, source = name.rsplit(".", 1)[-1], name
    except TargetError:
        raise
    except SpecError as exc:  # a decorator rejected a spec while the file was imported
        raise TargetError(f"{name}: spec {exc.spec!r}: {exc.problem}") from None
    except SyntaxError as exc:
        raise TargetError(f"{name}: syntax error on line {exc.lineno}: {exc.msg}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's module raised (or exited) while importing
        what = type(exc).__name__
        detail = f": {exc}" if str(exc) else ""
        raise TargetError(f"{name}: importing it raised {what}{detail}") from None
    specs = specs_in(module)
    if not specs:
        raise TargetError(f"{name}: defines no symgrad specs")
    check_stem(name, stem)
    shown = path.name if is_file_target(name) else source  # never depends on the working dir
    title = f"Kernels generated by symgrad from {shown}."
    return Target(stem, source, specs, title, path.resolve() if is_file_target(name) else None)


def load_targets(names: list[str]) -> list[Target]:
    """Load every named target (the built-in library when none), dropping repeats."""
    if not names:
        return builtin_targets()
    targets: list[Target] = []
    seen: set[str] = set()
    for name in names:
        target = load_target(name)
        if target.source not in seen:
            seen.add(target.source)
            targets.append(target)
    return targets
