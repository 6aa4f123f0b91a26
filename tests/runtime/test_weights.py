"""Every built-in loss's ``weight=``, ``_per_sample`` form and Hessian diagonal, swept over the
registry: against the unweighted forms, repeated rows, and central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CLASS_AXIS_LOSSES, LOSSES, loss_inputs
from fd import check_gradient

import symgrad.losses as L


def _fns(name: str) -> dict[str, object]:
    suffixes = ("", "_grad", "_value_and_grad", "_hess", "_hvp", "_per_sample")
    return {s: getattr(L, name + s, None) for s in suffixes}


def _weights(name: str, yhat: np.ndarray, rng) -> np.ndarray:
    n = yhat.shape[0]
    return rng.integers(0, 4, size=n).astype(float) + (rng.uniform(size=n) > 0.5)


def _second(fns, yhat, y, v, **kw):
    """Return every second-order output of a loss at (yhat, y): the Hessian diagonal, and the
    Hessian-vector product with ``v`` for a class-axis loss."""
    out = [fns["_hess"](yhat, y, **kw)]
    if fns["_hvp"] is not None:
        out.append(fns["_hvp"](yhat, y, v, **kw))
    return out


@pytest.mark.parametrize("name", LOSSES)
def test_unit_weights_equal_unweighted(name, rng):
    fns = _fns(name)
    yhat, y = loss_inputs(name, rng)
    ones = np.ones(yhat.shape[0])
    v = rng.normal(size=yhat.shape)
    assert fns[""](yhat, y, weight=ones) == pytest.approx(fns[""](yhat, y), rel=1e-13)
    np.testing.assert_allclose(fns["_grad"](yhat, y, weight=ones), fns["_grad"](yhat, y), 1e-13)
    value, grad = fns["_value_and_grad"](yhat, y, weight=ones)
    assert value == pytest.approx(fns[""](yhat, y), rel=1e-13)
    np.testing.assert_allclose(grad, fns["_grad"](yhat, y), rtol=1e-13)
    for a, b in zip(_second(fns, yhat, y, v, weight=ones), _second(fns, yhat, y, v), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)
    per = fns["_per_sample"](yhat, y)
    np.testing.assert_array_equal(fns["_per_sample"](yhat, y, weight=ones), per)
    assert per.shape == (yhat.shape[:-1] if name in CLASS_AXIS_LOSSES else yhat.shape)
    assert np.mean(per) == pytest.approx(fns[""](yhat, y), rel=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_integer_weights_equal_repeated_rows(name, rng):
    """Weight k on a row is the row repeated k times: same mean, and each row's derivative is
    the sum of its copies' derivatives."""
    fns = _fns(name)
    yhat, y = loss_inputs(name, rng)
    w = rng.integers(0, 4, size=yhat.shape[0])
    w[0] = 2
    rep = np.repeat(np.arange(len(w)), w)
    v = rng.normal(size=yhat.shape)
    wf = w.astype(float)

    def per_row(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a, np.cumsum(np.r_[0, w[w > 0]])[:-1], axis=0)

    assert fns[""](yhat, y, weight=wf) == pytest.approx(fns[""](yhat[rep], y[rep]), rel=1e-12)
    weighted = fns["_grad"](yhat, y, weight=wf)
    np.testing.assert_allclose(weighted[w > 0], per_row(fns["_grad"](yhat[rep], y[rep])), 1e-12)
    assert np.all(weighted[w == 0] == 0)
    value, grad = fns["_value_and_grad"](yhat, y, weight=wf)
    assert value == pytest.approx(fns[""](yhat, y, weight=wf), rel=1e-13)
    np.testing.assert_allclose(grad, weighted, rtol=1e-13)
    second = _second(fns, yhat, y, v, weight=wf)
    repeated = _second(fns, yhat[rep], y[rep], v[rep])
    for a, b in zip(second, repeated, strict=True):
        np.testing.assert_allclose(a[w > 0], per_row(b), rtol=1e-12, atol=1e-300)
    per = fns["_per_sample"](yhat, y, weight=wf)
    np.testing.assert_allclose(per[w > 0], per_row(fns["_per_sample"](yhat[rep], y[rep])), 1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_blocks_with_count_add_up_to_the_weighted_whole(name, rng):
    fns = _fns(name)
    yhat, y = loss_inputs(name, rng)
    w = _weights(name, yhat, rng)
    total = float(np.sum(w))
    parts = [slice(0, 10), slice(10, None)]
    value = sum(fns[""](yhat[s], y[s], weight=w[s], count=total) for s in parts)
    assert value == pytest.approx(fns[""](yhat, y, weight=w), rel=1e-12)
    grad = np.concatenate([fns["_grad"](yhat[s], y[s], weight=w[s], count=total) for s in parts])
    np.testing.assert_allclose(grad, fns["_grad"](yhat, y, weight=w), rtol=1e-13)


@pytest.mark.parametrize("name", LOSSES)
def test_weighted_derivatives_match_finite_differences(name, rng):
    """count=1 gives per-sample derivatives with no 1/n: the weighted per-sample loss's."""
    fns = _fns(name)
    yhat, y = loss_inputs(name, rng)
    w = _weights(name, yhat, rng)
    probabilities = name in ("binary_cross_entropy", "categorical_cross_entropy")
    step = 1e-7 if probabilities else 1e-6
    grad = fns["_grad"](yhat, y, weight=w, count=1)
    hess = fns["_hess"](yhat, y, weight=w, count=1)
    for i in range(yhat.shape[0]):
        yi, wi, xi = y[i : i + 1], w[i : i + 1], yhat[i : i + 1]
        check_gradient(
            lambda u, yi=yi, wi=wi: float(np.sum(fns["_per_sample"](u, yi, weight=wi))),
            grad[i : i + 1],
            xi,
            5e-5,
            1e-8,
            step,
        )
        if name in CLASS_AXIS_LOSSES:
            for j in range(yhat.shape[1]):

                def g_j(u, xi=xi, yi=yi, wi=wi, j=j):
                    moved = xi.copy()
                    moved[0, j] = u[0, 0]
                    return float(fns["_grad"](moved, yi, weight=wi, count=1)[0, j])

                check_gradient(g_j, hess[i : i + 1, j : j + 1], xi[:, j : j + 1], 5e-5, 1e-8, step)
        else:
            check_gradient(
                lambda u, yi=yi, wi=wi: float(fns["_grad"](u, yi, weight=wi, count=1)[0]),
                hess[i : i + 1],
                xi,
                5e-5,
                1e-8,
                step,
            )


@pytest.mark.parametrize("name", CLASS_AXIS_LOSSES)
def test_class_axis_hess_is_the_diagonal_of_the_hvp(name, rng):
    yhat, y = loss_inputs(name, rng)
    diag = getattr(L, name + "_hess")(yhat, y)
    hvp = getattr(L, name + "_hvp")
    for j in range(yhat.shape[1]):
        e = np.zeros_like(yhat)
        e[:, j] = 1.0
        np.testing.assert_allclose(diag[:, j], hvp(yhat, y, e)[:, j], rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_hess_is_p_times_one_minus_p(rng):
    z = rng.normal(size=(50, 6)) * 5
    z[0] = [800.0, -800.0, 0.0, 1.0, 2.0, 3.0]
    y = np.eye(6)[rng.integers(0, 6, size=50)]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        h = L.softmax_cross_entropy_hess(z, y, count=1)
    # both sides round 1 - p near p = 1: equal to an absolute 1e-15, not relatively
    np.testing.assert_allclose(h, p * (1 - p), rtol=1e-12, atol=1e-15)


@pytest.mark.xfail(
    strict=True,
    reason="softmax_cross_entropy_hess rounds 1 - p at the dominant class: z = [30, 0, 0, 0, 0, 0] "
    "gives 4.676259379721159e-13 for exact 4.678811484415709e-13 (5e-4 relative), z = [40, 0, ...] "
    "gives 0.0 for exact 2.1241771276457944e-17",
)
def test_softmax_cross_entropy_hess_keeps_the_dominant_class_relatively():
    """p (1 - p) at p near 1 is e_k (sum of the other e_j) / S**2: no 1 - p to round away."""
    import mpmath

    z = np.array([[top] + [0.0] * 5 for top in (5.0, 20.0, 30.0, 40.0)])
    y = np.eye(6)[[1, 1, 1, 1]]
    with mpmath.workdps(50):
        e = [[mpmath.exp(mpmath.mpf(v)) for v in row] for row in z]
        want = np.array([[float(ek * (sum(r) - ek) / sum(r) ** 2) for ek in r] for r in e])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        h = L.softmax_cross_entropy_hess(z, y, count=1)
    np.testing.assert_allclose(h, want, rtol=1e-13, atol=0)


def test_elementwise_loss_on_a_matrix_takes_per_row_weights(rng):
    yhat, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    w = rng.uniform(size=8)
    got = L.mse(yhat, y, weight=w[:, None])
    assert got == pytest.approx(np.sum(w[:, None] * (yhat - y) ** 2) / (3 * np.sum(w)))


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (np.ones(5), "does not broadcast"),
        (-np.ones(24), "finite and non-negative"),
        (np.zeros(24), "sum to zero"),
    ],
)
def test_bad_weights_raise_one_clear_error(weight, message, rng):
    yhat, y = loss_inputs("huber", rng)
    with pytest.raises(ValueError, match=f"huber_grad: .*{message}"):
        L.huber_grad(yhat, y, weight=weight)
