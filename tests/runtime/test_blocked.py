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


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_hess_blocks_equal_one_call_with_h_and_label_ends(workers, dtype, rng):
    """Blocks written straight into the results (the kernel's out=): the numbers of one call,
    bit for bit, in the inputs' dtype; min(h) and y's (min, max) taken block by block."""
    n = 3 * blocked.block_size(10**6, workers, np.dtype(dtype).itemsize) + 17  # ragged end
    yhat = rng.normal(scale=3.0, size=n).astype(dtype)
    y = rng.uniform(size=n).astype(dtype)
    fn = L.binary_cross_entropy_with_logits_grad_hess
    grad, hess, lowest, span = blocked.grad_hess(fn, yhat, y, workers=workers, count=1)
    want = fn(yhat, y, count=1)
    assert grad.dtype == hess.dtype == dtype
    np.testing.assert_array_equal(grad, want[0])
    np.testing.assert_array_equal(hess, want[1])
    assert lowest == float(np.min(want[1]))
    assert span == (float(np.min(y)), float(np.max(y)))
    y[-1] = np.nan  # in the last block: it reaches both ends
    assert all(np.isnan(blocked.grad_hess(fn, yhat, y, workers=workers, count=1)[3]))


def test_grad_hess_blocks_of_a_kernel_without_out(rng):
    """A _grad_hess from a module generated before out= existed: each block copied in."""
    n = 2 * blocked.DEFAULT_BLOCK + 5
    yhat, y = rng.normal(size=n), rng.uniform(size=n)

    def old_kernel(yhat, y, *, count=None):  # an earlier release's signature
        return L.binary_cross_entropy_with_logits_grad_hess(yhat, y, count=count)

    got = blocked.grad_hess(old_kernel, yhat, y, count=1)
    want = L.binary_cross_entropy_with_logits_grad_hess(yhat, y, count=1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_grad_hess_out_is_checked():
    # out= (a caller's recycled results) must be two distinct flat arrays of yhat's size and
    # the result dtype: anything else is one ValueError, never a silently shared result
    z, y = np.linspace(-3, 3, 10), np.zeros(10)
    fn = L.binary_cross_entropy_with_logits_grad_hess
    a = np.empty(10)
    for out in (
        (np.empty(9), np.empty(10)),
        (np.empty((10, 1)), np.empty(10)),
        (np.empty(10, np.float32), np.empty(10)),
        (a, a),
        (a[:10], a),
        ([0.0] * 10, np.empty(10)),
    ):
        with pytest.raises(ValueError, match="out must be two flat"):
            blocked.grad_hess(fn, z, y, out=out, count=1)
    g, h = np.empty(10), np.empty(10)
    got = blocked.grad_hess(fn, z, y, out=(g, h), count=1)
    want = fn(z, y, count=1)
    assert np.shares_memory(got[0], g) and np.array_equal(got[0], want[0])
    assert np.array_equal(got[1], want[1])
