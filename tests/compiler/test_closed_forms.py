"""Every built-in against an independent closed form written by hand with scipy.special."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import loss_inputs
from scipy import special

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R

SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
ex = special.expit


def _phi(x):
    return np.exp(-x * x / 2) / np.sqrt(2 * np.pi)


def _gelu_tanh(x):
    # (1 + tanh(u)) / 2 = expit(2u) and 1 - tanh(u)^2 = 4 expit(2u) expit(-2u): the textbook
    # forms round to 0 in the left tail, where the true values are tiny but not 0
    k = np.sqrt(2 / np.pi)
    u = k * (x + 0.044715 * x**3)
    half = special.expit(2 * u)
    sech2 = 4 * special.expit(2 * u) * special.expit(-2 * u)
    return x * half, half + 0.5 * x * sech2 * k * (1 + 3 * 0.044715 * x**2)


def _mish(x):
    sp_ = np.logaddexp(0, x)
    t = np.tanh(sp_)
    return x * t, t + x * (1 - t * t) * ex(x)


ACTIVATION_FORMS = {
    "identity": (lambda x: x, lambda x: np.ones_like(x)),
    "sigmoid": (ex, lambda x: ex(x) * ex(-x)),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "leaky_relu": (lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1, 0.01)),
    "elu": (
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        lambda x: np.where(x > 0, 1, np.exp(np.minimum(x, 0))),
    ),
    "selu": (
        lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))),
        lambda x: SELU_S * np.where(x > 0, 1, SELU_A * np.exp(np.minimum(x, 0))),
    ),
    "softplus": (lambda x: np.logaddexp(0, x), ex),
    "silu": (lambda x: x * ex(x), lambda x: ex(x) * (1 + x * ex(-x))),
    "gelu": (lambda x: x * special.ndtr(x), lambda x: special.ndtr(x) + x * _phi(x)),
    "gelu_tanh": (lambda x: _gelu_tanh(x)[0], lambda x: _gelu_tanh(x)[1]),
    "mish": (lambda x: _mish(x)[0], lambda x: _mish(x)[1]),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_FORMS))
def test_activation_closed_form(name):
    x = np.concatenate([np.linspace(-40, 40, 401), [0, 1e-8, -1e-8, 700, -700]])
    value, grad = ACTIVATION_FORMS[name]
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(getattr(A, name)(x), value(x), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(getattr(A, name + "_grad")(x), grad(x), rtol=1e-9, atol=1e-300)


def test_softmax_closed_form(rng):
    x = rng.normal(size=(5, 7)) * 10
    np.testing.assert_allclose(A.softmax(x), special.softmax(x, axis=-1), rtol=1e-13)


def _bce(p, y):
    return -(special.xlogy(y, p) + special.xlogy(1 - y, 1 - p))


def _focal(z, y, alpha=0.25, gamma=2.0):
    p = ex(z)
    ce = np.logaddexp(0, z) - y * z
    p_t = p * y + (1 - p) * (1 - y)
    return (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma


LOSS_FORMS = {  # (per-element or per-sample value, d value / d yhat)
    "mse": (lambda a, y: (a - y) ** 2, lambda a, y: 2 * (a - y)),
    "l1": (lambda a, y: np.abs(a - y), lambda a, y: np.sign(a - y)),
    "huber": (
        lambda a, y: np.where(np.abs(a - y) < 1, 0.5 * (a - y) ** 2, np.abs(a - y) - 0.5),
        lambda a, y: np.clip(a - y, -1, 1),
    ),
    "smooth_l1": (
        lambda a, y: np.where(np.abs(a - y) < 1, 0.5 * (a - y) ** 2, np.abs(a - y) - 0.5),
        lambda a, y: np.clip(a - y, -1, 1),
    ),
    "log_cosh": (lambda a, y: np.log(np.cosh(a - y)), lambda a, y: np.tanh(a - y)),
    "pinball": (
        lambda a, y: np.maximum(0.5 * (y - a), -0.5 * (y - a)),
        lambda a, y: np.where(y - a >= 0, -0.5, 0.5),
    ),
    "binary_cross_entropy": (_bce, lambda p, y: (p - y) / (p * (1 - p))),
    "binary_cross_entropy_with_logits": (
        lambda z, y: np.logaddexp(0, z) - y * z,
        lambda z, y: ex(z) - y,
    ),
    "hinge": (lambda a, y: np.maximum(0, 1 - y * a), lambda a, y: np.where(1 - y * a > 0, -y, 0)),
    "squared_hinge": (
        lambda a, y: np.maximum(0, 1 - y * a) ** 2,
        lambda a, y: -2 * y * np.maximum(0, 1 - y * a),
    ),
    "poisson_nll": (lambda a, y: np.exp(a) - y * a, lambda a, y: np.exp(a) - y),
    "sigmoid_focal": (_focal, None),
    "softmax_cross_entropy": (
        lambda z, y: -np.sum(y * special.log_softmax(z, axis=-1), axis=-1),
        lambda z, y: special.softmax(z, axis=-1) * y.sum(-1, keepdims=True) - y,
    ),
    "categorical_cross_entropy": (
        lambda p, y: -np.sum(special.xlogy(y, p), axis=-1),
        lambda p, y: -y / p,
    ),
    "kl_div": (lambda lq, y: np.sum(special.xlogy(y, y) - y * lq, axis=-1), lambda lq, y: -y),
}


@pytest.mark.parametrize("name", sorted(LOSS_FORMS))
def test_loss_closed_form(name, rng):
    yhat, y = loss_inputs(name, rng, awkward=True)
    value, grad = LOSS_FORMS[name]
    n = yhat.shape[0] if yhat.ndim == 2 else yhat.size
    with np.errstate(over="ignore"):
        assert getattr(L, name)(yhat, y) == pytest.approx(np.mean(value(yhat, y)), rel=1e-12)
        if grad is not None:
            np.testing.assert_allclose(
                getattr(L, name + "_grad")(yhat, y) * n, grad(yhat, y), rtol=1e-9, atol=1e-12
            )


def test_focal_gradient_matches_torchvision_formula(rng):
    # d/dz of alpha_t * ce * (1 - p_t)^gamma, derived by hand for gamma = 2
    z = rng.normal(size=50) * 4
    y = rng.integers(0, 2, size=50).astype(float)
    p = ex(z)
    ce = np.logaddexp(0, z) - y * z
    q = 1 - (p * y + (1 - p) * (1 - y))  # 1 - p_t
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    dq = -(p * (1 - p)) * (2 * y - 1)
    expected = alpha_t * ((p - y) * q**2 + ce * 2 * q * dq)
    np.testing.assert_allclose(L.sigmoid_focal_grad(z, y) * z.size, expected, rtol=1e-9, atol=0)


def test_label_smoothing_matches_torch_definition(rng):
    z = rng.normal(size=(8, 6))
    y = np.eye(6)[rng.integers(0, 6, size=8)]
    eps = 0.1
    target = y * (1 - eps) + eps / 6
    expected = -np.mean(np.sum(target * special.log_softmax(z, axis=-1), axis=-1))
    assert L.softmax_cross_entropy(z, y, label_smoothing=eps) == pytest.approx(expected, rel=1e-13)
    grad = L.softmax_cross_entropy_grad(z, y, label_smoothing=eps)
    np.testing.assert_allclose(grad * 8, special.softmax(z, axis=-1) - target, atol=1e-14)


@pytest.mark.parametrize(
    "name,value,grad",
    [
        ("l1", lambda w: 0.3 * np.abs(w).sum(), lambda w: 0.3 * np.sign(w)),
        ("l2", lambda w: 0.15 * (w * w).sum(), lambda w: 0.3 * w),
        (
            "elastic_net",
            lambda w: 0.3 * (0.5 * np.abs(w).sum() + 0.25 * (w * w).sum()),
            lambda w: 0.3 * (0.5 * np.sign(w) + 0.5 * w),
        ),
    ],
)
def test_regularizer_closed_form(name, value, grad, rng):
    w = rng.normal(size=(4, 3))
    assert getattr(R, name)(w, lam=0.3) == pytest.approx(value(w), rel=1e-14)
    np.testing.assert_allclose(getattr(R, name + "_grad")(w, lam=0.3), grad(w), rtol=1e-14)


def test_elastic_net_matches_scikit_learn_penalty(rng):
    from sklearn.linear_model import ElasticNet

    # sklearn: 1/(2n)||y - Xw||^2 + alpha*l1_ratio*||w||_1 + alpha*(1-l1_ratio)/2*||w||^2
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=40)
    model = ElasticNet(alpha=0.1, l1_ratio=0.7, fit_intercept=False, tol=1e-12, max_iter=100000)
    w = model.fit(X, y).coef_
    grad = X.T @ (X @ w - y) / 40 + R.elastic_net_grad(w, lam=0.1, l1_ratio=0.7)
    assert np.max(np.abs(grad[w != 0])) < 1e-8  # stationarity of the same objective
