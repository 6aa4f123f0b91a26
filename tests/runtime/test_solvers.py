"""symgrad.solvers: the one policy reads the KERNELS facts; the core's parts behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import solvers
from symgrad.kernels import builtins
from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy loss: smooth, not convex, convexity undeclared."""
    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)


@sg.loss
def abs_cubed(yhat, y):
    """A user loss with a kink in yhat."""
    return sp.Abs(yhat - y) ** 3


@pytest.mark.parametrize("role", ["loss", "regularizer", "activation"])
def test_every_kernel_records_curvature_and_convexity(role):
    for name, info in builtins(role).items():
        assert info.curvature in ("smooth", "kinked"), name
        assert info.convex in (True, False, None), name
    if role == "loss":
        facts = {n: (i.curvature, i.convex) for n, i in builtins(role).items()}
        assert facts["mse"] == ("smooth", True) and facts["hinge"] == ("kinked", True)
        assert facts["huber"] == ("kinked", True) and facts["sigmoid_focal"][1] is False


def test_user_specs_get_their_curvature_from_the_expression():
    assert LinearRegression(loss=cauchy).facts().loss.curvature == "smooth"
    assert LinearRegression(loss=cauchy).facts().loss.convex is None
    assert LinearRegression(loss=abs_cubed).facts().loss.curvature == "kinked"


def _expected(loss_info, reg_info, n_params):
    kernels = [k for k in (loss_info, reg_info) if k is not None]
    if n_params > solvers.DENSE_LIMIT or any(k.curvature == "kinked" for k in kernels):
        return "lbfgs"
    return "newton" if all(k.convex for k in kernels) else "damped_newton"


@pytest.mark.parametrize("name", [n for n, i in builtins("loss").items() if not i.class_axis])
def test_auto_follows_the_facts_for_every_elementwise_loss(name):
    X, y = np.ones((5, 3)), np.full(5, 0.5)
    for reg in (None, "l2", "l1"):
        model = LinearRegression(loss=name, regularizer=reg)
        loss, regularizer, linear = model.facts()
        assert linear
        assert solvers.choose(model, X, y) == _expected(loss, regularizer, 4)


def test_auto_choices_by_model():
    X, y = np.ones((5, 3)), np.array([0, 1, 2, 0, 1])
    assert solvers.choose(LogisticRegression(regularizer="l2"), X, y % 2) == "newton"
    assert solvers.choose(SoftmaxRegression(3), X, y) == "newton"
    assert solvers.choose(LinearRegression(loss="hinge"), X, y) == "lbfgs"
    assert solvers.choose(LinearRegression(loss=cauchy), X, y) == "damped_newton"
    mlp = MLP([3, 4, 3])
    assert solvers.choose(mlp, X, y) == "adam"
    assert solvers.choose(mlp, X, y, first_order=False) == "lbfgs"
    assert solvers.choose(MLP([3, 3]), X, y) == "newton"  # no hidden layer: linear
    wide = np.ones((5, solvers.DENSE_LIMIT))
    assert solvers.choose(LogisticRegression(), wide, y % 2) == "lbfgs"
    assert solvers.choose(LogisticRegression(), X, y % 2, "LBFGS") == "lbfgs"
    with pytest.raises(ValueError, match="requested"):
        solvers.choose(LogisticRegression(), X, y, None)


def test_the_linear_solve_falls_back_to_minimum_norm_on_a_singular_system():
    A = np.diag([2.0, 1.0, 0.0])
    d = solvers.solve(A, np.array([2.0, 1.0, 5.0]))
    assert np.allclose(d, [1.0, 1.0, 0.0])  # the null direction is not moved
    assert solvers.solve(-np.eye(2), np.ones(2), require_pd=True) is None


def test_backtrack_rejects_non_finite_trials_and_reports_them():
    def value(x):
        return np.inf if x[0] < -1 else float(x @ x)

    x, g = np.array([1.0]), np.array([2.0])
    found = solvers.backtrack(value, x, 1.0, float(g @ g), g, t=4.0)
    assert found.non_finite and 0 < found.t <= 1.0 and found.f < 1.0
    stuck = solvers.backtrack(
        lambda z: 2.0, x, 1.0, 1.0, g, search=solvers.LineSearch(0.5, 1e-4, 3)
    )
    assert stuck.t == 0.0 and stuck.evaluations == 4
