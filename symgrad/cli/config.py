"""Resolve what `symgrad generate` works on: the command line, else ``[tool.symgrad]`` in the
nearest pyproject.toml (found walking up from the working directory, as black and ruff do),
else the built-in library, but only inside a symgrad checkout; never a folder in site-packages.

    [tool.symgrad]
    targets = ["specs/my_losses.py", "mypkg.losses"]   # files relative to pyproject.toml
    output = "kernels"                                  # default: generated (beside it)
    backends = ["numpy", "array-api"]                   # default: numpy
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symgrad.errors import OutputError, TargetError

#: [tool.symgrad] key -> the type of its value, in words for errors
KEYS = {"targets": "a list of spec files or modules", "output": "a folder", "backends": "a list"}


@dataclass(frozen=True)
class Arguments:
    """What `symgrad generate` renders: targets (none: the built-in library), the output folder
    (None: the default) and the lowerings (None: the default per target)."""

    targets: list[str]
    output: str | None
    backends: list[str] | None


def find_pyproject(start: Path) -> Path | None:
    """Return the nearest pyproject.toml in ``start`` or a folder above it, or None."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: cannot be read as TOML ({exc})") from None


def _strings(path: Path, key: str, value: Any, choices: tuple[str, ...] = ()) -> list[str]:
    """Return ``value`` as a list of non-empty strings (from ``choices`` when given)."""
    ok = isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
    if ok and choices:
        ok = all(v in choices for v in value)
    if not ok:
        allowed = f" from {', '.join(choices)}" if choices else ""
        raise TargetError(
            f"{path}: [tool.symgrad] {key} must be a list of names{allowed}, got {value!r}"
        )
    return list(value)


def read_config(path: Path, backends: tuple[str, ...]) -> Arguments | None:
    """Return the ``[tool.symgrad]`` table of ``path`` (file targets and the output folder made
    relative to its folder), or None when it has no such table."""
    table = _read(path).get("tool", {}).get("symgrad")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise TargetError(f"{path}: [tool.symgrad] must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise TargetError(
            f"{path}: [tool.symgrad] has no key {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(KEYS)}"
        )
    root = path.parent
    targets = _strings(path, "targets", table.get("targets", []))
    # a file target is named relative to pyproject.toml; a module is imported by its name
    targets = [str(root / t) if t.endswith(".py") or "/" in t else t for t in targets]
    output = table.get("output")
    if output is not None and not (isinstance(output, str) and output.strip()):
        raise TargetError(f"{path}: [tool.symgrad] output must be a folder name, got {output!r}")
    chosen = table.get("backends")
    return Arguments(
        targets,
        str(root / (output or "generated")),
        None if chosen is None else _strings(path, "backends", chosen, backends),
    )


def is_symgrad_checkout(path: Path) -> bool:
    """Tell whether pyproject.toml ``path`` is a symgrad checkout's own: it names project
    ``symgrad`` and has a generated/ folder beside it."""
    project = _read(path).get("project", {})
    return (
        isinstance(project, dict)
        and project.get("name") == "symgrad"
        and (path.parent / "generated").is_dir()
    )


def site_folders() -> list[Path]:
    """Return the folders installed packages live in (never an output folder)."""
    paths = sysconfig.get_paths()
    folders = {paths["purelib"], paths["platlib"], *getattr(site, "getsitepackages", list)()}
    folders.add(site.getusersitepackages())
    return [Path(f).resolve() for f in sorted(folders)]


def check_not_installed(output: Path) -> None:
    """Raise OutputError when ``output`` lies inside site-packages (or another install
    folder): a generated file there would be lost or clash with the next install."""
    resolved = output.resolve()
    for folder in site_folders():
        if resolved == folder or folder in resolved.parents:
            raise OutputError(
                f"{output}: is inside the installed packages ({folder}); generate into your "
                "project instead (-o DIR, or output = ... in [tool.symgrad])"
            )


def resolve(
    targets: list[str],
    output: str | None,
    backends: list[str] | None,
    *,
    writing: bool,
    choices: tuple[str, ...],
    cwd: Path | None = None,
) -> Arguments:
    """Return what `symgrad generate` works on. The command line wins; ``[tool.symgrad]`` of
    the nearest pyproject.toml fills what it leaves out. With no target either way, the
    built-in library is regenerated into a symgrad checkout's generated/; elsewhere only
    ``--check``/``--diff`` (``writing`` False) may compare it with the installed copies."""
    start = Path(cwd or os.getcwd()).resolve()
    pyproject = find_pyproject(start)
    config = read_config(pyproject, choices) if pyproject else None
    if config is not None:
        targets = targets or config.targets
        output = output if output is not None else config.output
        backends = backends or config.backends
    if not targets:
        if pyproject is not None and is_symgrad_checkout(pyproject):
            if writing:
                _check_running(pyproject.parent)
            output = output if output is not None else str(pyproject.parent / "generated")
        elif writing:
            where = f"[tool.symgrad] in {pyproject}" if pyproject else "no pyproject.toml"
            raise TargetError(
                f"no TARGET given and no targets configured ({where}); name a spec file or "
                "module (symgrad generate my_losses.py) or set targets = [...] under "
                "[tool.symgrad] in pyproject.toml; the built-in library is regenerated only in "
                "a symgrad checkout"
            )
    if writing:
        from symgrad.cli.generate import default_output_dir

        check_not_installed(Path(output) if output else default_output_dir(bool(targets)))
    return Arguments(list(targets), output, backends)


def _check_running(root: Path) -> None:
    """Raise TargetError unless the symgrad being run is the one in checkout ``root`` (the
    built-in library comes from the running package, and would be written into ``root``)."""
    running = Path(sys.modules["symgrad"].__file__).resolve().parent
    if running != (root / "symgrad").resolve():
        raise TargetError(
            f"{root} is a symgrad checkout, but the symgrad running is {running}; run that "
            "checkout's own (pip install -e . there, or python -m symgrad from it)"
        )
