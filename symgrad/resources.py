"""Find templates/ and generated/ both in a checkout and inside an installed wheel."""

from __future__ import annotations

import importlib.resources
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_CHECKOUT = Path(__file__).resolve().parent.parent


def _find(name: str) -> Path:
    packaged = importlib.resources.files("symgrad") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return _CHECKOUT / name


def templates_dir() -> Path:
    """Return the folder holding the jinja2 templates."""
    return _find("templates")


def generated_dir() -> Path:
    """Return the folder holding the built-in generated kernels."""
    return _find("generated")


def load_generated(stem: str, public: str | None = None) -> ModuleType:
    """Import ``generated/<stem>.py`` as ``symgrad.generated.<stem>`` (never a top-level module).

    With ``public`` (the run-time module re-exporting it, e.g. ``symgrad.losses``), the
    exported functions name that module, so they pickle by a name every process can import,
    from a checkout or a wheel (``symgrad.generated`` is importable from neither).
    """
    qualname = f"symgrad.generated.{stem}"
    if qualname in sys.modules:
        return sys.modules[qualname]
    path = generated_dir() / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(qualname, path)
    if spec is None or spec.loader is None or not path.exists():
        raise ImportError(f"generated kernels {path} are missing; run `symgrad generate`")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualname] = module
    spec.loader.exec_module(module)
    for name in getattr(module, "__all__", ()) if public else ():
        getattr(module, name).__module__ = public
    return module
