"""Block-by-block evaluation gives the same numbers as one call, for every built-in."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, CLASS_AXIS_LOSSES, LOSSES, REGULARIZERS, loss_inputs

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from symgrad import blocked


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_blocks(name, workers, rng):
    x = rng.normal(size=(37, 29)) * 5
    for fn in (getattr(A, name + "_grad"), getattr(A, name + "_hess")):
        got = blocked.elementwise(fn, x, block=100, workers=workers)
        np.testing.assert_array_equal(got, fn(x))


@pytest.mark.parametrize("name", REGULARIZERS)
def test_regularizer_blocks(name, rng):
    w = rng.normal(size=1001)
    fn = getattr(R, name + "_grad")
    np.testing.assert_array_equal(blocked.elementwise(fn, w, block=64, lam=0.3), fn(w, lam=0.3))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_blocks(name, workers, rng):
    yhat, y = loss_inputs(name, rng)
    yhat = np.concatenate([yhat] * 7)
    y = np.concatenate([y] * 7)
    fn = getattr(L, name + "_value_and_grad")
    value, grad = fn(yhat, y)
    class_axis = name in CLASS_AXIS_LOSSES
    got_value, got_grad = blocked.loss_value_and_grad(
        fn, yhat, y, class_axis=class_axis, block=50, workers=workers
    )
    assert got_value == pytest.approx(value, rel=1e-13)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-13, atol=1e-14 * np.abs(grad).max())


def test_hyper_parameters_reach_every_block(rng):
    yhat, y = rng.normal(size=999), rng.normal(size=999)
    fn = L.huber_value_and_grad
    got = blocked.loss_value_and_grad(fn, yhat, y, block=10, delta=0.3)
    want = fn(yhat, y, delta=0.3)
    assert got[0] == pytest.approx(want[0], rel=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-13)


def test_broadcast_labels(rng):
    x = rng.normal(size=(10, 3))
    got = blocked.loss_value_and_grad(L.mse_value_and_grad, x, 0.5, block=7)
    want = L.mse_value_and_grad(x, np.full_like(x, 0.5))
    assert got[0] == pytest.approx(want[0], rel=1e-14)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-14)


@pytest.mark.parametrize("workers", [1, 2])
def test_blocks_write_into_out(workers, rng):
    x = rng.normal(size=(33, 21)) * 4
    out = np.full(x.shape, np.nan)
    got = blocked.elementwise(A.gelu_grad, x, block=64, workers=workers, out=out)
    assert got.base is out or got is out
    np.testing.assert_array_equal(out, A.gelu_grad(x))
    z, t = loss_inputs("softmax_cross_entropy", rng)
    grad = np.full(z.shape, np.nan)
    v, g = blocked.loss_value_and_grad(
        L.softmax_cross_entropy_value_and_grad, z, t, class_axis=True, block=10, out=grad
    )
    want_v, want_g = L.softmax_cross_entropy_value_and_grad(z, t)
    assert v == pytest.approx(want_v, rel=1e-13)
    np.testing.assert_allclose(grad, want_g, rtol=1e-13)


def test_loss_grad_blocks_match_one_call(rng):
    yhat, y = loss_inputs("huber", rng)
    got = blocked.loss_grad(L.huber_grad, yhat, y, block=5, delta=0.7)
    np.testing.assert_allclose(got, L.huber_grad(yhat, y, delta=0.7), rtol=1e-13)


def test_blocked_out_is_checked():
    with pytest.raises(ValueError, match="blocked.elementwise: out must be a C-contiguous float64"):
        blocked.elementwise(A.relu, np.zeros(4), out=np.zeros(5))
