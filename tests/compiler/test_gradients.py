"""Every built-in's emitted first and second derivatives against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, AWKWARD, CLASS_AXIS_LOSSES, LOSSES, REGULARIZERS, loss_inputs
from fd import check_gradient

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R

MAX_ERRORS: dict[str, float] = {}


def _points(rng):
    return np.concatenate([rng.normal(size=20) * 4, AWKWARD])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_grad_and_hess(name, rng):
    f, g, h = (getattr(A, name + s) for s in ("", "_grad", "_hess"))
    x = _points(rng)
    MAX_ERRORS[name] = check_gradient(lambda v: float(np.sum(f(v))), g(x), x)
    check_gradient(lambda v: float(np.sum(g(v))), h(x), x)
    assert np.shape(g(x)) == x.shape and np.shape(h(x)) == x.shape


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("awkward", [False, True])
def test_loss_grad(name, awkward, rng):
    f, g, vg = (getattr(L, name + s) for s in ("", "_grad", "_value_and_grad"))
    yhat, y = loss_inputs(name, rng, awkward)
    n = yhat.shape[0] if name in CLASS_AXIS_LOSSES else yhat.size
    grad = g(yhat, y)
    assert grad.shape == yhat.shape
    probabilities = name in ("binary_cross_entropy", "categorical_cross_entropy")
    step = 1e-10 if probabilities and awkward else 1e-6  # stay inside (0, 1) near 1e-8
    # one element (or one row) at a time, so a huge neighbour cannot swamp the difference
    for i in range(yhat.shape[0]):
        yi = y[i : i + 1]
        err = check_gradient(
            lambda v, yi=yi: f(v, yi), n * grad[i : i + 1], yhat[i : i + 1], 5e-5, 1e-8, step
        )
        MAX_ERRORS[name] = max(MAX_ERRORS.get(name, 0.0), err)
    value, grad2 = vg(yhat, y)
    assert value == pytest.approx(f(yhat, y), rel=1e-14, abs=1e-300)
    np.testing.assert_allclose(grad2, grad, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", [n for n in LOSSES if n not in CLASS_AXIS_LOSSES])
def test_loss_hess(name, rng):
    yhat, y = loss_inputs(name, rng)
    n = yhat.size
    g, h = getattr(L, name + "_grad"), getattr(L, name + "_hess")
    hess = h(yhat, y)
    for i in range(n):
        yi = y[i : i + 1]
        check_gradient(lambda v, yi=yi: float(g(v, yi)[0]), n * hess[i : i + 1], yhat[i : i + 1])


@pytest.mark.parametrize("name", CLASS_AXIS_LOSSES)
def test_loss_hvp(name, rng):
    yhat, y = loss_inputs(name, rng)
    v = rng.normal(size=yhat.shape)
    g, hvp = getattr(L, name + "_grad"), getattr(L, name + "_hvp")
    n = yhat.shape[0]
    check_gradient(lambda u: n * float(np.sum(g(u, y) * v)), n * hvp(yhat, y, v), yhat, rtol=5e-5)


@pytest.mark.parametrize("name", REGULARIZERS)
def test_regularizer_grad_and_hess(name, rng):
    f, g, h = (getattr(R, name + s) for s in ("", "_grad", "_hess"))
    w = _points(rng)[:, None] * np.ones((1, 2))
    check_gradient(f, g(w), w)
    check_gradient(lambda v: float(np.sum(g(v))), h(w), w)


def test_softmax_vjp(rng):
    x = rng.normal(size=(6, 4)) * 5
    x[0] = [700, -700, 0, 1e-8]
    go = rng.normal(size=x.shape)
    check_gradient(lambda v: float(np.sum(A.softmax(v) * go)), A.softmax_vjp(x, go), x)


def test_pytorch_conventions_at_kinks():
    zero = np.zeros(3)
    assert np.all(A.relu_grad(zero) == 0)
    assert np.all(L.l1_grad(zero, zero) == 0)  # |x|'(0) = 0
    assert np.all(R.l1_grad(zero) == 0)
    assert np.all(A.leaky_relu_grad(zero, alpha=0.1) == 0.1)  # torch: x > 0 ? 1 : slope
    assert np.all(L.hinge_grad(np.ones(2), np.ones(2)) == 0)  # max(0, u)'(0) = 0
