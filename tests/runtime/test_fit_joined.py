"""fit lays the params out as one flat array (and the gradients, for objectives taking
``out=``), and takes the very iterates of a plain loop of pure updates on separate arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg
from symgrad import optim
from symgrad._inplace import joined
from symgrad.models import MLP, LogisticRegression

OPTIMIZERS = {
    "adam": lambda: optim.adam(lr=1e-2),
    "adamw": lambda: optim.adamw(lr=1e-2, weight_decay=0.05),
    "adam_l2": lambda: optim.adam(lr=1e-2, weight_decay=0.01),
    "sgd_momentum": lambda: optim.sgd(lr=0.05, momentum=0.9),
    "sgd_nesterov": lambda: optim.sgd(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "rmsprop": lambda: optim.rmsprop(lr=1e-2),  # no fast path: the pure update, joined params
}


def _data(n=96, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, size=n)


def _reference(model, start, opt, X, y, *, epochs, batch_size, seed=0):
    """Return the params and the per-epoch (loss, grad_norm) of a plain loop: separate
    arrays, new gradients from every call, ``opt.update``, fit's batches and conventions."""
    params = {k: v.copy() for k, v in start.items()}
    state = opt.init(params)
    rng = np.random.default_rng(seed)
    history = []
    n = len(X)
    for _ in range(epochs):
        order = rng.permutation(n) if batch_size else None
        batches = (
            [None]
            if not batch_size
            else [order[i : i + batch_size] for i in range(0, n, batch_size)]
        )
        losses, sizes, grad_sum = [], [], None
        for idx in batches:
            Xb, yb = (X, y) if idx is None else (X[idx], y[idx])
            loss, grads = model.objective(params, Xb, yb)
            params, state = opt.update(grads, state, params)
            nb = len(Xb)
            losses.append(float(loss))
            sizes.append(nb)
            if nb == n:
                grad_sum = list(grads.values())
            elif grad_sum is None:
                grad_sum = [g * nb for g in grads.values()]
            else:
                grad_sum = [a + g * nb for a, g in zip(grad_sum, grads.values(), strict=True)]
        if len(losses) == 1:
            loss, mean = losses[0], grad_sum
        else:
            loss = math.fsum(lo * nb for lo, nb in zip(losses, sizes, strict=True)) / n
            mean = [a / n for a in grad_sum]
        history.append((loss, math.sqrt(sum(float(np.sum(g * g)) for g in mean))))
    return params, history


@pytest.mark.parametrize("batch_size", [None, 20])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fit_takes_the_iterates_of_pure_updates_on_separate_arrays(name, batch_size):
    X, y = _data()
    model = MLP([5, 16, 3], activation="tanh")
    epochs = 6
    res = sg.fit(model.objective, model.init(0), X, y, optimizer=OPTIMIZERS[name](),
                 epochs=epochs, batch_size=batch_size, seed=0, progress=False)  # fmt: skip
    params, history = _reference(
        model, model.init(0), OPTIMIZERS[name](), X, y, epochs=epochs, batch_size=batch_size
    )
    assert res.n_epochs == epochs
    for k in params:
        np.testing.assert_array_equal(res.params[k], params[k])
    assert list(zip(res.history.loss, res.history.grad_norm, strict=True)) == history


@pytest.mark.parametrize("kind", ["logistic", "mlp_float32"])
def test_fit_takes_the_iterates_on_a_linear_model_and_in_float32(kind):
    X, y = _data(seed=1)
    if kind == "logistic":
        model, y = LogisticRegression(), (y > 0).astype(float)
        start = model.init(0, n_features=5)
    else:
        model, X = MLP([5, 7, 3], activation="relu"), X.astype(np.float32)
        start = model.init(0, dtype=np.float32)
    res = sg.fit(model.objective, start, X, y, optimizer=optim.adamw(lr=1e-2), epochs=4,
                 batch_size=32, progress=False)  # fmt: skip
    params, history = _reference(model, start, optim.adamw(lr=1e-2), X, y, epochs=4, batch_size=32)
    for k in params:
        assert res.params[k].dtype == start[k].dtype
        np.testing.assert_array_equal(res.params[k], params[k])
    assert list(zip(res.history.loss, res.history.grad_norm, strict=True)) == history


def _recording(model, seen):
    def objective(params, X, y, out=None):
        seen.append((params, out))
        return model.objective(params, X, y, out=out)

    return objective


@pytest.mark.parametrize("name", ["adam", "sgd_momentum"])
def test_fit_joins_the_params_and_hands_an_out_objective_one_gradient_buffer(name):
    X, y = _data()
    model = MLP([5, 8, 3], activation="tanh")
    seen = []
    sg.fit(_recording(model, seen), model.init(0), X, y, optimizer=OPTIMIZERS[name](),
           epochs=3, batch_size=32, progress=False)  # fmt: skip
    assert len(seen) == 9
    first_params, first_out = seen[0]
    flat = joined(list(first_params.values()))
    assert flat is not None and flat.size == sum(v.size for v in first_params.values())
    assert joined(list(first_out.values())) is not None
    for params, out in seen:  # the same live buffers at every step, updated in place
        assert all(params[k] is first_params[k] and out[k] is first_out[k] for k in params)


def test_fit_passes_no_out_without_a_fast_path_or_to_a_plain_objective():
    X, y = _data()
    model = MLP([5, 8, 3], activation="tanh")
    seen = []
    sg.fit(_recording(model, seen), model.init(0), X, y, optimizer=optim.rmsprop(lr=1e-2),
           epochs=2, progress=False)  # fmt: skip
    assert [out for _, out in seen] == [None, None]  # the pure update may keep the gradients
    got = []

    def plain(params, X, y):
        got.append(params)
        return model.objective(params, X, y)

    sg.fit(plain, model.init(0), X, y, optimizer="adam", epochs=1, progress=False)
    assert joined(list(got[0].values())) is not None


def test_fit_with_joined_buffers_still_undoes_an_overflowing_step():
    """The backup is of the flat arrays; a step that overflows is put back whole."""

    def objective(params, X, y, out=None):
        g = {"w": np.full(3, 1e300), "b": np.full(2, 1.0)}
        if out is None:
            return 1.0, g
        for k in out:
            np.copyto(out[k], g[k])
        return 1.0, out

    start = {"w": np.ones(3), "b": np.zeros(2)}
    with np.errstate(all="ignore"):
        res = sg.fit(objective, start, np.zeros((4, 1)), None, optimizer=optim.sgd(lr=1e10),
                     epochs=3, on_non_finite="stop", progress=False)  # fmt: skip
    assert res.stop_reason == "non_finite" and res.n_steps == 0
    np.testing.assert_array_equal(res.params["w"], start["w"])
    np.testing.assert_array_equal(res.params["b"], start["b"])


def _grad_norm(grads):
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))


def test_the_epoch_gradient_norm_keeps_its_numbers_for_any_layout():
    """Full batch: the history's norm is sqrt(sum(np.sum(g * g))), for a Fortran-ordered,
    a 0-d and a float leaf alike, and squares past the largest float are no error."""
    rng = np.random.default_rng(7)
    W = np.asfortranarray(rng.normal(size=(300, 7)))

    def objective(params, X, y):
        return 1.0, {"W": W * 1e-3, "b": np.array(0.25), "c": 3}

    start = {"W": np.zeros((300, 7)), "b": np.array(0.0), "c": 0.0}
    res = sg.fit(objective, start, np.zeros((2, 1)), None, optimizer=optim.sgd(lr=0.1),
                 epochs=2, progress=False)  # fmt: skip
    want = _grad_norm({"W": W * 1e-3, "b": np.array(0.25), "c": np.array(3.0)})
    assert res.history.grad_norm == [want, want]

    def huge(params, X, y):
        return 1.0, {"w": np.full(4, 1e200)}

    with np.errstate(over="ignore"):  # the squares overflow, as np.sum(g * g) does
        res = sg.fit(huge, {"w": np.zeros(4)}, np.zeros((2, 1)), None,
                     optimizer=optim.sgd(lr=1e-300), epochs=2, progress=False)  # fmt: skip
    assert res.stop_reason == "epochs" and res.history.grad_norm == [math.inf, math.inf]
    assert np.all(res.params["w"] == -2e-100)
