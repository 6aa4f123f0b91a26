"""Describe the machine and library versions a benchmark ran with."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _threadpools() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    return [
        f"{p.get('user_api')}: {p.get('internal_api')} {p.get('version')} "
        f"({p.get('num_threads')} threads, {p.get('threading_layer', '?')}, "
        f"{p.get('architecture', '?')}; {os.path.basename(p.get('filepath', ''))})"
        for p in threadpool_info()
    ]


def environment() -> dict[str, object]:
    """Return Python, platform, CPU count, library versions and native thread pools."""
    import numpy as np

    versions = {
        name: _version(name)
        for name in ("numpy", "scipy", "sympy", "jax", "jaxlib", "torch", "autograd", "matplotlib")
    }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "versions": {k: v for k, v in versions.items() if v},
        "threadpools": _threadpools(),
    }
