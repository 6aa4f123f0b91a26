"""Check each optimizer against torch.optim's documented update rules, worked by hand."""

import copy
import pickle

import numpy as np
import pytest
import torch_fixtures
from numpy.testing import assert_allclose

from symgrad import optim, schedules, tree

# The 2-parameter problem: f(w) = 0.5 * sum(C * w**2), so grad f(w) = C * w.
C = np.array([4.0, 0.25])
W0 = np.array([1.0, -2.0])
RTOL = 1e-13


def grad(w):
    return C * w


def run(opt, n_steps):
    """Return the iterates w_1..w_n of ``opt`` on the problem, starting at W0."""
    params = {"w": W0.copy()}
    state = opt.init(params)
    out = []
    for _ in range(n_steps):
        params, state = opt.update({"w": grad(params["w"])}, state, params)
        out.append(params["w"])
    return np.array(out)


# ----------------------------------------------------------------------------- SGD


def test_sgd_plain():
    lr = 0.1
    w1 = W0 - lr * grad(W0)
    w2 = w1 - lr * grad(w1)
    w3 = w2 - lr * grad(w2)
    assert_allclose(run(optim.sgd(lr=lr), 3), [w1, w2, w3], rtol=RTOL)


def test_sgd_momentum_first_buffer_is_the_gradient():
    lr, mu = 0.1, 0.9
    b1 = grad(W0)  # first step: buffer = g, no dampening
    w1 = W0 - lr * b1
    b2 = mu * b1 + grad(w1)
    w2 = w1 - lr * b2
    b3 = mu * b2 + grad(w2)
    w3 = w2 - lr * b3
    assert_allclose(run(optim.sgd(lr=lr, momentum=mu), 3), [w1, w2, w3], rtol=RTOL)


def test_sgd_nesterov():
    lr, mu = 0.1, 0.9
    g1 = grad(W0)
    b1 = g1
    w1 = W0 - lr * (g1 + mu * b1)
    g2 = grad(w1)
    b2 = mu * b1 + g2
    w2 = w1 - lr * (g2 + mu * b2)
    g3 = grad(w2)
    b3 = mu * b2 + g3
    w3 = w2 - lr * (g3 + mu * b3)
    opt = optim.sgd(lr=lr, momentum=mu, nesterov=True)
    assert_allclose(run(opt, 3), [w1, w2, w3], rtol=RTOL)


def test_sgd_dampening_weight_decay_maximize():
    lr, mu, damp, wd = 0.05, 0.8, 0.3, 0.1
    g1 = -grad(W0) + wd * W0
    b1 = g1  # dampening is not applied on the first step
    w1 = W0 - lr * b1
    g2 = -grad(w1) + wd * w1
    b2 = mu * b1 + (1 - damp) * g2
    w2 = w1 - lr * b2
    g3 = -grad(w2) + wd * w2
    b3 = mu * b2 + (1 - damp) * g3
    w3 = w2 - lr * b3
    opt = optim.sgd(lr=lr, momentum=mu, dampening=damp, weight_decay=wd, maximize=True)
    assert_allclose(run(opt, 3), [w1, w2, w3], rtol=RTOL)


# ----------------------------------------------------------------------------- Adagrad


def test_adagrad_lr_decay_initial_accumulator_weight_decay():
    lr, lr_decay, init_acc, wd, eps = 0.5, 0.1, 0.3, 0.05, 1e-10
    s0 = np.full(2, init_acc)
    g1 = grad(W0) + wd * W0
    s1 = s0 + g1**2
    w1 = W0 - lr / (1 + 0 * lr_decay) * g1 / (np.sqrt(s1) + eps)
    g2 = grad(w1) + wd * w1
    s2 = s1 + g2**2
    w2 = w1 - lr / (1 + 1 * lr_decay) * g2 / (np.sqrt(s2) + eps)
    g3 = grad(w2) + wd * w2
    s3 = s2 + g3**2
    w3 = w2 - lr / (1 + 2 * lr_decay) * g3 / (np.sqrt(s3) + eps)
    opt = optim.adagrad(
        lr=lr, lr_decay=lr_decay, initial_accumulator_value=init_acc, weight_decay=wd
    )
    assert_allclose(run(opt, 3), [w1, w2, w3], rtol=RTOL)


def test_adagrad_maximize():
    lr, eps = 0.1, 1e-10
    g1 = -grad(W0)
    s1 = g1**2
    w1 = W0 - lr * g1 / (np.sqrt(s1) + eps)
    g2 = -grad(w1)
    s2 = s1 + g2**2
    w2 = w1 - lr * g2 / (np.sqrt(s2) + eps)
    assert_allclose(run(optim.adagrad(lr=lr, maximize=True), 2), [w1, w2], rtol=RTOL)


# ----------------------------------------------------------------------------- Adadelta


@pytest.mark.parametrize(
    "lr, rho, eps, wd, maximize",
    [(1.0, 0.9, 1e-6, 0.0, False), (0.5, 0.8, 1e-4, 0.1, True)],
)
def test_adadelta(lr, rho, eps, wd, maximize):
    sign = -1.0 if maximize else 1.0
    sq, acc, w = np.zeros(2), np.zeros(2), W0
    expected = []
    g = sign * grad(w) + wd * w  # step 1
    sq1 = rho * sq + (1 - rho) * g**2
    d1 = np.sqrt(acc + eps) / np.sqrt(sq1 + eps) * g
    acc1 = rho * acc + (1 - rho) * d1**2
    w1 = w - lr * d1
    expected.append(w1)
    g = sign * grad(w1) + wd * w1  # step 2
    sq2 = rho * sq1 + (1 - rho) * g**2
    d2 = np.sqrt(acc1 + eps) / np.sqrt(sq2 + eps) * g
    acc2 = rho * acc1 + (1 - rho) * d2**2
    w2 = w1 - lr * d2
    expected.append(w2)
    g = sign * grad(w2) + wd * w2  # step 3
    sq3 = rho * sq2 + (1 - rho) * g**2
    d3 = np.sqrt(acc2 + eps) / np.sqrt(sq3 + eps) * g
    w3 = w2 - lr * d3
    expected.append(w3)
    opt = optim.adadelta(lr=lr, rho=rho, eps=eps, weight_decay=wd, maximize=maximize)
    assert_allclose(run(opt, 3), expected, rtol=RTOL)


# ----------------------------------------------------------------------------- RMSprop


def test_rmsprop_plain():
    lr, alpha, eps = 0.01, 0.99, 1e-8
    g1 = grad(W0)
    v1 = (1 - alpha) * g1**2
    w1 = W0 - lr * g1 / (np.sqrt(v1) + eps)
    g2 = grad(w1)
    v2 = alpha * v1 + (1 - alpha) * g2**2
    w2 = w1 - lr * g2 / (np.sqrt(v2) + eps)
    assert_allclose(run(optim.rmsprop(), 2), [w1, w2], rtol=RTOL)


def test_rmsprop_centered_momentum_weight_decay():
    lr, alpha, eps, mu, wd = 0.02, 0.9, 1e-8, 0.7, 0.1
    g1 = grad(W0) + wd * W0
    v1 = (1 - alpha) * g1**2
    ga1 = (1 - alpha) * g1
    b1 = g1 / (np.sqrt(v1 - ga1**2) + eps)
    w1 = W0 - lr * b1
    g2 = grad(w1) + wd * w1
    v2 = alpha * v1 + (1 - alpha) * g2**2
    ga2 = alpha * ga1 + (1 - alpha) * g2
    b2 = mu * b1 + g2 / (np.sqrt(v2 - ga2**2) + eps)
    w2 = w1 - lr * b2
    g3 = grad(w2) + wd * w2
    v3 = alpha * v2 + (1 - alpha) * g3**2
    ga3 = alpha * ga2 + (1 - alpha) * g3
    b3 = mu * b2 + g3 / (np.sqrt(v3 - ga3**2) + eps)
    w3 = w2 - lr * b3
    opt = optim.rmsprop(lr=lr, alpha=alpha, momentum=mu, centered=True, weight_decay=wd)
    assert_allclose(run(opt, 3), [w1, w2, w3], rtol=RTOL)


def test_rmsprop_maximize():
    lr, alpha, eps = 0.01, 0.99, 1e-8
    g1 = -grad(W0)
    w1 = W0 - lr * g1 / (np.sqrt((1 - alpha) * g1**2) + eps)
    assert_allclose(run(optim.rmsprop(maximize=True), 1), [w1], rtol=RTOL)


# ----------------------------------------------------------------------------- Adam family


def _adam_expected(n, lr, b1, b2, eps, *, wd=0.0, amsgrad=False, decoupled=False, sign=1.0):
    """Apply torch's documented Adam/AdamW pseudo-code for ``n`` steps (t = 1..n)."""
    w, m, v, vmax = W0, np.zeros(2), np.zeros(2), np.zeros(2)
    out, shrank = [], False
    for t in range(1, n + 1):
        g = sign * grad(w)
        if decoupled:
            w = w - lr * wd * w
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * g**2
        shrank |= bool(np.any(v_new < v))
        v = v_new
        m_hat = m / (1 - b1**t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            v_hat = vmax / (1 - b2**t)
        else:
            v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return np.array(out), shrank


def test_adam_written_out():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    g1 = grad(W0)
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    w1 = W0 - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    g2 = grad(w1)
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    w2 = w1 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    assert_allclose(run(optim.adam(lr=lr), 2), [w1, w2], rtol=RTOL)
    expected, _ = _adam_expected(2, lr, b1, b2, eps)
    assert_allclose(expected, [w1, w2], rtol=RTOL)


def test_adam_amsgrad_uses_the_running_max():
    lr, b1, b2, eps = 0.5, 0.9, 0.5, 1e-8
    expected, shrank = _adam_expected(3, lr, b1, b2, eps, amsgrad=True)
    assert shrank  # v decreased somewhere, so the max matters
    without, _ = _adam_expected(3, lr, b1, b2, eps, amsgrad=False)
    assert not np.allclose(expected, without)
    got = run(optim.adam(lr=lr, betas=(b1, b2), amsgrad=True), 3)
    assert_allclose(got, expected, rtol=RTOL)


def test_adam_l2_weight_decay_and_maximize():
    lr, b1, b2, eps, wd = 0.1, 0.8, 0.99, 1e-6, 0.2
    expected, _ = _adam_expected(3, lr, b1, b2, eps, wd=wd, sign=-1.0)
    opt = optim.adam(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, maximize=True)
    assert_allclose(run(opt, 3), expected, rtol=RTOL)


def test_adamw_decoupled_decay():
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.3
    g1 = grad(W0)
    d1 = W0 * (1 - lr * wd)  # decay first, from the pre-step params
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    w1 = d1 - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    g2 = grad(w1)
    d2 = w1 * (1 - lr * wd)
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    w2 = d2 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    assert_allclose(run(optim.adamw(lr=lr, weight_decay=wd), 2), [w1, w2], rtol=RTOL)
    l2, _ = _adam_expected(2, lr, b1, b2, eps, wd=wd)
    assert not np.allclose(l2, [w1, w2])  # differs from Adam's L2 decay


def test_adamw_amsgrad():
    lr, b1, b2, eps, wd = 0.5, 0.9, 0.5, 1e-8, 0.1
    expected, shrank = _adam_expected(3, lr, b1, b2, eps, wd=wd, amsgrad=True, decoupled=True)
    assert shrank
    got = run(optim.adamw(lr=lr, betas=(b1, b2), weight_decay=wd, amsgrad=True), 3)
    assert_allclose(got, expected, rtol=RTOL)


def test_adamw_default_weight_decay_is_torch_default():
    assert optim.adamw().hyperparams["weight_decay"] == 1e-2


@pytest.mark.parametrize("wd, maximize", [(0.0, False), (0.1, True)])
def test_adamax(wd, maximize):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    sign = -1.0 if maximize else 1.0
    g1 = sign * grad(W0) + wd * W0
    m1 = (1 - b1) * g1
    u1 = np.maximum(b2 * 0.0, np.abs(g1) + eps)
    w1 = W0 - lr / (1 - b1) * m1 / u1
    g2 = sign * grad(w1) + wd * w1
    m2 = b1 * m1 + (1 - b1) * g2
    u2 = np.maximum(b2 * u1, np.abs(g2) + eps)
    w2 = w1 - lr / (1 - b1**2) * m2 / u2
    g3 = sign * grad(w2) + wd * w2
    m3 = b1 * m2 + (1 - b1) * g3
    u3 = np.maximum(b2 * u2, np.abs(g3) + eps)
    w3 = w2 - lr / (1 - b1**3) * m3 / u3
    opt = optim.adamax(lr=lr, weight_decay=wd, maximize=maximize)
    assert_allclose(run(opt, 3), [w1, w2, w3], rtol=RTOL)


@pytest.mark.parametrize(
    "wd, decoupled, maximize, psi",
    [(0.0, False, False, 4e-3), (0.1, False, False, 4e-3), (0.1, True, True, 0.05)],
)
def test_nadam(wd, decoupled, maximize, psi):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    sign = -1.0 if maximize else 1.0

    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** (t * psi))

    w, m, v = W0, np.zeros(2), np.zeros(2)
    expected = []
    for t in (1, 2, 3):
        g = sign * grad(w)
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        prod_t = np.prod([mu(i) for i in range(1, t + 1)])
        prod_next = prod_t * mu(t + 1)
        m_hat = mu(t + 1) * m / (1 - prod_next) + (1 - mu(t)) * g / (1 - prod_t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append(w)
    opt = optim.nadam(
        lr=lr, weight_decay=wd, momentum_decay=psi, decoupled_weight_decay=decoupled,
        maximize=maximize,
    )  # fmt: skip
    assert_allclose(run(opt, 3), expected, rtol=RTOL)


def test_nadam_state_keeps_mu_product():
    opt = optim.nadam()
    params = {"w": W0.copy()}
    state = opt.init(params)
    for _ in range(2):
        params, state = opt.update({"w": grad(params["w"])}, state, params)
    mu1 = 0.9 * (1 - 0.5 * 0.96 ** (1 * 4e-3))
    mu2 = 0.9 * (1 - 0.5 * 0.96 ** (2 * 4e-3))
    assert state.count == 2
    inner = optim.find_state(state, optim.NAdamState)  # the scale_by_nadam piece's state
    assert inner.count == 2
    assert inner.mu_product == pytest.approx(mu1 * mu2, rel=1e-15)


# ----------------------------------------------------------------------------- schedules


def test_sgd_evaluates_lr_schedule_at_update_count():
    sched = schedules.step_decay(0.1, step_size=2, gamma=0.5)
    w1 = W0 - 0.1 * grad(W0)  # step 0
    w2 = w1 - 0.1 * grad(w1)  # step 1
    w3 = w2 - 0.05 * grad(w2)  # step 2
    assert_allclose(run(optim.sgd(lr=sched), 3), [w1, w2, w3], rtol=RTOL)
    assert optim.sgd(lr=sched).learning_rate(2) == 0.05


def test_plain_callable_lr_and_decoupled_decay_use_scheduled_lr():
    lrs = [0.1, 0.02]
    wd = 0.5
    w1 = W0 * (1 - lrs[0] * wd) - lrs[0] * np.sign(grad(W0))  # Adam's first step ~ sign
    got = run(optim.adamw(lr=lambda s: lrs[s], weight_decay=wd, eps=0.0), 1)
    assert_allclose(got, [w1], rtol=RTOL)


def test_negative_scheduled_lr_is_rejected_at_update():
    opt = optim.sgd(lr=schedules.constant(-0.1))
    params = {"w": W0.copy()}
    with pytest.raises(ValueError, match=r"sgd: .*lr=-0\.1 at step 0"):
        opt.update({"w": grad(W0)}, opt.init(params), params)


# ----------------------------------------------------------------------------- contract


def _nested_params():
    return {
        "layer": [
            {"W": np.arange(6.0).reshape(2, 3) / 5, "b": np.array([0.5, -0.5, 1.0])},
            (np.array(2.0),),
        ],
        "scale": np.array([[3.0]]),
    }


def _target(params):
    return tree.map(lambda p: np.ones_like(p) * 0.25, params)


def _quad_grads(params, target):
    """Gradient of 0.5 * ||params - target||^2, leaf by leaf."""
    return tree.map(lambda p, t: p - t, params, target)


CONVERGE_KW = {
    "sgd": dict(lr=0.1, momentum=0.5),
    "adagrad": dict(lr=0.5),
    "adadelta": dict(lr=10.0),
    "rmsprop": dict(lr=0.01, momentum=0.5),
    "adam": dict(lr=0.05),
    "adamw": dict(lr=0.05, weight_decay=1e-4),
    "adamax": dict(lr=0.05),
    "nadam": dict(lr=0.03),
    "lion": dict(lr=schedules.exponential(0.05, 0.99), betas=(0.9, 0.9)),  # sign steps: decay lr
}


def test_registry_and_convergence_table_cover_the_same_optimizers():
    assert set(optim.OPTIMIZERS) == set(CONVERGE_KW)
    assert set(optim.OPTIMIZERS) == {
        "sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "adamax", "nadam", "lion"
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_contract(name):
    opt = optim.get(name, **CONVERGE_KW[name])
    assert isinstance(opt, optim.Optimizer) and opt.name == name
    params = _nested_params()
    target = _target(params)
    params_copy = copy.deepcopy(params)
    state = opt.init(params)
    assert state.count == 0
    grads = _quad_grads(params, target)
    grads_copy = copy.deepcopy(grads)
    state_copy = copy.deepcopy(state)

    new_params, new_state = opt.update(grads, state, params)

    # inputs untouched (params, grads and the old state)
    for a, b in zip(tree.leaves(params), tree.leaves(params_copy), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(tree.leaves(grads), tree.leaves(grads_copy), strict=True):
        assert np.array_equal(a, b)
    before, after = tree.leaves(list(state_copy)), tree.leaves(list(state))
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a, b)

    # structure and shapes kept: same containers, same key order
    assert list(new_params) == ["layer", "scale"]
    assert isinstance(new_params["layer"], list) and isinstance(new_params["layer"][1], tuple)
    assert list(new_params["layer"][0]) == ["W", "b"]
    for a, b in zip(tree.leaves(new_params), tree.leaves(params), strict=True):
        assert a.shape == b.shape and a is not b
    # state: NamedTuples all the way down, finite, buffers shaped and typed like params
    assert isinstance(new_state, optim.OptState) and new_state.count == 1
    assert isinstance(new_state.inner, tuple) and len(new_state.inner) >= 2  # a chain
    shapes = [(x.shape, x.dtype) for x in tree.leaves(params)]
    for piece in new_state.inner:
        assert isinstance(piece, tuple) and hasattr(piece, "_fields"), type(piece)
        if "count" in piece._fields:
            assert piece.count == 1
        for field in piece._fields:
            buf = getattr(piece, field)
            assert all(np.all(np.isfinite(leaf)) for leaf in tree.leaves(buf))
            if isinstance(buf, dict):
                assert [(x.shape, x.dtype) for x in tree.leaves(buf)] == shapes
    # pure: the same update again gives the same answer; the state pickles and resumes
    again, _ = opt.update(grads, state, params)
    for a, b in zip(tree.leaves(again), tree.leaves(new_params), strict=True):
        assert np.array_equal(a, b)
    resumed = pickle.loads(pickle.dumps(new_state))
    p_a, _ = opt.update(_quad_grads(new_params, target), new_state, new_params)
    p_b, _ = opt.update(_quad_grads(new_params, target), resumed, new_params)
    for a, b in zip(tree.leaves(p_a), tree.leaves(p_b), strict=True):
        assert np.array_equal(a, b)

    # converges on the quadratic
    p, s = params, state
    for _ in range(600):
        p, s = opt.update(_quad_grads(p, target), s, p)
    err = max(np.max(np.abs(a - b)) for a, b in zip(
        tree.leaves(p), tree.leaves(target), strict=True))  # fmt: skip
    assert err < 1e-3, err


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_float32_params_stay_float32_and_ints_become_float(name):
    opt = optim.get(name)
    params = {"a": np.ones(3, dtype=np.float32), "n": np.array([1, 2])}
    grads = {"a": np.full(3, 0.5, dtype=np.float32), "n": np.array([1, 1])}
    new, _ = opt.update(grads, opt.init(params), params)
    assert new["a"].dtype == np.float32
    assert new["n"].dtype == np.float64


def test_structure_mismatch_is_reported_with_path():
    opt = optim.sgd()
    params = {"a": np.zeros(2), "b": [np.zeros(3)]}
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"grads\['b'\]"):
        opt.update({"a": np.zeros(2), "b": np.zeros(3)}, state, params)
    with pytest.raises(ValueError, match=r"keys"):
        opt.update({"a": np.zeros(2)}, state, params)
    with pytest.raises(ValueError, match=r"grads\['b'\]\[0\] has shape \(2,\)"):
        opt.update({"a": np.zeros(2), "b": [np.zeros(2)]}, state, params)


def test_dict_grads_matched_by_key_not_order():
    opt = optim.sgd(lr=1.0)
    params = {"a": np.array([1.0]), "b": np.array([2.0])}
    new, _ = opt.update({"b": np.array([1.0]), "a": np.array([0.5])}, opt.init(params), params)
    assert list(new) == ["a", "b"]
    assert new["a"][0] == 0.5 and new["b"][0] == 1.0


def test_bare_array_params():
    opt = optim.sgd(lr=0.5)
    new, state = opt.update(np.array([2.0]), opt.init(np.array([1.0])), np.array([1.0]))
    assert new[0] == 0.0 and state.count == 1


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "factory, kwargs, pattern",
    [
        (optim.sgd, dict(lr=-1.0), r"sgd: invalid lr=-1\.0"),
        (optim.sgd, dict(lr=float("nan")), r"sgd: invalid lr=nan"),
        (optim.sgd, dict(momentum=-0.1), r"sgd: invalid momentum"),
        (optim.sgd, dict(nesterov=True), r"sgd: invalid nesterov=True.*momentum > 0"),
        (optim.sgd, dict(nesterov=True, momentum=0.9, dampening=0.1), r"sgd: .*nesterov"),
        (optim.sgd, dict(weight_decay=-1), r"sgd: invalid weight_decay"),
        (optim.adagrad, dict(lr_decay=-1), r"adagrad: invalid lr_decay"),
        (optim.adagrad, dict(initial_accumulator_value=-1), r"adagrad: .*initial_accumulator"),
        (optim.adagrad, dict(eps=-1), r"adagrad: invalid eps"),
        (optim.adadelta, dict(rho=1.5), r"adadelta: invalid rho=1\.5"),
        (optim.rmsprop, dict(alpha=-0.1), r"rmsprop: invalid alpha"),
        (optim.rmsprop, dict(momentum=-1), r"rmsprop: invalid momentum"),
        (optim.adam, dict(betas=(1.0, 0.999)), r"adam: invalid betas\[0\]=1\.0.*\[0, 1\)"),
        (optim.adam, dict(betas=(0.9, -0.1)), r"adam: invalid betas\[1\]"),
        (optim.adam, dict(betas=0.9), r"adam: invalid betas=0\.9"),
        (optim.adamw, dict(weight_decay=-0.01), r"adamw: invalid weight_decay"),
        (optim.adamax, dict(betas=(0.9, 1.0)), r"adamax: invalid betas\[1\]"),
        (optim.nadam, dict(momentum_decay=-1), r"nadam: invalid momentum_decay"),
        (optim.nadam, dict(lr="fast"), r"nadam: invalid lr='fast'"),
    ],
)
def test_invalid_hyperparameters(factory, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory(**kwargs)


def test_get():
    assert optim.get("Adam", lr=0.5).hyperparams["lr"] == 0.5
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamz'.*adam"):
        optim.get("adamz")


def test_defaults_match_torch():
    h = {name: f().hyperparams for name, f in optim.OPTIMIZERS.items()}
    assert h["sgd"] == dict(
        lr=1e-3, momentum=0, dampening=0, nesterov=False, weight_decay=0, maximize=False
    )
    assert h["adagrad"] == dict(
        lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
        maximize=False,
    )  # fmt: skip
    assert h["adadelta"] == dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False)
    assert h["rmsprop"] == dict(
        lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
        maximize=False,
    )  # fmt: skip
    for name, lr, wd in (("adam", 1e-3, 0), ("adamw", 1e-3, 1e-2)):
        assert h[name] == dict(
            lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, amsgrad=False, maximize=False
        )
    assert h["adamax"] == dict(
        lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False
    )
    assert h["nadam"] == dict(
        lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
        decoupled_weight_decay=False, maximize=False,
    )  # fmt: skip


# ----------------------------------------------------------------------------- torch


# torch's trajectories are recorded in tests/data/torch_optim.json (tests/torch_fixtures.py
# regenerates them), so parity is tested whether or not torch is installed.
TORCH = torch_fixtures.load()


def _assert_tracks(recorded: dict, opt, lrs=None):
    """Step ``opt`` on ``coupled_grad`` from the recorded start; compare with torch each step."""
    params = {k: np.array(v) for k, v in TORCH["starts"].items()}
    state = opt.init(params)
    n_steps = len(recorded["params"]["u"])
    assert n_steps >= 20
    for step in range(n_steps):
        if lrs is not None:
            assert opt.learning_rate(step) == pytest.approx(lrs[step], rel=1e-12)
        grads = {k: torch_fixtures.coupled_grad(params[k]) for k in params}
        params, state = opt.update(grads, state, params)
        for k, want in recorded["params"].items():
            assert_allclose(params[k], want[step], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, kwargs", torch_fixtures.OPTIMIZER_CASES, ids=str)
def test_matches_torch_for_20_steps(name, kwargs):
    recorded = TORCH["optimizers"][torch_fixtures.case_id(name, kwargs)]
    _assert_tracks(recorded, optim.get(name, **kwargs))


@pytest.mark.parametrize("ours, theirs", torch_fixtures.SCHEDULE_CASES, ids=str)
def test_schedules_match_torch_schedulers_stepped_per_update(ours, theirs):
    name, args = ours
    recorded = TORCH["schedules"][f"{name}{args}"]
    opt = optim.sgd(lr=getattr(schedules, name)(*args), momentum=0.5)
    _assert_tracks(recorded, opt, recorded["lr"])


def test_the_recorded_cases_are_the_listed_ones():
    """The file holds exactly the cases listed (a case added to the list needs a re-record)."""
    ids = {torch_fixtures.case_id(n, k) for n, k in torch_fixtures.OPTIMIZER_CASES}
    assert set(TORCH["optimizers"]) == ids
    assert set(TORCH["schedules"]) == {f"{n}{a}" for (n, a), _ in torch_fixtures.SCHEDULE_CASES}
    lion = {torch_fixtures.case_id("lion", k) for k in torch_fixtures.LION_CASES}
    assert set(TORCH["lion-pytorch"]) == lion


def test_the_recording_matches_the_installed_torch():
    """With torch (and lion-pytorch) installed, record afresh: a torch release that changes an
    update rule shows here, and `python tests/torch_fixtures.py` updates the file."""
    pytest.importorskip("torch")
    pytest.importorskip("lion_pytorch")
    fresh = torch_fixtures.record()
    for group in ("optimizers", "schedules", "lion-pytorch"):
        for case, recorded in TORCH[group].items():
            for k, steps in recorded["params"].items():
                assert_allclose(fresh[group][case]["params"][k], steps, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- Lion


def test_lion_written_out_by_hand():
    # lr 0.1, betas (0.9, 0.99), decoupled wd 0.1; grad = C * w with C = (4, 0.25), w0 = (1, -2)
    opt = optim.lion(lr=0.1, weight_decay=0.1)
    # step 1: g = (4, -0.5), c = 0.1 g -> sign (1, -1); w = w0 - 0.1 * (sign + 0.1 w0)
    # m = 0.01 g = (0.04, -0.005)
    # step 2: g = (3.56, -0.47), c = 0.9 m + 0.1 g = (0.392, -0.0515) -> sign (1, -1)
    # w = (0.89 - 0.1 * 1.089, -1.88 + 0.1 * 1.188); m = 0.99 m + 0.01 g = (0.0752, -0.00965)
    assert_allclose(run(opt, 2), [[0.89, -1.88], [0.7811, -1.7612]], rtol=RTOL)
    params = {"w": W0.copy()}
    state = opt.init(params)
    for _ in range(2):
        params, state = opt.update({"w": grad(params["w"])}, state, params)
    lion_state = optim.find_state(state, optim.LionState)
    assert lion_state.count == 2
    assert_allclose(lion_state.exp_avg["w"], [0.0752, -0.00965], rtol=RTOL)


def _lion_paper(grad_fn, w, n, lr, b1, b2, *, wd, sign=1.0):
    """Run Algorithm 2 of Chen et al. 2023 (Symbolic Discovery of Optimization Algorithms)."""
    m = np.zeros_like(w)
    out = []
    for t in range(n):
        g = sign * grad_fn(w)
        c = b1 * m + (1 - b1) * g  # interpolate, then take the sign
        eta = lr(t) if callable(lr) else lr
        w = w - eta * (np.sign(c) + wd * w)  # decoupled weight decay
        m = b2 * m + (1 - b2) * g  # the momentum tracks the gradient with beta2
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.05),
        dict(lr=0.02, betas=(0.95, 0.98), weight_decay=0.3),
        dict(lr=schedules.cosine_annealing(0.05, 30, 0.001), weight_decay=0.1, maximize=True),
        dict(lr=0.01, betas=(0.0, 0.5)),
    ],
    ids=str,
)
def test_lion_matches_the_paper_algorithm(kwargs):
    b1, b2 = kwargs.get("betas", (0.9, 0.99))
    sign = -1.0 if kwargs.get("maximize") else 1.0
    start = np.array([0.7, -1.3])
    expected = _lion_paper(
        torch_fixtures.coupled_grad,
        start,
        30,
        kwargs["lr"],
        b1,
        b2,
        wd=kwargs.get("weight_decay", 0.0),
        sign=sign,
    )
    opt = optim.lion(**kwargs)
    params, got = {"u": start.copy()}, []
    state = opt.init(params)
    for _ in range(30):
        params, state = opt.update({"u": torch_fixtures.coupled_grad(params["u"])}, state, params)
        got.append(params["u"])
    assert_allclose(got, expected, rtol=RTOL, atol=1e-15)
    assert np.abs(got[-1] - start).max() > 0.1  # it moved


@pytest.mark.parametrize("kwargs", torch_fixtures.LION_CASES, ids=str)
def test_lion_matches_lion_pytorch(kwargs):
    recorded = TORCH["lion-pytorch"][torch_fixtures.case_id("lion", kwargs)]
    _assert_tracks(recorded, optim.lion(**kwargs))


def test_lion_defaults_and_validation():
    assert optim.lion().hyperparams == dict(
        lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False
    )
    with pytest.raises(ValueError, match=r"lion: invalid betas\[1\]=1\.0"):
        optim.lion(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"lion: invalid weight_decay"):
        optim.lion(weight_decay=-1.0)


# ----------------------------------------------------------------------------- pieces


def _tx_run(tx, grads_seq, params):
    """Run a GradientTransformation optax-style; return the list of updates."""
    state = tx.init(params)
    out = []
    for g in grads_seq:
        u, state = tx.update(g, state, params)
        out.append(u)
        params = optim.apply_updates(params, u)
    return out, state, params


def test_clip_by_global_norm_gives_exactly_max_norm():
    g = {"a": np.array([3.0, 4.0]), "b": [np.array([[12.0]])]}  # global norm 13
    (u,), _, _ = _tx_run(optim.clip_by_global_norm(2.6), [g], tree.map(np.zeros_like, g))
    assert optim.global_norm(u) == pytest.approx(2.6, rel=1e-15)
    assert_allclose(u["a"], [0.6, 0.8], rtol=1e-15)
    assert_allclose(u["b"][0], [[2.4]], rtol=1e-15)
    (same,), _, _ = _tx_run(optim.clip_by_global_norm(13.0), [g], tree.map(np.zeros_like, g))
    assert same["a"] is g["a"]  # under the limit: untouched


def test_clip_by_value():
    g = {"a": np.array([-3.0, 0.5, 2.0])}
    (u,), _, _ = _tx_run(optim.clip(1.0), [g], {"a": np.zeros(3)})
    assert u["a"].tolist() == [-1.0, 0.5, 1.0]


def _mlp_params():
    return {"W0": np.full((2, 3), 2.0), "b0": np.full(3, 2.0), "W1": np.full((3, 1), 2.0),
            "b1": np.full(1, 2.0)}  # fmt: skip


def _no_decay_on_biases(params):
    return tree.map(lambda p: np.ndim(p) > 1, params)


@pytest.mark.parametrize("mask", [_no_decay_on_biases, _no_decay_on_biases(_mlp_params())])
def test_weight_decay_mask_leaves_biases_alone(mask):
    params = _mlp_params()
    zero = tree.map(np.zeros_like, params)
    tx = optim.add_decayed_weights(0.5, mask=mask)
    (u,), _, _ = _tx_run(tx, [zero], params)
    assert np.all(u["W0"] == 1.0) and np.all(u["W1"] == 1.0)
    assert np.all(u["b0"] == 0.0) and np.all(u["b1"] == 0.0)
    # through a named optimizer: AdamW with zero gradients only decays the weights
    opt = optim.adamw(lr=0.1, weight_decay=0.5, weight_decay_mask=mask)
    new, _ = opt.update(zero, opt.init(params), params)
    assert np.all(new["W0"] == 2.0 * (1 - 0.1 * 0.5)) and np.all(new["b0"] == 2.0)
    assert opt.hyperparams["weight_decay_mask"] is mask


def test_weight_decay_mask_structure_is_checked():
    tx = optim.add_decayed_weights(0.5, mask={"W0": True})
    params = _mlp_params()
    with pytest.raises(ValueError, match=r"add_decayed_weights mask: dict keys"):
        tx.update(params, tx.init(params), params)


def test_ema_params_follows_the_hand_formula():
    decay, lr = 0.8, 0.1
    opt = optim.as_optimizer(optim.chain(optim.sgd(lr=lr), optim.ema_params(decay)))
    params = {"w": W0.copy()}
    state = opt.init(params)
    w, ema = W0, W0
    for _ in range(4):
        params, state = opt.update({"w": grad(params["w"])}, state, params)
        w = w - lr * grad(w)
        ema = decay * ema + (1 - decay) * w
    assert_allclose(params["w"], w, rtol=RTOL)  # EMA does not change the trajectory
    got = optim.find_state(state, optim.EmaParamsState)
    assert got.count == 4
    assert_allclose(got.ema["w"], ema, rtol=RTOL)


def test_chain_applies_pieces_in_order():
    g = {"a": np.array([3.0, 4.0])}
    params = {"a": np.zeros(2)}
    (clip_first,), _, _ = _tx_run(optim.chain(optim.clip_by_global_norm(1.0), optim.scale(10.0)),
                                  [g], params)  # fmt: skip
    (scale_first,), _, _ = _tx_run(optim.chain(optim.scale(10.0), optim.clip_by_global_norm(1.0)),
                                   [g], params)  # fmt: skip
    assert_allclose(clip_first["a"], [6.0, 8.0], rtol=1e-15)
    assert_allclose(scale_first["a"], [0.6, 0.8], rtol=1e-15)


def test_clipping_composes_with_a_named_optimizer():
    lr = 0.1
    opt = optim.as_optimizer(optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(lr=lr)))
    assert opt.name == "custom" and opt.learning_rate is None
    big = np.array([30.0, -40.0])
    new, state = opt.update({"w": big}, opt.init({"w": W0}), {"w": W0})
    assert_allclose(new["w"], W0 - lr * np.array([0.6, -0.8]), rtol=1e-15)
    assert state.count == 1


def test_named_optimizers_are_their_chains():
    """AdamW equals the optax-style chain written out, run with apply_updates."""
    lr, wd = 0.1, 0.3
    tx = optim.chain(optim.scale_by_adam(), optim.add_decayed_weights(wd),
                     optim.scale_by_learning_rate(lr))  # fmt: skip
    params = {"w": W0.copy()}
    state = tx.init(params)
    by_hand = []
    for _ in range(3):
        updates, state = tx.update({"w": grad(params["w"])}, state, params)
        params = optim.apply_updates(params, updates)
        by_hand.append(params["w"])
    assert_allclose(run(optim.adamw(lr=lr, weight_decay=wd), 3), by_hand, rtol=0, atol=0)


def test_trace_is_sgd_momentum():
    lr, mu, damp = 0.1, 0.9, 0.3
    opt = optim.as_optimizer(optim.chain(optim.trace(mu, damp), optim.scale_by_learning_rate(lr)))
    assert_allclose(run(opt, 4), run(optim.sgd(lr=lr, momentum=mu, dampening=damp), 4), atol=0)


def test_apply_updates_keeps_param_dtype():
    p = {"a": np.ones(2, dtype=np.float32), "n": np.array([1, 2])}
    new = optim.apply_updates(p, {"a": np.full(2, 0.5), "n": np.array([0.5, 0.5])})
    assert new["a"].dtype == np.float32 and new["n"].dtype == np.float64
    assert new["n"].tolist() == [1.5, 2.5]


def test_chain_rejects_what_is_not_a_transformation():
    from symgrad.newton import newton

    with pytest.raises(TypeError, match=r"chain: 'newton' is not a gradient transformation"):
        optim.chain(newton(lambda p: np.eye(2)))
    with pytest.raises(LookupError, match="no LionState"):
        optim.find_state(optim.adam().init({"w": W0}), optim.LionState)


@pytest.mark.parametrize(
    "factory, args, pattern",
    [
        (optim.clip_by_global_norm, (-1.0,), r"clip_by_global_norm: invalid max_norm"),
        (optim.clip, (float("inf"),), r"clip: invalid max_delta=inf"),
        (optim.add_decayed_weights, (-0.1,), r"add_decayed_weights: invalid weight_decay"),
        (optim.ema_params, (1.5,), r"ema_params: invalid decay=1\.5"),
        (optim.scale_by_learning_rate, (-1.0,), r"scale_by_learning_rate: invalid lr"),
        (optim.trace, (-0.5,), r"trace: invalid momentum"),
        (optim.scale_by_adam, ((0.9, 1.0),), r"scale_by_adam: invalid betas\[1\]"),
    ],
)
def test_invalid_piece_arguments(factory, args, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory(*args)


def test_ema_and_decay_need_params():
    for tx in (optim.ema_params(0.9), optim.add_decayed_weights(0.1)):
        with pytest.raises(ValueError, match="needs params"):
            tx.update({"w": W0}, tx.init({"w": W0}))
