"""The named optimizers' in-place fast path gives exactly the pure update's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad import optim
from symgrad.schedules import cosine_annealing

CASES = {
    "adam": lambda: optim.adam(lr=1e-2),
    "adam_l2": lambda: optim.adam(lr=1e-2, weight_decay=0.1),
    "adam_b1_small": lambda: optim.adam(lr=1e-2, betas=(0.3, 0.9)),
    "adamw": lambda: optim.adamw(lr=1e-2, weight_decay=0.05),
    "adamw_schedule": lambda: optim.adamw(lr=cosine_annealing(0.1, 20), weight_decay=0.05),
    "sgd": lambda: optim.sgd(lr=0.1),
    "sgd_l2": lambda: optim.sgd(lr=0.1, weight_decay=0.01),
    "sgd_momentum": lambda: optim.sgd(lr=0.1, momentum=0.9),
    "sgd_dampened": lambda: optim.sgd(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
    "sgd_nesterov": lambda: optim.sgd(lr=0.1, momentum=0.9, nesterov=True),
}


def _params(rng, dtype):
    return {
        "W0": rng.normal(size=(6, 4)).astype(dtype),
        "b0": rng.normal(size=4).astype(dtype),
        "W1": rng.normal(size=(4, 3)).astype(dtype),
        "b1": np.asarray(rng.normal(), dtype=dtype),  # a 0-d leaf
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_in_place_steps_equal_pure_updates_bit_for_bit(case, dtype):
    opt = CASES[case]()
    assert opt.step is not None
    rng = np.random.default_rng(1)
    pure = _params(rng, dtype)
    fast = {k: v.copy() for k, v in pure.items()}
    s_pure, s_fast = opt.init(pure), opt.init(fast)
    for _ in range(6):
        grads = {k: rng.normal(size=np.shape(v)).astype(dtype) for k, v in pure.items()}
        pure, s_pure = opt.update(grads, s_pure, pure)
        s_fast = optim.step_in_place(opt, grads, s_fast, fast)
        for k in pure:
            np.testing.assert_array_equal(fast[k], pure[k])
            assert fast[k].dtype == pure[k].dtype
    assert s_fast.count == s_pure.count == 6
    # the states are interchangeable: the pure update continues from the in-place state
    grads = {k: np.ones_like(v) for k, v in pure.items()}
    a, _ = opt.update(grads, s_fast, fast)
    b, _ = opt.update(grads, s_pure, pure)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize(
    "opt",
    [
        optim.adam(amsgrad=True),
        optim.adam(maximize=True),
        optim.sgd(weight_decay=0.1, weight_decay_mask={"W": True, "b": False}),
        optim.rmsprop(),
    ],
)
def test_other_optimizers_fall_back_to_the_pure_update(opt):
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    grads = {"W": np.full((2, 2), 0.5), "b": np.ones(2)}
    expected, _ = opt.update(grads, opt.init(params), params)
    state = optim.step_in_place(opt, grads, opt.init(params), params)
    assert state.count == 1
    for k in params:
        np.testing.assert_array_equal(params[k], expected[k])


def test_foreign_or_mismatched_leaves_take_the_pure_path():
    opt = optim.adam(lr=0.1)
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    grads = {"W": np.ones((2, 2), dtype=np.float32), "b": np.arange(2)}  # float32, int: not fast
    expected, _ = opt.update(grads, opt.init(params), params)
    optim.step_in_place(opt, grads, opt.init(params), params)
    for k in params:
        np.testing.assert_array_equal(params[k], expected[k])


@pytest.mark.parametrize(
    "make, cls, kwargs",
    [
        (lambda: optim.adam(lr=1e-2, weight_decay=0.1), "Adam", {"lr": 1e-2, "weight_decay": 0.1}),
        (lambda: optim.adamw(lr=1e-2), "AdamW", {"lr": 1e-2}),
        (
            lambda: optim.sgd(lr=0.1, momentum=0.9, nesterov=True),
            "SGD",
            {"lr": 0.1, "momentum": 0.9, "nesterov": True},
        ),
    ],
)
def test_in_place_steps_follow_torch_foreach(make, cls, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    params = _params(rng, np.float64)
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in params.values()]
    ref = getattr(torch.optim, cls)(tensors, foreach=True, **kwargs)
    opt = make()
    state = opt.init(params)
    for _ in range(8):
        grads = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
        for t, g in zip(tensors, grads.values(), strict=True):
            t.grad = torch.tensor(g)
        ref.step()
        state = optim.step_in_place(opt, grads, state, params)
    for t, p in zip(tensors, params.values(), strict=True):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12, atol=1e-12)


def _fit_both(opt, **kwargs):
    import symgrad as sg
    from symgrad.models import MLP

    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, size=64)
    model = MLP([4, 8, 3], activation="tanh")
    runs = []
    for o in (opt, opt._replace(step=None)):  # the fast path, then the pure update
        seen = []
        kwargs["callbacks"] = [lambda epoch, info, seen=seen: seen.append(info.params)]
        res = sg.fit(model.objective, model.init(0), X, y, optimizer=o, progress=False, **kwargs)
        runs.append((res, seen))
    return runs


@pytest.mark.parametrize("case", ["adam", "adamw", "sgd_nesterov"])
def test_fit_takes_the_fast_path_with_the_same_numbers(case):
    (fast, seen_fast), (pure, seen_pure) = _fit_both(
        CASES[case](), epochs=4, batch_size=16, validation=None
    )
    assert fast.history.loss == pure.history.loss
    for k in pure.params:
        np.testing.assert_array_equal(fast.params[k], pure.params[k])
    # callbacks got snapshots, not the live buffers the fast path keeps overwriting
    assert len(seen_fast) == 4
    for a, b in zip(seen_fast, seen_pure, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_fit_undoes_an_in_place_step_that_overflows():
    import symgrad as sg

    def objective(params, X, y):
        return float(np.sum(params["w"] ** 2)), {"w": np.full_like(params["w"], 1e300)}

    runs = []
    for opt in (optim.sgd(lr=1e10), optim.sgd(lr=1e10)._replace(step=None)):
        start = {"w": np.ones(3)}
        with np.errstate(all="ignore"):
            runs.append(sg.fit(objective, start, np.zeros((4, 1)), None, optimizer=opt,
                               epochs=3, on_non_finite="stop", progress=False))  # fmt: skip
    fast, pure = runs
    assert fast.stop_reason == pure.stop_reason == "non_finite"
    np.testing.assert_array_equal(fast.params["w"], pure.params["w"])
    assert np.all(np.isfinite(fast.params["w"]))
