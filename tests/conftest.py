"""Shared fixtures: the registry of built-in kernels and their input domains."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R

# Property tests draw the same examples on every run, so main stays green or red for a
# reason; SYMGRAD_HYPOTHESIS_PROFILE=random explores new examples (the fuzz workflow).
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("random", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("SYMGRAD_HYPOTHESIS_PROFILE", "ci"))

# Registries swept by the tests come from the generated KERNELS tables: a new kernel is
# exercised by every sweeping test the moment it is generated.
ACTIVATIONS = sorted(n for n, k in A.KERNELS.items() if not k["class_axis"])
LOSSES = sorted(L.KERNELS)
REGULARIZERS = sorted(R.KERNELS)
CLASS_AXIS_LOSSES = sorted(n for n, k in L.KERNELS.items() if k["class_axis"])
AWKWARD = np.array([0.0, 1e-8, -1e-8, 30.0, -30.0, 700.0, -700.0])


def loss_inputs(name: str, rng: np.random.Generator, awkward: bool = False):
    """Return (yhat, y) inside the loss's domain; with awkward=True, include edge values."""
    n = 24
    if name in CLASS_AXIS_LOSSES:
        c = 5
        y = rng.dirichlet(np.ones(c), size=n)
        y[::3] = np.eye(c)[rng.integers(0, c, size=len(y[::3]))]  # one-hot rows: labels 0 and 1
        if name == "softmax_cross_entropy":
            z = rng.normal(size=(n, c)) * 3
            if awkward:
                z[: len(AWKWARD)] = AWKWARD[:, None] * np.linspace(-1, 1, c)
            return z, y
        p = rng.dirichlet(np.ones(c), size=n)
        if awkward:
            p[0] = [1 - 4e-8, 1e-8, 1e-8, 1e-8, 1e-8]
        return (p, y) if name == "categorical_cross_entropy" else (np.log(p), y)
    if name == "binary_cross_entropy":
        p = rng.uniform(0.02, 0.98, size=n)
        if awkward:
            p[:4] = [1e-8, 1 - 1e-8, 0.5, 1e-4]
        y = rng.uniform(0, 1, size=n)
        y[::2] = rng.integers(0, 2, size=len(y[::2]))
        return p, y
    if name in ("hinge", "squared_hinge"):
        yhat = rng.normal(size=n) * 2
        if awkward:
            yhat[: len(AWKWARD)] = AWKWARD
        return yhat, rng.choice([-1.0, 1.0], size=n)
    yhat = rng.normal(size=n) * 3
    if awkward:
        yhat[: len(AWKWARD)] = AWKWARD
    if name in ("binary_cross_entropy_with_logits", "sigmoid_focal"):
        y = rng.uniform(0, 1, size=n)
        y[::2] = rng.integers(0, 2, size=len(y[::2]))
        return yhat, y
    if name == "poisson_nll":
        return np.clip(yhat, -30, 30), rng.poisson(3.0, size=n).astype(float)
    return yhat, rng.normal(size=n) * 3


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


def pytest_collection_modifyitems(config, items):
    """Skip the slow fuzzing mode unless asked for with ``-m fuzz``."""
    if "fuzz" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow fuzzing mode: run with pytest -m fuzz")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)


#: logits from -1000 to 1000, a finer grid on [-90, 90] and the awkward points (exact in float32)
WIDE = np.concatenate([np.linspace(-1000, 1000, 2001), np.linspace(-90, 90, 722), AWKWARD])


def kernel_of(module, name: str) -> str:
    """Return the kernel that emits function ``name`` of module A, L or R (its KERNELS table)."""
    return next(k for k, meta in module.KERNELS.items() if name in meta["functions"])


def emitted_args(module, name, rng):
    """Return float64 inputs for emitted function ``name`` of module A, L or R (a registry sweep)."""
    if module is A:
        x = WIDE.reshape(-1, 3) if name.startswith("softmax") else WIDE
        return (x, rng.normal(size=x.shape)) if name.endswith("_vjp") else (x,)
    if module is R:
        return (WIDE.reshape(-1, 2),)
    base = kernel_of(module, name)
    yhat, y = loss_inputs(base, rng, awkward=True)
    if base == "binary_cross_entropy":  # probabilities that stay inside (0, 1) in float32
        yhat = np.clip(yhat, 1e-7, 1 - 2.0**-24)
    if base in CLASS_AXIS_LOSSES:
        y = y.astype(np.float32).astype(np.float64)
        y /= y.sum(axis=-1, keepdims=True)  # rows of the float32 target still sum to 1
    return (yhat, y, rng.normal(size=yhat.shape)) if name.endswith("_hvp") else (yhat, y)
