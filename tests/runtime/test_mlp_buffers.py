"""MLP.objective reuses its layer buffers across calls and writes gradients into ``out=``,
with the same numbers as fresh arrays and no aliasing between calls or threads."""

from __future__ import annotations

import pickle
import threading
import tracemalloc

import numpy as np
import pytest

from symgrad import optim
from symgrad.models import MLP


def _problem(n=48, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(dtype)
    y = rng.integers(0, 3, size=n)
    return X, y


def _same(a, b):
    assert a[0] == b[0]
    assert list(a[1]) == list(b[1])
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reused_buffers_give_the_numbers_of_a_fresh_model(dtype):
    X, y = _problem(dtype=dtype)
    X2, y2 = _problem(n=17, seed=1, dtype=dtype)
    X3, y3 = _problem(n=5, seed=2, dtype=dtype)
    model = MLP([6, 8, 7, 3], activation="tanh", regularizer=("l2", {"lam": 0.1}))
    params = model.init(0, dtype=dtype)
    first = model.objective(params, X, y)
    kept = {k: v.copy() for k, v in first[1].items()}
    for Xb, yb in ((X2, y2), (X3, y3), (X, y), (X2, y2)):  # three shapes: one is evicted
        fresh = MLP([6, 8, 7, 3], activation="tanh", regularizer=("l2", {"lam": 0.1}))
        _same(model.objective(params, Xb, yb), fresh.objective(params, Xb, yb))
    for k in kept:  # the gradients returned earlier are the caller's: never overwritten
        np.testing.assert_array_equal(first[1][k], kept[k])


def test_out_receives_the_gradients():
    X, y = _problem()
    model = MLP([6, 8, 3])
    params = model.init(0)
    expected = model.objective(params, X, y, sample_weight=np.arange(48.0))
    out = optim.join({k: np.full_like(v, np.nan) for k, v in params.items()})
    got = model.objective(params, X, y, sample_weight=np.arange(48.0), out=out)
    _same(got, expected)
    assert all(got[1][k] is out[k] for k in out)


def test_a_warm_call_with_out_allocates_no_layer_buffer():
    X, y = _problem(n=512)
    model = MLP([6, 64, 3])
    params = model.init(0)
    out = {k: np.empty_like(v) for k, v in params.items()}
    layer = 512 * 64 * 8  # one hidden layer's activations
    model.objective(params, X, y, out=out)
    tracemalloc.start()
    try:
        model.objective(params, X, y, out=out)
        _, warm = tracemalloc.get_traced_memory()
        MLP([6, 64, 3]).objective(params, X, y)
        _, cold = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert warm < layer / 2 < 3 * layer <= cold


def test_bad_out_is_one_clear_error():
    X, y = _problem()
    model = MLP([6, 8, 3])
    params = model.init(0)
    out = {k: np.empty_like(v) for k, v in params.items()}
    out["W1"] = np.empty((3, 8))
    with pytest.raises(ValueError, match=r"out\['W1'\] must be a writeable float64 array"):
        model.objective(params, X, y, out=out)
    with pytest.raises(ValueError, match=r"out\['b0'\]"):
        model.objective(params, X, y, out={"W0": np.empty((6, 8))})
    with pytest.raises(TypeError, match="out must be a dict"):
        model.objective(params, X, y, out=[1])


def test_threads_keep_their_own_buffers():
    model = MLP([6, 16, 3])
    params = model.init(0)
    problems = [_problem(n=40 + i, seed=i) for i in range(4)]
    expected = [MLP([6, 16, 3]).objective(params, X, y) for X, y in problems]
    errors = []

    def work(i):
        try:
            for _ in range(30):
                _same(model.objective(params, *problems[i]), expected[i])
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_model_with_buffers_pickles_without_them():
    X, y = _problem()
    model = MLP([6, 8, 3])
    params = model.init(0)
    before = model.objective(params, X, y)
    copy = pickle.loads(pickle.dumps(model))
    assert "_local" not in copy.__dict__
    _same(copy.objective(params, X, y), before)
