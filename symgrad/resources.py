"""Find templates/ and generated/ both in a checkout and inside an installed wheel, and turn
generated source into a module (shared by the compiler's safe-mode trials and the run-time)."""

from __future__ import annotations

import builtins
import importlib.resources
import importlib.util
import linecache
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


def module_from_source(text: str, name: str) -> ModuleType:
    """Run generated source ``text`` as a new module named ``name``; tracebacks show its lines.

    The module keeps its text as ``__source__``. Only symgrad's own output is run here: text
    the compiler just emitted, or text checked against its content hash (``symgrad.compiled``).
    """
    filename = f"<symgrad:{name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    module = ModuleType(name)
    module.__file__ = filename
    module.__source__ = text
    code = builtins.compile(text, filename, "exec")
    exec(code, module.__dict__)  # noqa: S102 - symgrad's own output (see the docstring)
    return module
