"""The optional extras in pyproject.toml: lean test extra, honest pins, a marker per platform."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
#: extras that serve development, not a user's import
TOOLS = {"test", "bench", "all"}


def requirements(extra: str, platform: str = "linux") -> dict[str, Requirement]:
    """Return the requirements of ``extra`` that apply on ``platform``, by project name."""
    env = {**default_environment(), "sys_platform": platform, "extra": extra}
    reqs = [Requirement(r) for r in EXTRAS[extra]]
    return {r.name: r for r in reqs if r.marker is None or r.marker.evaluate(env)}


def test_dask_glm_and_its_numba_are_benchmark_only():
    assert "dask-glm" not in requirements("test")
    assert "dask-glm" in requirements("bench")


def test_ruff_is_pinned_exactly_to_the_version_ci_formats_with():
    (spec,) = requirements("test")["ruff"].specifier
    assert spec.operator == "==", "CI checks ruff's format, which changes between releases"
    assert spec.version == importlib.metadata.version("ruff")


@pytest.mark.parametrize("extra", ["test", "boosting"])
@pytest.mark.parametrize(
    "platform, want, not_want",
    [
        ("linux", "xgboost-cpu", "xgboost"),
        ("win32", "xgboost-cpu", "xgboost"),
        ("darwin", "xgboost", "xgboost-cpu"),
    ],
)
def test_xgboost_cpu_only_where_it_has_wheels(extra, platform, want, not_want):
    found = requirements(extra, platform)
    assert want in found and not_want not in found


def test_no_exact_pins_outside_ruff():
    for extra in EXTRAS:
        for name, req in requirements(extra).items():
            if name != "ruff":
                assert all(s.operator != "==" for s in req.specifier), (extra, str(req))


def test_all_names_every_user_extra():
    (req,) = requirements("all").values()
    assert req.name == "symgrad"
    assert req.extras == set(EXTRAS) - TOOLS
    assert {"boosting", "jax", "torch"} <= req.extras


def test_the_test_extra_stays_lean():
    """torch (over 2 GB with its CUDA libraries) stays out: symgrad.torch's tests skip without
    it, and torch.optim parity is checked against recorded trajectories. matplotlib is in: the
    loss curve ``symgrad train`` draws (and never switching a user's backend) is tested."""
    test = requirements("test")
    assert not {"torch", "dask-glm", "numba", "llvmlite"} & set(test)
    assert "matplotlib" in test
    assert "jax" in test  # the CPU jaxlib is what tests symgrad.jax
