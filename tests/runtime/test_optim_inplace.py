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


@pytest.mark.parametrize("layout", ["separate", "joined", "params_only", "grads_only"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_joined_leaves_give_the_same_bits_as_separate_ones(case, layout):
    """Params and grads laid out by optim.join take one ufunc call per operation; any mix of
    joined and separate leaves gives the pure update's numbers."""
    opt = CASES[case]()
    rng = np.random.default_rng(2)
    pure = _params(rng, np.float64)
    fast = optim.join(pure) if layout in ("joined", "params_only") else dict(pure)
    fast = {k: v.copy() if layout in ("separate", "grads_only") else v for k, v in fast.items()}
    if layout in ("joined", "params_only"):
        assert optim._inplace.joined(list(fast.values())) is not None
    s_pure, s_fast = opt.init(pure), opt.init(fast)
    for _ in range(5):
        grads = {k: rng.normal(size=np.shape(v)) for k, v in pure.items()}
        pure, s_pure = opt.update(grads, s_pure, pure)
        given = optim.join(grads) if layout in ("joined", "grads_only") else grads
        s_fast = optim.step_in_place(opt, given, s_fast, fast)
        for k in pure:
            np.testing.assert_array_equal(fast[k], pure[k])


def test_init_joins_the_moment_buffers_and_the_state_stays_a_pytree():
    opt = optim.adam()
    params = {"W": np.ones((3, 2)), "b": np.zeros(2)}
    state = opt.init(params)
    adam = optim.find_state(state, optim.AdamState)
    for buffers in (adam.exp_avg, adam.exp_avg_sq):
        assert list(buffers) == ["W", "b"]
        assert optim._inplace.joined(list(buffers.values())) is not None
        assert all(np.all(v == 0) and v.shape == params[k].shape for k, v in buffers.items())
    mixed = {"W": np.ones(2), "b": np.zeros(2, dtype=np.float32)}  # two dtypes: not joined
    assert optim.join(mixed) is mixed


def test_joined_needs_the_views_join_made_in_order():
    params = optim.join({"a": np.arange(4.0), "b": np.ones((2, 2))})
    a, b = params["a"], params["b"]
    assert optim._inplace.joined([a, b]) is a.base
    assert optim._inplace.joined([b, a]) is None  # out of order
    assert optim._inplace.joined([a]) is None  # part of it
    assert optim._inplace.joined([a[:2].reshape(2), b]) is None  # another view of it


@pytest.mark.parametrize("betas", [(0.5, 0.6), (0.9, 0.999)])
def test_adam_past_exact_bias_corrections_keeps_the_pure_numbers(betas):
    """With b1 = 0.5 (b2 = 0.6) the bias corrections are exactly 1.0 from step 54 (73), and
    the fast path skips dividing by them: the numbers stay the pure update's."""
    opt = optim.adam(lr=1e-2, betas=betas)
    rng = np.random.default_rng(5)
    pure = {"w": rng.normal(size=5)}
    fast = optim.join(pure)
    s_pure, s_fast = opt.init(pure), opt.init(fast)
    for _ in range(90):
        grads = {"w": rng.normal(size=5)}
        pure, s_pure = opt.update(grads, s_pure, pure)
        s_fast = optim.step_in_place(opt, grads, s_fast, fast)
    assert 1 - betas[0] ** 90 == 1.0 or betas[0] == 0.9
    np.testing.assert_array_equal(fast["w"], pure["w"])


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


@pytest.mark.parametrize("case", ["adam", "sgd_momentum"])
def test_grads_keyed_in_another_order_meet_their_own_params(case):
    """Dict grads are read by key, in the params' order, as the pure update reads them."""
    opt = CASES[case]()
    pure = {"a": np.ones(3), "b": np.full(3, 2.0)}
    fast = {k: v.copy() for k, v in pure.items()}
    s_pure, s_fast = opt.init(pure), opt.init(fast)
    for step in range(3):
        grads = {"b": np.full(3, 0.5 + step), "a": np.full(3, -1.0)}  # same shapes, reversed
        pure, s_pure = opt.update(grads, s_pure, pure)
        s_fast = optim.step_in_place(opt, grads, s_fast, fast)
        for k in pure:
            np.testing.assert_array_equal(fast[k], pure[k])
    assert fast["a"][0] > 1.0 > 0.0 and fast["b"][0] < 2.0  # each moved by its own gradient


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
