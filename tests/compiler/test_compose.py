"""compose(loss, activation) is differentiated as a whole and collapses to p - y."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy import special

import symgrad as sg
from symgrad.compiler.kernel import derive_kernel
from symgrad.compiler.primitives import sigmoid
from symgrad.library import activations as act
from symgrad.library import losses as los

STRICT = dict(over="raise", divide="raise", invalid="raise")


def test_bce_sigmoid_gradient_is_p_minus_y_symbolically():
    spec = sg.compose(los.binary_cross_entropy, act.sigmoid)
    z, y = spec.inputs
    grad = derive_kernel(spec).grad
    plain = grad.replace(sigmoid, lambda u: 1 / (1 + sp.exp(-u)))
    assert sp.simplify(plain - (1 / (1 + sp.exp(-z)) - y)) == 0
    # literally p - y, each label's term in its tail-exact form: sigmoid(z) - 1 would round
    # to 0 for y = 1 at z > 37, where the gradient is -sigmoid(-z)
    assert grad == (1 - y) * sigmoid(z) - y * sigmoid(-z)
    source = sg.compile(spec).__source__
    grad_src = source.split("def sigmoid_binary_cross_entropy_grad")[1].split("\ndef ")[0]
    assert "1 - " not in grad_src.split('"""')[-1]  # no division by p(1 - p)


def test_bce_sigmoid_numbers_at_any_logit():
    k = sg.compile(sg.compose(los.binary_cross_entropy, act.sigmoid))
    z = np.array([-1000.0, -700.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 700.0, 1000.0])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1, 1], dtype=float)
    with np.errstate(**STRICT):
        value, grad = k.sigmoid_binary_cross_entropy_value_and_grad(z, y)
    np.testing.assert_allclose(grad * z.size, special.expit(z) - y, rtol=1e-14, atol=1e-300)
    expected = np.mean(np.logaddexp(0, z) - y * z)
    assert value == pytest.approx(expected, rel=1e-14)


def test_categorical_softmax_gradient_is_softmax_minus_y():
    spec = sg.compose(los.categorical_cross_entropy, act.softmax)
    k = sg.compile(spec)
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 4)) * 300
    y = rng.dirichlet(np.ones(4), size=6)
    with np.errstate(**STRICT):
        grad = k.softmax_categorical_cross_entropy_grad(z, y)
        value = k.softmax_categorical_cross_entropy(z, y)
    np.testing.assert_allclose(grad * 6, special.softmax(z, axis=-1) - y, atol=1e-15)
    expected = -np.mean(np.sum(y * special.log_softmax(z, axis=-1), axis=-1))
    assert value == pytest.approx(expected, rel=1e-13)
    # the emitted gradient holds no log and no division by p
    body = k.__source__.split("def softmax_categorical_cross_entropy_grad")[1].split("\ndef ")[0]
    code = body.split('"""')[-1]
    assert "np.log" not in code


def test_compose_renames_clashing_hyper_parameters():
    @sg.activation
    def scaled(x, delta=2.0):
        return delta * x

    spec = sg.compose(los.huber, scaled)
    assert [s.name for s, _ in spec.hyper] == ["delta", "scaled_delta"]
    k = sg.compile(spec)
    z = np.array([0.1, 3.0])
    y = np.zeros(2)
    expected = np.mean(np.where(np.abs(2 * z) < 1, 0.5 * (2 * z) ** 2, np.abs(2 * z) - 0.5))
    assert k.scaled_huber(z, y) == pytest.approx(expected)


def test_compose_rejects_wrong_roles():
    with pytest.raises(sg.SpecError, match="takes a loss spec then an activation spec"):
        sg.compose(act.sigmoid, los.mse)
