"""Emitted code stays finite and warning-free for logits up to |z| = 1000 where the value is finite."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, CLASS_AXIS_LOSSES, LOSSES, REGULARIZERS, loss_inputs

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R

Z = np.concatenate([np.linspace(-1000, 1000, 2001), [0.0, 1e-8, -1e-8, 1e-300, -1e-300]])
# exp(z) really overflows for these at large z: their value is infinite there, so they are
# checked on the range where the true value is finite.
FINITE_RANGE = {"poisson_nll": 700.0}
STRICT = dict(over="raise", divide="raise", invalid="raise")


def _all_outputs(module, name, *args):
    fns = [n for n in module.__all__ if n == name or n.startswith(name + "_")]
    fns = [
        n
        for n in fns
        if n[len(name) :] in ("", "_grad", "_hess", "_value_and_grad", "_vjp", "_hvp")
    ]
    for fn in fns:
        extra = (np.ones_like(args[0]),) if fn.endswith(("_vjp", "_hvp")) else ()
        out = getattr(module, fn)(*args, *extra)
        for part in out if isinstance(out, tuple) else (out,):
            yield fn, np.asarray(part)


@pytest.mark.parametrize("name", ACTIVATIONS + ["softmax"])
def test_activations_finite(name):
    x = Z.reshape(-1, 1) * np.ones((1, 3)) if name == "softmax" else Z
    with np.errstate(**STRICT):
        for fn, out in _all_outputs(A, name, x):
            assert np.all(np.isfinite(out)), fn


@pytest.mark.parametrize("name", sorted(set(LOSSES) - set(CLASS_AXIS_LOSSES)))
@pytest.mark.parametrize("label", [0.0, 1.0, 0.3, -1.0])
def test_elementwise_losses_finite(name, label):
    if name == "binary_cross_entropy":
        z = np.linspace(1e-12, 1 - 1e-12, 1001)
        if label == -1.0:
            return
    else:
        limit = FINITE_RANGE.get(name, 1000.0)
        z = Z[np.abs(Z) <= limit]
    y = np.full_like(z, label)
    with np.errstate(**STRICT):
        for fn, out in _all_outputs(L, name, z, y):
            assert np.all(np.isfinite(out)), fn


@pytest.mark.parametrize("name", CLASS_AXIS_LOSSES)
def test_class_axis_losses_finite(name, rng):
    z, y = loss_inputs(name, rng)
    if name == "softmax_cross_entropy":
        z = np.stack([np.linspace(-1000, 1000, 5), -np.linspace(-1000, 1000, 5), np.zeros(5)])
        y = np.eye(5)[[0, 4, 2]]
    if name == "kl_div":
        y = np.eye(5)[[0, 1, 2]]  # zeros in the target: 0 log 0 = 0
        z = np.log(np.full((3, 5), 0.2))
    if name == "categorical_cross_entropy":
        y = np.eye(5)[[0, 1, 2]]
        z = np.full((3, 5), 0.2)
    with np.errstate(**STRICT):
        for fn, out in _all_outputs(L, name, z, y):
            assert np.all(np.isfinite(out)), fn


@pytest.mark.parametrize("name", REGULARIZERS)
def test_regularizers_finite(name):
    with np.errstate(**STRICT):
        for fn, out in _all_outputs(R, name, Z):
            assert np.all(np.isfinite(out)), fn


def test_bce_with_logits_exact_at_extremes():
    z = np.array([-1000.0, 1000.0, 0.0])
    y = np.array([0.0, 1.0, 1.0])
    with np.errstate(**STRICT):
        value = L.binary_cross_entropy_with_logits(z, y)
        grad = L.binary_cross_entropy_with_logits_grad(z, y)
    assert value == pytest.approx(np.log(2) / 3, rel=1e-15)
    np.testing.assert_allclose(grad * 3, [0.0, 0.0, -0.5], atol=1e-300)


def test_sigmoid_keeps_relative_precision_in_the_tail():
    with np.errstate(**STRICT):
        assert A.sigmoid(np.array([-700.0]))[0] == pytest.approx(np.exp(-700.0), rel=1e-13, abs=0)
        assert A.softplus(np.array([-700.0]))[0] == pytest.approx(np.exp(-700.0), rel=1e-13, abs=0)
