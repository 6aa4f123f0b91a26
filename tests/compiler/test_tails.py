"""Relative precision in the tails: derivatives are checked against mpmath at 60 digits.

1 - sigmoid(u) or 1 - tanh(u)^2 computed naively round to 0 long before the true value
underflows; symgrad factors such polynomials (symgrad/tails.py), so every value below keeps
close to full relative precision wherever it is a normal float.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
import symgrad.activations as A
from symgrad.compiler.primitives import sigmoid
from symgrad.compiler.tails import factor_tails

mp.mp.dps = 60
POINTS = [1e-8, -1e-8, 1e-4, -1e-4, 0.3, -0.3, 2.0, -2.0, 10.0, -10.0, 30.0, -30.0]
POINTS += [100.0, -100.0, 700.0, -700.0]


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _softplus(x):
    return mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))


def _gelu_tanh(x):
    u = mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x**3)
    return x * _sigmoid(2 * u)  # x (1 + tanh u) / 2


REFERENCES = {
    "sigmoid": _sigmoid,
    "tanh": mp.tanh,
    "softplus": _softplus,
    "silu": lambda x: x * _sigmoid(x),
    "gelu_tanh": _gelu_tanh,
    "mish": lambda x: x * mp.tanh(_softplus(x)),
}


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_relative_precision_in_the_tails(name, order):
    fn = getattr(A, name + ("", "_grad", "_hess")[order])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        got = fn(np.array(POINTS))
    worst = 0.0
    for x, g in zip(POINTS, got, strict=True):
        want = float(mp.diff(REFERENCES[name], mp.mpf(x), order))
        if abs(want) < 1e-290:  # near or below the subnormal range: no relative claim
            continue
        worst = max(worst, abs(g - want) / abs(want))
        assert math.isclose(g, want, rel_tol=1e-12), (name, order, x, g, want)
    assert worst < 1e-12


def test_a_sigmoid_and_its_mirror_add_to_their_exact_one():
    """a sigmoid(u) + b sigmoid(-u) with a number a is a + (b - a) sigmoid(-u): swish's
    gradient is (1 + u sigmoid(-u)) sigmoid(u), one product fewer, not (sigmoid(u) + (1 + u)
    sigmoid(-u)) sigmoid(u), whose two products only round to the 1 they add to."""
    x = sp.Symbol("x", real=True)
    got = factor_tails((-x * sigmoid(x) + x + 1) * sigmoid(x))
    assert sp.expand(got) == sp.expand((1 + x * sigmoid(-x)) * sigmoid(x))


@pytest.mark.parametrize("beta", [1.0, 1.5])
def test_the_swish_gradient_is_correctly_rounded_near_0_and_exact_in_the_tails(beta):
    x = sp.Symbol("x", real=True)
    b = sp.Float(beta)
    spec = sg.Spec("swish_b", "activation", (x,), (), x / (1 + sp.exp(-b * x)))
    grad = sg.compile(spec).swish_b_grad

    def exact(v):
        s = 1 / (1 + mp.exp(-mp.mpf(beta) * v))
        return float(s * (1 + mp.mpf(beta) * v * (1 - s)))

    # 3.5e-16: 0.5 + 2 ulps, which the two-product form rounded to 0.5 + 1 ulp (beta 1.5)
    for v in (3.4949790132015566e-16, 0.0, 1e-8, -1e-8, 30.0, -30.0, 300.0, -300.0, 700.0):
        want = exact(mp.mpf(v))
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            got = float(grad(np.array([v]))[0])
        assert abs(got - want) <= 4 * np.spacing(abs(want)), (beta, v, got, want)
    assert float(grad(np.array([3.4949790132015566e-16]))[0]) == exact(
        mp.mpf(3.4949790132015566e-16)
    )
    assert grad(np.array([-700.0]))[0] == pytest.approx(exact(mp.mpf(-700)), rel=1e-13)
