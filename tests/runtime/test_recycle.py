"""A boosting objective writes its previous (grad, hess) again only when no one holds them.

XGBoost and LightGBM copy an objective's results before the next round, so on large inputs
the objective writes the same two arrays every round (no page faults on fresh memory). A
result the caller keeps, or any view of it, must never change.
"""

from __future__ import annotations

import threading

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from symgrad import boosting
from symgrad.recycle import Recycler

N = 200_003  # more than one block of symgrad.blocked: the recycled path


def _data(seed: int, n: int = N, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(scale=4.0, size=n).astype(dtype), (rng.random(n) < 0.4).astype(dtype)


def _fresh(yhat: np.ndarray, y: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray]:
    """The numbers from an objective that has never been called (nothing to recycle)."""
    return boosting.xgboost("binary_cross_entropy_with_logits", **options).grad_hess(yhat, y)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_dropped_result_is_written_again_with_the_right_numbers(threads):
    obj = boosting.xgboost("binary_cross_entropy_with_logits", threads=threads)
    z0, y0 = _data(0)
    g, h = obj.grad_hess(z0, y0)
    where = (g.ctypes.data, h.ctypes.data)
    del g, h
    z1, y1 = _data(1)
    g, h = obj.grad_hess(z1, y1)
    assert (g.ctypes.data, h.ctypes.data) == where  # the same memory, written again
    want = _fresh(z1, y1, threads=threads)
    assert g.tobytes() == want[0].tobytes() and h.tobytes() == want[1].tobytes()


@pytest.mark.parametrize("hold", ["grad", "hess", "view of grad", "view of hess", "both"])
def test_a_result_the_caller_keeps_is_never_written_again(hold):
    obj = boosting.lightgbm("binary_cross_entropy_with_logits", threads=1)
    z0, y0 = _data(2)
    g, h = obj.grad_hess(z0, y0)
    kept = {
        "grad": (g,),
        "hess": (h,),
        "view of grad": (g[5::7],),
        "view of hess": (h.reshape(1, -1)[:, 3:],),
        "both": (g, h[::2]),
    }[hold]
    before = [k.copy() for k in kept]
    del g, h
    for seed in (3, 4):  # twice: the second call must not take what the first one kept back
        z, y = _data(seed)
        got = obj.grad_hess(z, y)
        want = _fresh(z, y)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))
        for k, b in zip(kept, before, strict=True):
            np.testing.assert_array_equal(k, b)
            assert not any(np.shares_memory(k, a) for a in got)
        del got


def test_a_new_size_or_dtype_gets_new_arrays():
    obj = boosting.xgboost("binary_cross_entropy_with_logits", threads=1)
    obj.grad_hess(*_data(5))
    for z, y in (_data(6, N + 1), _data(7, N, np.float32), _data(8)):
        got = obj.grad_hess(z, y)
        want = _fresh(z, y)
        assert got[0].dtype == z.dtype and got[0].shape == z.shape
        assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))


def test_threads_sharing_one_objective_never_get_each_others_arrays():
    # the holder is emptied when taken: two callers at once cannot both write one pair
    obj = boosting.xgboost("binary_cross_entropy_with_logits", threads=1)
    inputs = [_data(20 + i, 70_000) for i in range(4)]
    wants = [_fresh(z, y) for z, y in inputs]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(15):
            got = obj.grad_hess(*inputs[i])
            if any(a.tobytes() != b.tobytes() for a, b in zip(got, wants[i], strict=True)):
                errors.append(f"caller {i} got another caller's numbers")
            del got

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_xgboost_and_lightgbm_rounds_write_one_pair_and_train_as_before():
    # the boosters copy (grad, hess) before the next round: every round after the first
    # writes the first round's arrays, and the models are those of an objective that never
    # recycles (one whose results are copied before they are handed over)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(100_000, 5))
    y = (X @ rng.normal(size=5) + rng.logistic(size=100_000) > 0).astype(float)
    obj = boosting.xgboost("binary_cross_entropy_with_logits")
    seen: list[int] = []

    def watched(preds, dtrain):
        g, h = obj.objective(preds, dtrain)
        seen.append(g.ctypes.data)
        return g, h

    def copied(preds, dtrain):
        g, h = boosting.xgboost("binary_cross_entropy_with_logits").objective(preds, dtrain)
        return g.copy(), h.copy()

    d = xgb.DMatrix(X, y)
    params = {"max_depth": 4, "eta": 0.3, "seed": 0, "tree_method": "hist", "nthread": 1}
    params["base_score"] = obj.base_score(y)
    a, b = (
        xgb.train(params, d, 5, obj=f).predict(d, output_margin=True) for f in (watched, copied)
    )
    assert len(seen) == 5 and len(set(seen)) == 1
    np.testing.assert_array_equal(a, b)

    lobj = boosting.lightgbm("binary_cross_entropy_with_logits")
    seen.clear()

    def lwatched(preds, train_set):
        g, h = lobj.objective(preds, train_set)
        seen.append(g.ctypes.data)
        return g, h

    def lcopied(preds, train_set):
        fresh = boosting.lightgbm("binary_cross_entropy_with_logits")
        g, h = fresh.objective(preds, train_set)
        return g.copy(), h.copy()

    lparams = {"verbose": -1, "num_threads": 1, "seed": 0, "deterministic": True}
    init = lobj.init_score(y)
    models = []
    for f in (lwatched, lcopied):
        data = lgb.Dataset(X, y, init_score=init)
        models.append(lgb.train({**lparams, "objective": f}, data, 5).predict(X, raw_score=True))
    assert len(seen) == 5 and len(set(seen)) == 1
    np.testing.assert_array_equal(models[0], models[1])


def test_the_recycler_keeps_only_distinct_owning_writeable_arrays():
    r = Recycler()
    a, b = np.zeros(10), np.zeros(10)
    r.keep(a, b)
    del a, b
    got = r.take(2, 10, np.dtype(np.float64))
    assert got is not None and all(x.shape == (10,) for x in got)
    assert r.take(2, 10, np.dtype(np.float64)) is None  # taking empties it
    c = np.zeros(10)
    r.keep(c, c)  # one array twice: never two outputs in one memory
    del c
    assert r.take(2, 10, np.dtype(np.float64)) is None
    frozen = np.zeros(10)
    frozen.flags.writeable = False
    r.keep(frozen, np.zeros(10))
    del frozen
    assert r.take(2, 10, np.dtype(np.float64)) is None
    outside = bytearray(80)  # memory numpy does not own: someone else's buffer
    r.keep(np.frombuffer(outside), np.zeros(10))
    assert r.take(2, 10, np.dtype(np.float64)) is None
    r.keep(np.zeros(10), np.zeros(10))
    assert r.take(2, 11, np.dtype(np.float64)) is None  # wrong size
    r.keep(np.zeros(10), np.zeros(10))
    assert r.take(2, 10, np.dtype(np.float32)) is None  # wrong dtype
