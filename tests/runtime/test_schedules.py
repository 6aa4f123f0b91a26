"""Check learning-rate schedules against torch's closed forms and their composition rules."""

import math

import numpy as np
import pytest

from symgrad import optim, schedules


def test_constant():
    s = schedules.constant(0.3)
    assert [s(k) for k in (0, 1, 1000)] == [0.3, 0.3, 0.3]


def test_step_decay_is_torch_steplr_closed_form():
    init, step_size, gamma = 0.1, 3, 0.5
    s = schedules.step_decay(init, step_size, gamma)
    for step in range(12):
        assert s(step) == pytest.approx(init * gamma ** (step // step_size), rel=1e-15)
    assert [s(k) for k in (0, 2, 3, 5, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert schedules.step_decay(1.0, 1)(2) == pytest.approx(0.01)  # default gamma=0.1


def test_exponential():
    s = schedules.exponential(2.0, 0.9)
    assert s(0) == 2.0
    assert s(3) == pytest.approx(2.0 * 0.9 * 0.9 * 0.9, rel=1e-15)


def test_cosine_annealing_is_torch_closed_form():
    init, t_max, eta_min = 0.1, 10, 0.001
    s = schedules.cosine_annealing(init, t_max, eta_min)
    for step in range(25):
        expected = eta_min + (init - eta_min) * (1 + math.cos(math.pi * step / t_max)) / 2
        assert s(step) == pytest.approx(expected, rel=1e-15)
    assert s(0) == pytest.approx(init)
    assert s(5) == pytest.approx((init + eta_min) / 2)
    assert s(10) == pytest.approx(eta_min)
    assert s(20) == pytest.approx(init)  # periodic, like torch's closed form


def test_linear_warmup_is_torch_linearlr_times_schedule():
    s = schedules.linear_warmup(0.3, warmup_steps=4, start_factor=0.25)
    expected = [0.3 * (0.25 + 0.75 * min(k, 4) / 4) for k in range(7)]
    assert [s(k) for k in range(7)] == pytest.approx(expected, rel=1e-15)
    assert s(0) == pytest.approx(0.075) and s(4) == s(100) == pytest.approx(0.3)
    assert schedules.linear_warmup(0.3, 3)(0) == pytest.approx(0.1)  # default 1/3, as torch
    assert schedules.linear_warmup(0.5, 10, start_factor=0.0)(0) == 0.0


def test_linear_warmup_wraps_a_schedule_at_the_same_step():
    base = schedules.exponential(1.0, 0.5)
    s = schedules.linear_warmup(base, 2, start_factor=0.5)
    assert [s(k) for k in range(4)] == pytest.approx([1.0 * 0.5, 0.5 * 0.75, 0.25, 0.125])


def test_join_restarts_each_schedule_at_its_boundary():
    warm = schedules.linear_warmup(1.0, 2, start_factor=0.0)
    decay = schedules.exponential(1.0, 0.5)
    s = schedules.join([warm, decay, 0.01], [2, 5])
    got = [s(k) for k in range(8)]
    assert got == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.25, 0.01, 0.01, 0.01])


def test_arithmetic_composition():
    a = schedules.step_decay(1.0, 2, 0.5)
    b = schedules.constant(0.1)
    assert [(a * 0.2)(k) for k in range(4)] == pytest.approx([0.2, 0.2, 0.1, 0.1])
    assert (0.2 * a)(3) == pytest.approx(0.1)
    assert (a + b)(2) == pytest.approx(0.6)
    assert (1 + a)(0) == pytest.approx(2.0)
    assert (a * (lambda k: k))(3) == pytest.approx(1.5)
    assert "step_decay" in repr(a * 0.2)


def test_as_schedule():
    assert schedules.as_schedule(0.5)(7) == 0.5
    assert schedules.as_schedule(lambda k: 1.0 / (k + 1))(3) == 0.25
    s = schedules.cosine_annealing(1.0, 5)
    assert schedules.as_schedule(s) is s
    with pytest.raises(TypeError):
        schedules.as_schedule("fast")


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: schedules.step_decay(0.1, 0), r"step_decay: step_size"),
        (lambda: schedules.step_decay(0.1, 2.5), r"step_decay: step_size"),
        (lambda: schedules.exponential(0.1, -0.5), r"exponential: gamma"),
        (lambda: schedules.cosine_annealing(0.1, 0), r"cosine_annealing: t_max"),
        (lambda: schedules.constant(float("inf")), r"constant: value"),
        (lambda: schedules.linear_warmup(0.1, -1), r"linear_warmup: warmup_steps"),
        (lambda: schedules.linear_warmup(0.1, 5, start_factor=2), r"start_factor"),
        (lambda: schedules.join([0.1, 0.2], []), r"join: need len"),
        (lambda: schedules.join([0.1, 0.2, 0.3], [5, 2]), r"non-decreasing"),
    ],
)
def test_invalid_arguments(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


def test_steps_must_be_non_negative_integers():
    s = schedules.constant(1.0)
    assert s(np.int64(3)) == 1.0
    with pytest.raises(ValueError, match="step must be >= 0"):
        s(-1)
    with pytest.raises(TypeError, match="integer"):
        s(1.5)


def test_schedule_drives_optimizer_and_fit_like_steps():
    # lr for update k is schedule(k): SGD on f(w) = w**2 / 2 multiplies w by (1 - lr_k).
    s = schedules.join([schedules.constant(0.5), schedules.exponential(0.25, 0.5)], [2])
    opt = optim.sgd(lr=s)
    w = {"w": np.array([8.0])}
    state = opt.init(w)
    for _ in range(4):
        w, state = opt.update({"w": w["w"]}, state, w)
    expected = 8.0 * (1 - 0.5) * (1 - 0.5) * (1 - 0.25) * (1 - 0.125)
    assert w["w"][0] == pytest.approx(expected, rel=1e-15)
    assert [opt.learning_rate(k) for k in range(4)] == [0.5, 0.5, 0.25, 0.125]
