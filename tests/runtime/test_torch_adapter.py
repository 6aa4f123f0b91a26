"""symgrad.torch.function: backward is the emitted gradient, double-backward the emitted
Hessian; torch.autograd.gradcheck and gradgradcheck on every built-in and on a user spec,
and the tails where torch's autodiff of the naive formula gives NaN.

torch is not in the test extra (over 2 GB with its CUDA libraries): without it these skip."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, LOSSES, REGULARIZERS, loss_inputs

torch = pytest.importorskip("torch")

import sympy as sp  # noqa: E402
from torch.autograd import gradcheck, gradgradcheck  # noqa: E402

import symgrad as sg  # noqa: E402
import symgrad.torch as st  # noqa: E402

KERNELS = (
    [("loss", n) for n in LOSSES]
    + [("activation", n) for n in [*ACTIVATIONS, "softmax"]]
    + [("regularizer", n) for n in REGULARIZERS]
)


def _inputs(role: str, name: str) -> tuple:
    rng = np.random.default_rng(sum(map(ord, name)))
    if role == "loss":
        yhat, y = (a[:6] for a in loss_inputs(name, rng))
        return torch.tensor(yhat, requires_grad=True), torch.tensor(y)
    shape = (3, 4) if name == "softmax" else (8,)
    return (torch.tensor(rng.normal(size=shape) * 2, requires_grad=True),)


@pytest.mark.parametrize("role, name", KERNELS, ids=lambda x: str(x))
def test_gradcheck_and_gradgradcheck(role, name):
    f = st.function(name, role=role)
    args = _inputs(role, name)
    assert gradcheck(f.apply, args)
    if name == "softmax":  # emits a VJP only
        (g,) = torch.autograd.grad(f.apply(*args).sum(), args[0], create_graph=True)
        with pytest.raises(RuntimeError, match="'softmax' emits no higher derivative"):
            g.sum().backward()
        return
    assert gradgradcheck(f.apply, args)


def test_integer_labels_match_torch_cross_entropy():
    z = torch.tensor(np.random.default_rng(0).normal(size=(5, 4)), requires_grad=True)
    labels = torch.tensor([0, 3, 1, 1, 2])
    ce = st.function("softmax_cross_entropy", label_smoothing=0.1)
    ours = ce.apply(z, labels)
    theirs = torch.nn.functional.cross_entropy(z, labels, label_smoothing=0.1)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-14)
    (g1,) = torch.autograd.grad(ours, z, create_graph=True)
    (g2,) = torch.autograd.grad(theirs, z, create_graph=True)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-15)
    v = torch.ones_like(z)
    (h1,) = torch.autograd.grad((g1 * v).sum(), z)
    (h2,) = torch.autograd.grad((g2 * v).sum(), z)
    torch.testing.assert_close(h1, h2, rtol=1e-10, atol=1e-15)


def test_tails_where_autodiff_of_the_naive_formula_is_nan():
    x = torch.tensor([-1000.0, 0.0, 1000.0], dtype=torch.float64, requires_grad=True)
    (naive,) = torch.autograd.grad(torch.log1p(torch.exp(x)).sum(), x)
    assert torch.isnan(naive[2])  # exp overflows: inf / inf
    (ours,) = torch.autograd.grad(st.function("softplus").apply(x).sum(), x)
    torch.testing.assert_close(ours, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))


@sg.loss
def cosh_loss(yhat, y, c=1.0):
    """log(cosh((yhat - y) / c)) * c**2, written the naive way."""
    return c**2 * sp.log(sp.cosh((yhat - y) / c))


def test_a_user_spec_in_the_tails():
    f = st.function(cosh_loss, c=2.0)
    yhat = torch.tensor([3000.0, -0.5, 1.0], dtype=torch.float64, requires_grad=True)
    y = torch.zeros(3, dtype=torch.float64)
    (naive,) = torch.autograd.grad(torch.mean(4.0 * torch.log(torch.cosh(yhat / 2.0))), yhat)
    assert torch.isnan(naive[0])
    (g,) = torch.autograd.grad(f.apply(yhat, y), yhat, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), yhat)
    r = np.array([3000.0, -0.5, 1.0]) / 2
    np.testing.assert_allclose(g.detach().numpy(), 2 * np.tanh(r) / 3, rtol=1e-13)
    np.testing.assert_allclose(h.numpy(), (1 - np.tanh(r) ** 2) / 3, rtol=1e-12, atol=1e-300)
    assert gradcheck(f.apply, (yhat[1:].detach().requires_grad_(), y[1:]))
    assert gradgradcheck(f.apply, (yhat[1:].detach().requires_grad_(), y[1:]))


def test_targets_get_no_gradient_and_a_third_derivative_is_refused():
    f = st.function("mse")
    yhat = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="gradients flow to the first input only"):
        f.apply(yhat, torch.zeros(2, dtype=torch.float64, requires_grad=True))
    (g,) = torch.autograd.grad(
        f.apply(yhat, torch.zeros(2, dtype=torch.float64)), yhat, create_graph=True
    )
    (h,) = torch.autograd.grad(g.sum(), yhat, create_graph=True)
    torch.testing.assert_close(h, torch.tensor([1.0, 1.0], dtype=torch.float64))
    with pytest.raises(RuntimeError, match="symgrad kernel 'mse' emits no higher derivative"):
        torch.autograd.grad(h.sum() + yhat.sum(), yhat)  # never a silent zero


def test_bad_inputs_get_the_numpy_kernels_errors():
    """Shapes, dtypes and a loss's targets are checked as the numpy kernels and the boosting
    labels are: one error naming the argument."""
    huber, bce = st.function("huber"), st.function("binary_cross_entropy")
    with pytest.raises(ValueError, match=r"^huber: yhat of shape \(3,\) and y of shape \(4,\)"):
        huber.apply(torch.ones(3, requires_grad=True), torch.ones(4))
    with pytest.raises(TypeError, match=r"^huber: yhat has dtype complex64; expected real"):
        huber.apply(torch.ones(2, dtype=torch.complex64), torch.ones(2))
    with pytest.raises(ValueError, match=r"^huber: y must be finite; got nan at index 1"):
        huber.apply(torch.ones(2, requires_grad=True), torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"^binary_cross_entropy: y must be finite and in"):
        bce.apply(torch.full((2,), 0.5, requires_grad=True), torch.tensor([2.0, 0.0]))
    assert huber.apply(torch.tensor([1, 2]), torch.tensor([0.0, 1.0])).item() == 0.5
