"""Check the fit loop: convergence, seeded batching, stopping rules, guards and reporting."""

import importlib
import math

import numpy as np
import pytest

from symgrad import optim, schedules
from symgrad.fit import FitResult, NonFiniteError, fit


def lsq(params, X, y):
    """Return 0.5 * mean((X w + b - y)^2) and its gradient, written by hand."""
    r = X @ params["w"] + params["b"] - y
    return 0.5 * np.mean(r**2), {"w": X.T @ r / len(y), "b": np.array(np.mean(r))}


def make_data(n=120, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.7 + 0.1 * rng.normal(size=n)
    return X, y


def init_params():
    return {"w": np.zeros(3), "b": np.array(0.0)}


def test_full_batch_gd_reaches_normal_equation_solution():
    X, y = make_data()
    A = np.column_stack([X, np.ones(len(y))])
    exact = np.linalg.solve(A.T @ A, A.T @ y)
    params = init_params()
    res = fit(lsq, params, X, y, optimizer=optim.sgd(lr=0.5), epochs=400, progress=False)
    assert isinstance(res, FitResult)
    assert np.allclose(np.append(res.params["w"], res.params["b"]), exact, atol=1e-10)
    assert res.stop_reason == "epochs" and res.n_epochs == 400 and res.n_steps == 400
    assert len(res.history) == 400
    arrays = res.history.as_arrays()
    assert set(arrays) >= {"loss", "val_loss", "grad_norm", "lr", "seconds", "epoch"}
    assert all(len(v) == 400 for v in arrays.values())
    assert np.all(np.diff(arrays["loss"]) <= 1e-15)  # GD on a convex quadratic
    assert np.all(np.isnan(arrays["val_loss"])) and np.all(arrays["lr"] == 0.5)
    assert arrays["epoch"].tolist() == list(range(400))
    # full batch: the recorded loss and gradient norm are those at the epoch's start params
    loss0, g0 = lsq(init_params(), X, y)
    assert arrays["loss"][0] == loss0
    assert arrays["grad_norm"][0] == pytest.approx(math.sqrt(np.sum(g0["w"] ** 2) + g0["b"] ** 2))
    assert params["w"].tolist() == [0.0, 0.0, 0.0] and params["b"] == 0.0  # not mutated
    assert res.history.rows()[0]["loss"] == loss0


def test_optimizer_by_name():
    X, y = make_data()
    res = fit(lsq, init_params(), X, y, optimizer="adam", epochs=3, progress=False)
    assert res.n_steps == 3


def test_minibatches_are_seeded_and_bit_identical():
    X, y = make_data(n=100)
    kw = dict(optimizer=optim.adam(lr=0.05), epochs=5, batch_size=32, progress=False)
    a = fit(lsq, init_params(), X, y, seed=3, **kw)
    b = fit(lsq, init_params(), X, y, seed=3, **kw)
    c = fit(lsq, init_params(), X, y, seed=4, **kw)
    assert a.n_steps == 5 * 4  # ceil(100 / 32) batches, the last one of 4 rows
    for k in ("w", "b"):
        assert np.array_equal(a.params[k], b.params[k])
    assert a.history.loss == b.history.loss and a.history.grad_norm == b.history.grad_norm
    assert not np.array_equal(a.params["w"], c.params["w"])
    # without shuffling the seed is irrelevant
    d = fit(lsq, init_params(), X, y, seed=3, shuffle=False, **kw)
    e = fit(lsq, init_params(), X, y, seed=9, shuffle=False, **kw)
    assert np.array_equal(d.params["w"], e.params["w"])
    assert not np.array_equal(d.params["w"], a.params["w"])


def test_epoch_loss_is_batch_size_weighted_mean():
    X, y = make_data(n=10)
    calls = []

    def recording(params, Xb, yb):
        loss, grads = lsq(params, Xb, yb)
        calls.append((loss, len(yb), grads))
        return loss, grads

    res = fit(recording, init_params(), X, y, optimizer=optim.sgd(lr=0.1), epochs=1,
              batch_size=4, progress=False)  # fmt: skip
    assert [n for _, n, _ in calls] == [4, 4, 2]
    expected = (calls[0][0] * 4 + calls[1][0] * 4 + calls[2][0] * 2) / 10
    assert res.history.loss[0] == pytest.approx(expected, rel=1e-15)
    gw = sum(g["w"] * n for _, n, g in calls) / 10
    gb = sum(g["b"] * n for _, n, g in calls) / 10
    assert res.history.grad_norm[0] == pytest.approx(math.sqrt(np.sum(gw**2) + gb**2))


def test_lr_history_follows_schedule_per_update():
    X, y = make_data(n=40)
    sched = schedules.step_decay(0.1, step_size=3, gamma=0.5)
    res = fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=sched), epochs=3,
              batch_size=10, shuffle=False, progress=False)  # fmt: skip
    # 4 updates per epoch; the recorded lr is the one of the epoch's last update (3, 7, 11)
    assert res.history.lr == [sched(3), sched(7), sched(11)] == [0.05, 0.025, 0.0125]
    assert res.history.n_steps == [4, 8, 12]


def test_tol_grad_norm():
    X, y = make_data()
    res = fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=0.5), epochs=1000, tol=1e-6,
              progress=False)  # fmt: skip
    assert res.stop_reason == "tol" and res.tol_mode == "grad_norm"
    assert "grad_norm" in res.message
    assert res.history.grad_norm[-1] < 1e-6 <= res.history.grad_norm[-2]
    assert res.n_epochs < 1000 and len(res.history) == res.n_epochs


def test_tol_rel_loss():
    X, y = make_data()
    res = fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=0.5), epochs=1000, tol=1e-9,
              tol_mode="rel_loss", progress=False)  # fmt: skip
    assert res.stop_reason == "tol" and res.tol_mode == "rel_loss"
    assert "rel_loss" in res.message
    loss = res.history.loss
    assert abs(loss[-1] - loss[-2]) / abs(loss[-2]) < 1e-9
    assert abs(loss[-2] - loss[-3]) / abs(loss[-3]) >= 1e-9
    assert res.n_epochs < 1000


def test_early_stopping_restores_best_params():
    # Training pulls w from 0 towards 2; validation data wants w = 1, so it improves, then worsens.
    x = np.linspace(-1, 1, 21)[:, None]
    X, y, Xv, yv = x, 2.0 * x[:, 0], x, 1.0 * x[:, 0]

    def obj(params, X, y):
        r = X @ params["w"] - y
        return 0.5 * np.mean(r**2), {"w": X.T @ r / len(y)}

    kw = dict(optimizer=optim.sgd(lr=0.5), progress=False)
    res = fit(obj, {"w": np.zeros(1)}, X, y, epochs=100, validation=(Xv, yv), patience=3, **kw)
    val = res.history.val_loss
    best = int(np.argmin(val))
    assert res.stop_reason == "early_stopping" and res.best_epoch == best
    assert 0 < best < len(val) - 1 and val[-1] > val[best]
    assert res.n_epochs == best + 1 + 3
    again = fit(obj, {"w": np.zeros(1)}, X, y, epochs=best + 1, **kw)
    assert np.array_equal(res.params["w"], again.params["w"])
    assert obj(res.params, Xv, yv)[0] == val[best]


def test_patience_needs_validation():
    X, y = make_data()
    with pytest.raises(ValueError, match="patience needs validation"):
        fit(lsq, init_params(), X, y, optimizer="sgd", epochs=2, patience=2)


def _poisoned(bad_call, what):
    """Wrap lsq so that call number ``bad_call`` returns a NaN loss or an inf gradient."""
    count = [0]

    def obj(params, X, y):
        loss, grads = lsq(params, X, y)
        count[0] += 1
        if count[0] == bad_call + 1:
            if what == "loss":
                loss = float("nan")
            else:
                grads["b"] = np.array(np.inf)
        return loss, grads

    return obj


def test_non_finite_gradient_raises_with_step_and_leaf():
    X, y = make_data(n=40)
    kw = dict(optimizer=optim.sgd(lr=0.1), epochs=10, batch_size=10, shuffle=False, progress=False)
    with pytest.raises(
        NonFiniteError, match=r"gradient leaf grads\['b'\] at epoch 1, step 5"
    ) as ei:
        fit(_poisoned(5, "grad"), init_params(), X, y, **kw)
    err = ei.value
    assert isinstance(err, FloatingPointError)
    assert (err.epoch, err.step) == (1, 5)
    res = err.result
    assert res.stop_reason == "non_finite" and res.n_steps == 5 and res.n_epochs == 1
    assert len(res.history) == 1
    clean = fit(lsq, init_params(), X, y, **{**kw, "epochs": 2})
    # the result holds the finite params from before the bad step: 5 clean updates
    ref = init_params()
    state = kw["optimizer"].init(ref)
    for i in range(5):
        sl = slice(10 * (i % 4), 10 * (i % 4) + 10)
        ref, state = kw["optimizer"].update(lsq(ref, X[sl], y[sl])[1], state, ref)
    assert np.array_equal(res.params["w"], ref["w"]) and np.all(np.isfinite(res.params["w"]))
    assert not np.array_equal(res.params["w"], clean.params["w"])


def test_non_finite_loss_stop_mode_returns_result():
    X, y = make_data()
    res = fit(_poisoned(3, "loss"), init_params(), X, y, optimizer=optim.sgd(lr=0.1), epochs=10,
              on_non_finite="stop", progress=False)  # fmt: skip
    assert res.stop_reason == "non_finite"
    assert "non-finite loss at epoch 3, step 3" in res.message
    assert res.n_steps == 3 and res.n_epochs == 3
    assert not res.converged and res.warnings == (res.message,)  # failure is not convergence


def test_divergence_is_caught_before_params_overflow():
    X, y = make_data()
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError) as ei:
        fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=1e3), epochs=500, progress=False)
    res = ei.value.result
    for leaf in (res.params["w"], res.params["b"]):
        assert np.all(np.isfinite(leaf))
    assert "step" in str(ei.value) and res.stop_reason == "non_finite"


def test_callbacks_see_progress_and_can_stop():
    X, y = make_data()
    seen = []

    def watcher(epoch, info):
        seen.append((epoch, len(info.history), info.stop_reason, info.n_steps))

    def stopper(epoch, info):
        return np.bool_(epoch == 3)

    res = fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=0.1), epochs=50,
              callbacks=[stopper, watcher], progress=False)  # fmt: skip
    assert res.stop_reason == "callback" and res.n_epochs == 4
    # the watcher, listed after the stopper, still saw the last epoch
    assert seen == [(e, e + 1, "running", e + 1) for e in range(4)]


def test_progress_false_prints_nothing(capsys):
    X, y = make_data()
    fit(lsq, init_params(), X, y, optimizer="sgd", epochs=5, progress=False)
    fit(lsq, init_params(), X, y, optimizer="sgd", epochs=5)  # stderr is not a TTY here
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_true_draws_a_tqdm_bar(capsys):
    pytest.importorskip("tqdm")
    X, y = make_data()
    fit(lsq, init_params(), X, y, optimizer="sgd", epochs=5, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "5/5" in err


def test_zero_epochs_returns_a_copy_of_the_start():
    X, y = make_data()
    params = init_params()
    res = fit(lsq, params, X, y, optimizer="sgd", epochs=0, progress=False)
    assert res.n_epochs == 0 and res.n_steps == 0 and len(res.history) == 0
    assert res.params["w"] is not params["w"] and np.array_equal(res.params["w"], params["w"])


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(epochs=-1), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(tol=-1.0), "tol"),
        (dict(tol_mode="loss"), "tol_mode"),
        (dict(on_non_finite="ignore"), "on_non_finite"),
        (dict(validation=(1, 2, 3)), "validation"),
    ],
)
def test_invalid_fit_arguments(kwargs, pattern):
    X, y = make_data()
    args = dict(optimizer="sgd", epochs=2, progress=False) | kwargs
    with pytest.raises(ValueError, match=pattern):
        fit(lsq, init_params(), X, y, **args)


def test_fit_accepts_a_chain_with_clipping_and_ema():
    X, y = make_data()
    tx = optim.chain(optim.clip_by_global_norm(0.1), optim.sgd(lr=0.5), optim.ema_params(0.9))
    res = fit(lsq, init_params(), X, y, optimizer=tx, epochs=5, progress=False)
    # the same updates, spelled out with the optimizer the chain wraps into
    opt = optim.as_optimizer(tx)
    ref, state = init_params(), opt.init(init_params())
    for _ in range(5):
        ref, state = opt.update(lsq(ref, X, y)[1], state, ref)
    assert np.array_equal(res.params["w"], ref["w"]) and np.array_equal(res.params["b"], ref["b"])
    assert min(res.history.grad_norm) > 0.1  # so every step was clipped
    plain = fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=0.5), epochs=5, progress=False)
    assert not np.allclose(plain.params["w"], res.params["w"])
    assert np.all(np.isnan(res.history.lr))  # a bare chain records no learning rate
    ema = optim.find_state(res.opt_state, optim.EmaParamsState)
    assert ema.count == 5 and not np.array_equal(ema.ema["w"], res.params["w"])


def test_stop_rules_table_order():
    fit_module = importlib.import_module("symgrad.fit")  # symgrad.fit is also the function
    names = [rule.__name__ for rule in fit_module._STOP_RULES]
    assert names == ["_stop_by_callback", "_stop_by_tol", "_stop_by_patience"]
    # a callback and tol that both fire on the same epoch: the callback wins
    X, y = make_data()
    res = fit(lsq, init_params(), X, y, optimizer=optim.sgd(lr=0.5), epochs=50, tol=1e9,
              callbacks=[lambda e, info: True], progress=False)  # fmt: skip
    assert res.stop_reason == "callback" and res.n_epochs == 1
