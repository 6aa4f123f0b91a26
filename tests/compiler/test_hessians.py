"""Check model Hessians and Hessian-vector products against finite differences of the gradient."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from conftest import ACTIVATIONS

import symgrad as sg
import symgrad.losses as L
from symgrad import models
from symgrad.models import (
    MLP,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    flatten,
    unflatten,
)


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy (Lorentzian) loss log(1 + (r / c)^2): curvature of both signs."""
    return sp.log(1 + ((yhat - y) / c) ** 2)


@sg.regularizer
def quartic(w, lam=1e-2):
    """lam * sum(w^4)."""
    return lam * w**4


def grad_vector(model, params, X, y):
    """Return the objective's gradient flattened in the order of ``params``' keys."""
    grads = model.objective(params, X, y)[1]
    return flatten({key: grads[key] for key in params})


def fd_hessian(model, params, X, y, step=1e-5):
    """Return the central-difference Jacobian of the flattened gradient (float64)."""
    x0 = flatten(params)
    H = np.empty((x0.size, x0.size))
    for j in range(x0.size):
        h = step * max(1.0, abs(x0[j]))
        e = np.zeros_like(x0)
        e[j] = h
        plus = grad_vector(model, unflatten(x0 + e, params), X, y)
        minus = grad_vector(model, unflatten(x0 - e, params), X, y)
        H[:, j] = (plus - minus) / (2 * h)
    return H


def fd_hvp(model, params, X, y, v, step=1e-5):
    """Return the central difference of the gradient along ``v``."""
    x0, d = flatten(params), flatten(v)
    h = step * max(1.0, np.abs(x0).max()) / np.abs(d).max()
    plus = grad_vector(model, unflatten(x0 + h * d, params), X, y)
    minus = grad_vector(model, unflatten(x0 - h * d, params), X, y)
    return (plus - minus) / (2 * h)


def randomize(params, rng, scale=0.5):
    return {k: rng.normal(scale=scale, size=np.shape(v)) for k, v in params.items()}


def assert_second_order(model, params, X, y, rng, rtol=1e-6):
    """Check hessian and hvp against differences, symmetry, and hvp(v) == H @ v."""
    H = model.hessian(params, X, y)
    P = flatten(params).size
    assert H.shape == (P, P)
    assert np.array_equal(H, H.T)
    F = fd_hessian(model, params, X, y)
    scale = max(1.0, np.abs(F).max())
    assert np.abs(H - F).max() <= rtol * scale, np.abs(H - F).max()
    v = randomize(params, rng, scale=1.0)
    Hv = model.hvp(params, X, y, v)
    assert list(Hv) == list(params)
    assert all(np.shape(Hv[k]) == np.shape(params[k]) for k in params)
    assert np.allclose(flatten(Hv), H @ flatten(v), rtol=1e-12, atol=1e-13 * scale)
    fd = fd_hvp(model, params, X, y, v)
    assert np.abs(flatten(Hv) - fd).max() <= rtol * max(1.0, np.abs(fd).max())
    return H


# --------------------------------------------------------------------------- linear models

REGULARIZERS = [
    None,
    ("l2", {"lam": 0.3}),
    ("l1", {"lam": 0.2}),
    ("elastic_net", {"lam": 0.3, "l1_ratio": 0.25}),
    (quartic, {"lam": 0.1}),
]


@pytest.mark.parametrize("regularizer", REGULARIZERS)
@pytest.mark.parametrize(
    "loss",
    ["mse", ("huber", {"delta": 0.5}), "log_cosh", "poisson_nll", (cauchy, {"c": 0.7})],
)
def test_linear_regression_hessian(loss, regularizer, rng):
    X = rng.normal(size=(23, 3))
    model = LinearRegression(loss=loss, regularizer=regularizer)
    y = rng.poisson(2.0, size=23).astype(float) if loss == "poisson_nll" else rng.normal(size=23)
    assert_second_order(model, randomize(model.init(n_features=3), rng), X, y, rng)
    Y = np.abs(rng.normal(size=(23, 2))) if loss == "poisson_nll" else rng.normal(size=(23, 2))
    params = randomize(model.init(n_features=3, n_outputs=2), rng)
    assert_second_order(model, params, X, Y, rng)


def test_linear_regression_mse_hessian_is_the_normal_matrix(rng):
    X, y = rng.normal(size=(40, 4)), rng.normal(size=40)
    lam = 0.2
    for intercept in (True, False):
        model = LinearRegression(regularizer=("l2", {"lam": lam}), fit_intercept=intercept)
        params = randomize(model.init(n_features=4), rng)
        A = np.column_stack([X, np.ones(40)]) if intercept else X
        expected = 2 * A.T @ A / 40
        expected[np.arange(4), np.arange(4)] += lam
        assert np.allclose(model.hessian(params, X, y), expected, rtol=1e-13, atol=1e-15)
        assert_second_order(model, params, X, y, rng)


@pytest.mark.parametrize("lam", [0.0, 0.05])
@pytest.mark.parametrize("intercept", [True, False])
def test_logistic_hessian_is_the_closed_form(lam, intercept, rng):
    n, d = 50, 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, 2, size=n).astype(float)
    model = LogisticRegression(regularizer=("l2", {"lam": lam}), fit_intercept=intercept)
    params = randomize(model.init(n_features=d), rng)
    A = np.column_stack([X, np.ones(n)]) if intercept else X
    p = 1 / (1 + np.exp(-(A @ flatten(params))))
    expected = A.T @ np.diag(p * (1 - p)) @ A / n
    expected[np.arange(d), np.arange(d)] += lam  # the weights only, never the intercept
    H = assert_second_order(model, params, X, y, rng)
    assert np.allclose(H, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("regularizer", [None, ("l2", {"lam": 0.5}), "l1"])
def test_logistic_and_softmax_hessians_with_regularizers(regularizer, rng):
    X = rng.normal(size=(19, 3))
    logistic = LogisticRegression(regularizer=regularizer)
    params = randomize(logistic.init(n_features=3), rng)
    assert_second_order(logistic, params, X, rng.uniform(size=19), rng)  # soft labels too
    soft = SoftmaxRegression(4, regularizer=regularizer)
    assert_second_order(
        soft, randomize(soft.init(n_features=3), rng), X, rng.integers(0, 4, 19), rng
    )


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("targets", ["labels", "rows"])
def test_softmax_hessian_matches_the_generated_hvp(intercept, targets, rng):
    """The closed form diag(p) - p p.T per sample, against blocks from the emitted _hvp."""
    n, d, k = 31, 3, 4
    X = rng.normal(size=(n, d))
    # target rows that do not sum to one scale each block by their sum
    y = rng.integers(0, k, size=n) if targets == "labels" else rng.dirichlet(np.ones(k), n) * 1.3
    model = SoftmaxRegression(k, regularizer=("l2", {"lam": 0.1}), fit_intercept=intercept)
    params = randomize(model.init(n_features=d), rng)
    H = assert_second_order(model, params, X, y, rng)
    z = model.decision_function(params, X)
    Y = np.eye(k)[y] if targets == "labels" else y
    blocks = np.stack(
        [L.softmax_cross_entropy_hvp(z, Y, np.broadcast_to(e, z.shape)) for e in np.eye(k)], axis=2
    )  # blocks[i, :, a] = H_i e_a
    A = np.column_stack([X, np.ones(n)]) if intercept else X
    m = A.shape[1]
    expected = np.einsum("ni,nj,nab->iajb", A, A, blocks).reshape(m * k, m * k)
    expected[np.arange(d * k), np.arange(d * k)] += 0.1
    assert np.allclose(H, expected, rtol=1e-12, atol=1e-15)


def test_softmax_hessian_in_row_blocks_equals_one_block(rng, monkeypatch):
    """Many samples are assembled in blocks of rows; the result must not depend on that."""
    X, y = rng.normal(size=(500, 6)), rng.integers(0, 4, size=500)
    model = SoftmaxRegression(4)
    params = randomize(model.init(n_features=6), rng)
    whole = model.hessian(params, X, y)
    monkeypatch.setattr(models._linear, "_ROW_BLOCK", 7 * 4 * 37)  # 37 rows per block, ragged last
    blocked = model.hessian(params, X, y)
    assert np.allclose(blocked, whole, rtol=1e-12, atol=1e-16)
    v = randomize(params, rng)
    assert np.allclose(blocked @ flatten(v), flatten(model.hvp(params, X, y, v)), atol=1e-14)


@pytest.mark.parametrize("loss", ["binary_cross_entropy_with_logits", "sigmoid_focal"])
def test_gram_in_row_blocks_equals_one_block(loss, rng, monkeypatch):
    """The weighted Gram matrix is built a block of rows at a time (syrk, or gemm when the
    curvature has both signs, as the focal loss's does); blocks must not change it."""
    X, y = rng.normal(size=(203, 5)), rng.integers(0, 2, size=203)
    model = MLP([5, 1], loss=loss, regularizer="l2")  # a linear model with any logit loss
    params = randomize(model.init(0), rng, scale=2.0)
    whole = model.hessian(params, X, y)
    monkeypatch.setattr(
        models._second_order, "_GRAM_BLOCK", 5 * 16
    )  # 16 rows per block, ragged last
    blocked = LinearRegression(loss=loss, regularizer="l2")
    flat = {"W": params["W0"][:, 0], "b": params["b0"][0]}
    H = assert_second_order(blocked, flat, X, y.astype(float), rng)
    assert np.allclose(H, whole, rtol=1e-12, atol=1e-15)
    h = getattr(L, f"{loss}_hess")(X @ flat["W"] + flat["b"], y)
    assert loss == "binary_cross_entropy_with_logits" or (h.min() < 0 < h.max())


def test_hessian_follows_the_order_of_the_params_dict(rng):
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    model = LinearRegression(loss="log_cosh", regularizer="l2")
    params = randomize(model.init(n_features=3), rng)
    swapped = {"b": params["b"], "W": params["W"]}
    H = model.hessian(swapped, X, y)
    assert np.allclose(H, fd_hessian(model, swapped, X, y), rtol=1e-6, atol=1e-8)
    assert list(model.hvp(swapped, X, y, swapped)) == ["b", "W"]


# --------------------------------------------------------------------------- MLP


def kink_free(model, rng, n=11):
    """Draw cases until no hidden pre-activation is within 0.05 of 0 (deterministic rng)."""
    for _ in range(200):
        X = rng.normal(size=(n, model.sizes[0]))
        params = randomize(model.init(0), rng, scale=0.7)
        a, ok = X, True
        for i in range(model.n_layers - 1):
            z = a @ params[f"W{i}"] + params[f"b{i}"]
            ok &= bool(np.abs(z).min() > 0.05)
            a = model._act.fn(z)
        if ok:
            break
    else:
        raise AssertionError("no kink-free test point found")
    k = model.sizes[-1]
    if model.task == "multiclass":
        y = rng.integers(0, k, size=n)
    elif model.task == "binary":
        y = rng.integers(0, 2, size=n) if k == 1 else rng.integers(0, 2, size=(n, k))
    else:
        y = rng.normal(size=n) if k == 1 else rng.normal(size=(n, k))
    return params, X, y


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_hessian_for_every_activation(activation, rng):
    model = MLP([3, 4, 3, 3], activation=activation, regularizer=("l2", {"lam": 0.1}))
    params, X, y = kink_free(model, rng)
    assert_second_order(model, params, X, y, rng)


@pytest.mark.parametrize(
    "loss, output, k",
    [
        ("mse", None, 2),
        ("binary_cross_entropy_with_logits", None, 1),
        ("sigmoid_focal", None, 2),
        (("huber", {"delta": 0.3}), None, 1),
        ("poisson_nll", None, 1),
        (("softmax_cross_entropy", {"label_smoothing": 0.1}), None, 3),
        ("kl_div", None, 3),
        ("categorical_cross_entropy", "softmax", 3),
        ("mse", ("softplus", {"beta": 2.0}), 1),
        (cauchy, None, 1),
    ],
)
def test_mlp_hessian_for_losses_and_outputs(loss, output, k, rng):
    model = MLP([3, 4, k], activation="tanh", loss=loss, output=output, regularizer=quartic)
    params, X, y = kink_free(model, rng)
    if model.task == "regression" and loss == "poisson_nll":
        y = np.abs(y)
    assert_second_order(model, params, X, y, rng)


def test_mlp_relu_away_from_kinks_has_gauss_newton_like_curvature(rng):
    """relu'' = 0 off the kinks, so only the loss curvature and weight cross terms remain."""
    model = MLP([3, 5, 2], activation="relu", loss="softmax_cross_entropy")
    params, X, y = kink_free(model, rng)
    assert_second_order(model, params, X, y, rng)
    deep = MLP([2, 3, 3, 1], activation="relu", loss="mse", regularizer="elastic_net")
    params, X, y = kink_free(deep, rng)
    assert_second_order(deep, params, X, y, rng)


def test_mlp_without_hidden_layer_equals_softmax_regression(rng):
    X, y = rng.normal(size=(25, 3)), rng.integers(0, 3, size=25)
    soft = SoftmaxRegression(3, regularizer="l2")
    net = MLP([3, 3], regularizer="l2")
    params = randomize(soft.init(n_features=3), rng)
    net_params = {"W0": params["W"], "b0": params["b"]}
    assert np.allclose(soft.hessian(params, X, y), net.hessian(net_params, X, y), atol=1e-14)


def test_hvp_operator_is_linear_and_reusable(rng):
    model = MLP([3, 4, 2], activation="gelu", loss="mse", regularizer="l2")
    params, X, y = kink_free(model, rng)
    apply = model.hvp_operator(params, X, y)
    u, v = randomize(params, rng), randomize(params, rng)
    combo = {k: 2 * u[k] - 3 * v[k] for k in params}
    lhs = flatten(apply(combo))
    rhs = 2 * flatten(apply(u)) - 3 * flatten(apply(v))
    assert np.allclose(lhs, rhs, rtol=1e-12, atol=1e-14)
    assert np.array_equal(flatten(apply(u)), flatten(model.hvp(params, X, y, u)))


def test_hvp_rejects_a_direction_unlike_params(rng):
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 2, size=5)
    model = LogisticRegression()
    params = model.init(n_features=3)
    with pytest.raises(ValueError, match="params has no 'b'"):
        model.hvp(params, X, y, {"W": np.ones(3)})
    net = MLP([3, 2])
    with pytest.raises(ValueError, match=r"params\['W0'\] has shape"):
        net.hvp(net.init(0), X, y, {"W0": np.ones((2, 3)), "b0": np.ones(2)})


def test_inputs_are_not_modified(rng):
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 3, size=9)
    for model, params in [
        (SoftmaxRegression(3, regularizer="l2"), None),
        (MLP([3, 4, 3], activation="tanh", regularizer="l2"), None),
    ]:
        params = randomize(
            model.init(n_features=3) if isinstance(model, SoftmaxRegression) else model.init(0),
            rng,
        )
        before = {k: v.copy() for k, v in params.items()}
        v = randomize(params, rng)
        v_before = {k: a.copy() for k, a in v.items()}
        model.hessian(params, X, y)
        model.hvp(params, X, y, v)
        assert all(np.array_equal(params[k], before[k]) for k in params)
        assert all(np.array_equal(v[k], v_before[k]) for k in v)


# --------------------------------------------------------------------------- flatten


def test_flatten_and_unflatten_round_trip():
    params = {"W0": np.arange(6.0).reshape(2, 3), "b0": np.array([7.0, 8.0, 9.0]), "c": 1.5}
    vec = flatten(params)
    assert np.array_equal(vec, [0, 1, 2, 3, 4, 5, 7, 8, 9, 1.5])
    back = unflatten(vec, params)
    assert list(back) == ["W0", "b0", "c"]
    assert all(np.array_equal(back[k], params[k]) for k in params)
    assert back["c"].shape == ()
    vec[0] = 99.0
    assert back["W0"][0, 0] == 0.0  # a copy, not a view
    with pytest.raises(ValueError, match=r"expected \(10,\)"):
        unflatten(np.zeros(9), params)
