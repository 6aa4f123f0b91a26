"""A term constant in the inputs (a hyper-parameter's Piecewise) counts once per element in a
loss's mean and a regularizer's sum, and ``weight=`` and ``count=`` weigh it like any other."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symgrad as sg

yhat, y, c, w, alpha = sp.symbols("yhat y c w alpha", real=True)
PIECE = sg.Spec(
    "piece_offset",
    "loss",
    (yhat, y),
    ((c, 2.0),),
    (yhat - y) ** 2 + sp.Piecewise((c, c > 1), (1, True)),
)
REG = sg.Spec(
    "piece_reg",
    "regularizer",
    (w,),
    ((alpha, 20.0),),
    sp.Piecewise((4, alpha >= 2), (alpha, True)) + sp.erf(sp.exp(-(w**2))),
)
X = np.array([0.0, 1.0, 2.0, 3.0])
Y = np.zeros(4)


@pytest.fixture(scope="module")
def module():
    return sg.compile(PIECE, REG)


def test_constant_term_counts_once_per_element(module):
    assert module.piece_offset(X, Y) == pytest.approx(5.5, rel=1e-15)
    assert module.piece_offset_value_and_grad(X, Y)[0] == pytest.approx(5.5, rel=1e-15)
    assert module.piece_offset(X, Y, c=0.5) == pytest.approx(4.5, rel=1e-15)


@pytest.mark.parametrize(
    ("weight", "count", "expected"),
    [
        (np.ones(4), None, 5.5),
        (np.array([1.0, 0.0, 0.0, 0.0]), None, 2.0),
        (np.array([1.0, 2.0, 0.0, 1.0]), None, (2 + 2 * 3 + 11) / 4),
        (None, 2, 11.0),
        (np.ones(4), 2, 11.0),
        (np.array([3.0, 0.0, 0.0, 1.0]), 8, (3 * 2 + 11) / 8),
    ],
)
def test_weight_and_count_weigh_the_constant_term(module, weight, count, expected):
    got = module.piece_offset(X, Y, weight=weight, count=count)
    both = module.piece_offset_value_and_grad(X, Y, weight=weight, count=count)[0]
    assert got == pytest.approx(expected, rel=1e-15)
    assert both == pytest.approx(expected, rel=1e-15)


def test_regularizer_constant_is_summed_over_elements(module):
    ws = np.array([0.0, 0.5, -1.0, 2.0, 3.0] * 4)
    expected = sum(4 + math.erf(math.exp(-v * v)) for v in ws)
    assert module.piece_reg(ws) == pytest.approx(expected, rel=1e-14)
    assert module.piece_reg(ws, alpha=1.5) == pytest.approx(expected - 2.5 * ws.size, rel=1e-14)


A = sp.Symbol("a", real=True)


@pytest.mark.parametrize(
    "expr", [yhat / A, (yhat - y) ** 2 / A + 1 / A, sp.exp(yhat) / A, yhat * A**-0.5]
)
def test_hyper_parameter_division_by_zero_is_numpy_inf(expr):
    """1/a at a = 0 is numpy's inf (a RuntimeWarning), never ZeroDivisionError."""
    k = sg.compile(sg.Spec("by_a", "loss", (yhat, y), ((A, 1.0),), expr))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for name in ("by_a", "by_a_grad", "by_a_value_and_grad", "by_a_per_sample"):
            out = getattr(k, name)(X, Y, a=0.0)
            value = out[0] if isinstance(out, tuple) else out
            assert np.isinf(value).any() or np.isnan(value).any(), name
    x32 = np.array([1.0, 2.0], dtype=np.float32)
    assert k.by_a_grad(x32, np.zeros(2, np.float32), a=0.5).dtype == np.float32
