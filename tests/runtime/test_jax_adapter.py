"""symgrad.jax.custom_vjp: jax.grad runs the emitted gradient and a second reverse pass the
emitted Hessian; checked against jax's own autodiff on every built-in and on a user spec,
and in the tails where autodiff of the naive formula gives NaN."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, LOSSES, REGULARIZERS, loss_inputs

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import sympy as sp  # noqa: E402

import symgrad as sg  # noqa: E402
import symgrad.jax as sj  # noqa: E402
from symgrad.resources import load_generated  # noqa: E402

#: kernel -> (role, jax function of the emitted value in the Array API module, autodiff-able)
XP = {"loss": "losses_xp", "activation": "activations_xp", "regularizer": "regularizers_xp"}
KERNELS = (
    [("loss", n) for n in LOSSES]
    + [("activation", n) for n in [*ACTIVATIONS, "softmax"]]
    + [("regularizer", n) for n in REGULARIZERS]
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _inputs(role: str, name: str) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(sum(map(ord, name)))
    if role == "loss":  # six samples: the Hessians below take one reverse pass per entry
        return tuple(a[:6] for a in loss_inputs(name, rng))
    shape = (3, 4) if name == "softmax" else (8,)
    return (rng.normal(size=shape) * 2,)


def _scalar(f, role):
    """Return a scalar function of x (a sum over an activation's outputs, with weights)."""
    if role != "activation":
        return f
    return lambda x, *rest: jnp.sum(f(x, *rest) * jnp.cos(jnp.arange(x.size).reshape(x.shape)))


@pytest.mark.parametrize("role, name", KERNELS, ids=lambda x: str(x))
def test_grad_and_hessian_match_jax_autodiff_of_the_emitted_value(role, name):
    args = tuple(jnp.asarray(a) for a in _inputs(role, name))
    ours = _scalar(sj.custom_vjp(name, role=role), role)
    theirs = _scalar(getattr(load_generated(XP[role]), name), role)
    assert float(ours(*args)) == pytest.approx(float(theirs(*args)), rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(
        jax.grad(ours)(*args), jax.grad(theirs)(*args), rtol=1e-9, atol=1e-12
    )
    if name == "softmax":  # emits a VJP only: a second reverse pass has nothing to call
        with pytest.raises(Exception, match="pure_callback|differentiat|JVP|jvp"):
            jax.jacrev(jax.grad(ours))(*args)
        return
    x = args[0]
    want = jax.jacrev(jax.grad(theirs))(*args).reshape(x.size, x.size)
    got = jax.jacrev(jax.grad(ours))(*args).reshape(x.size, x.size)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_under_jit_and_vmap():
    f = sj.custom_vjp("huber", delta=2.0)
    yhat, y = jnp.array([[0.5, -3.0, 4.0], [1.0, 2.0, -9.0]]), jnp.zeros((2, 3))
    per_row = jax.vmap(jax.grad(f))(yhat, y)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(yhat[1], y[1]), per_row[1])
    np.testing.assert_allclose(per_row[0], [0.5 / 3, -2 / 3, 2 / 3])


def test_integer_labels_match_optax_convention():
    ce = sj.custom_vjp("softmax_cross_entropy")
    z = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)))
    labels = jnp.array([0, 3, 1])
    ref = lambda z: jnp.mean(jax.nn.logsumexp(z, axis=-1) - z[jnp.arange(3), labels])  # noqa: E731
    assert float(ce(z, labels)) == pytest.approx(float(ref(z)), rel=1e-14)
    np.testing.assert_allclose(jax.grad(ce)(z, labels), jax.grad(ref)(z), rtol=1e-12)
    np.testing.assert_allclose(
        jax.jacrev(jax.grad(ce))(z, labels), jax.hessian(ref)(z), rtol=1e-9, atol=1e-15
    )


def test_tails_where_autodiff_of_the_naive_formula_is_nan():
    x = jnp.array([-1000.0, 0.0, 1000.0])
    naive = jax.grad(lambda x: jnp.sum(jnp.log1p(jnp.exp(x))))(x)
    assert np.isnan(naive[2])  # exp overflows: inf / inf
    softplus = sj.custom_vjp("softplus")
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(softplus(x)))(x), [0.0, 0.5, 1.0])
    # autodiff of the stabilized value (log1p(exp(-|x|)) + max(x, 0)) is wrong at its seam,
    # x = 0; the emitted derivative was taken of the plain form
    emitted_value = load_generated("activations_xp").softplus
    assert float(jax.grad(lambda x: jnp.sum(emitted_value(x)))(x)[1]) != 0.5


@sg.loss
def cosh_loss(yhat, y, c=1.0):
    """log(cosh((yhat - y) / c)) * c**2, written the naive way."""
    return c**2 * sp.log(sp.cosh((yhat - y) / c))


def test_a_user_spec_in_the_tails():
    f = sj.custom_vjp(cosh_loss, c=2.0)
    yhat, y = jnp.array([3000.0, -0.5, 1.0]), jnp.zeros(3)
    naive = lambda yhat: jnp.mean(4.0 * jnp.log(jnp.cosh(yhat / 2.0)))  # noqa: E731
    assert np.isnan(jax.grad(naive)(yhat)[0]) and np.isinf(naive(yhat))
    g = jax.grad(f)(yhat, y)
    h = jax.jacrev(jax.grad(f))(yhat, y)
    r = np.array([3000.0, -0.5, 1.0]) / 2
    np.testing.assert_allclose(g, 2 * np.tanh(r) / 3, rtol=1e-13)
    np.testing.assert_allclose(np.diag(h), (1 - np.tanh(r) ** 2) / 3, rtol=1e-12, atol=1e-300)
    assert np.isfinite(float(f(yhat, y)))


def test_bad_kernels_are_one_clear_error():
    with pytest.raises(ValueError, match="'l1' is a built-in loss and a regularizer; pass role="):
        sj.custom_vjp("l1")
    with pytest.raises(ValueError, match="unknown kernel 'hubr'"):
        sj.custom_vjp("hubr")
    with pytest.raises(ValueError, match="has no hyper-parameter 'delt'"):
        sj.custom_vjp("huber", delt=1.0)
    reg = sj.custom_vjp("l1", role="regularizer", lam=0.5)
    np.testing.assert_allclose(jax.grad(reg)(jnp.array([2.0, -3.0])), [0.5, -0.5])


# ------------------------------------------------------------------ bad input, as on numpy

HUBER, BCE, CE = "huber", "binary_cross_entropy", "softmax_cross_entropy"

#: (kernel, yhat, y, error, message): what the numpy kernels (and boosting's labels) say
BAD = {
    "shapes": (HUBER, np.ones(3), np.ones(4), ValueError,
               r"huber: yhat of shape \(3,\) and y of shape \(4,\) do not broadcast together"),
    "y broadcasts yhat up": (HUBER, np.ones(3), np.ones((2, 3)), ValueError,
                             r"huber: yhat of shape \(3,\) and y of shape \(2, 3\) would broadcast"),
    "complex": (HUBER, np.ones(2, np.complex64), np.ones(2), TypeError,
                r"huber: yhat has dtype complex64; expected real numbers"),
    "object": (HUBER, np.ones(2), np.array([1.0, None]), TypeError,
               r"huber: y has dtype object; expected real numbers"),
    "strings": (HUBER, np.array(["a", "b"]), np.ones(2), TypeError,
                r"huber: yhat has dtype <U1; expected real numbers"),
    "nan target": (HUBER, np.ones(2), np.array([0.0, np.nan]), ValueError,
                   r"huber: y must be finite; got nan at index 1"),
    "inf target": (HUBER, np.ones(2), np.array([np.inf, 0.0]), ValueError,
                   r"huber: y must be finite; got inf at index 0"),
    "target off its domain": (BCE, np.full(2, 0.5), np.array([0.0, 2.0]), ValueError,
                              r"binary_cross_entropy: y must be finite and in \[0, 1\]; got 2.0"),
    "label off [0, C)": (CE, np.zeros((2, 3)), np.array([0, 3]), ValueError,
                         r"softmax_cross_entropy: class labels must lie in \[0, 3\)"),
    "label not whole": (CE, np.zeros((2, 3)), np.array([0.5, 1.0]), ValueError,
                        r"softmax_cross_entropy: class labels must be whole numbers"),
}  # fmt: skip
#: the ones jax can trace (its arrays hold no objects or strings)
TRACEABLE = [k for k in BAD if k not in ("object", "strings")]
#: the ones a trace sees (shapes, dtypes); the others are values, checked in the callback
STATIC = ("shapes", "y broadcasts yhat up", "complex")


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_the_numpy_kernels_error(case):
    name, yhat, y, error, words = BAD[case]
    f = sj.custom_vjp(name)
    with pytest.raises(error, match=f"^{words}"):
        f(yhat, y)
    if case in TRACEABLE:
        with pytest.raises(error, match=f"^{words}"):
            jax.grad(f)(jnp.asarray(yhat), jnp.asarray(y))


@pytest.mark.parametrize("case", TRACEABLE)
def test_bad_input_under_jit_names_the_argument(case):
    """Shapes and dtypes fail as the trace is made, with the kernel's own error; values are
    known only when the callback runs, and jax's runtime error carries the same message."""
    name, yhat, y, error, words = BAD[case]
    f = jax.jit(sj.custom_vjp(name))
    with pytest.raises(error if case in STATIC else jax.errors.JaxRuntimeError, match=words):
        f(jnp.asarray(yhat), jnp.asarray(y))


@pytest.mark.parametrize("jit", [False, True])
def test_dtypes_follow_the_numpy_kernels(jit):
    """Integers compute in float64 (never an integer loss), float16 in float64 as on numpy;
    a gradient has its input's dtype."""
    f = sj.custom_vjp(HUBER)
    f = jax.jit(f) if jit else f
    yhat, y = np.array([1, 4]), np.array([0.0, 1.0])
    want = load_generated("losses").huber(yhat, y)
    got = f(jnp.asarray(yhat), jnp.asarray(y))
    assert got.dtype == jnp.float64 and float(got) == want == 1.5  # int64 once: 1
    half = jnp.asarray(yhat, jnp.float16)
    assert f(half, jnp.asarray(y)).dtype == jnp.float64
    grad = jax.grad(sj.custom_vjp(HUBER))(half, jnp.asarray(y))
    assert grad.dtype == jnp.float16
    np.testing.assert_allclose(grad, load_generated("losses").huber_grad(yhat, y))
    single = jax.grad(sj.custom_vjp(HUBER))(jnp.asarray(yhat, jnp.float32), jnp.float32(0.0))
    assert single.dtype == jnp.float32
    relu = sj.custom_vjp("relu")(jnp.array([-1, 2]))
    assert relu.dtype == jnp.float64 and relu.tolist() == [0.0, 2.0]


def test_nan_and_empty_inputs_give_what_numpy_gives():
    """A NaN prediction gives NaN, and an empty mean NaN with an empty gradient: the
    numpy kernels' answers, not an error and not a number made up."""
    f, raw = sj.custom_vjp(HUBER), load_generated("losses")
    yhat = np.array([np.nan, 1.0])
    assert np.isnan(float(f(yhat, np.zeros(2)))) and np.isnan(raw.huber(yhat, np.zeros(2)))
    np.testing.assert_array_equal(
        jax.grad(f)(jnp.asarray(yhat), jnp.zeros(2)), raw.huber_grad(yhat, np.zeros(2))
    )
    empty = jnp.zeros(0)
    assert np.isnan(float(f(empty, empty)))
    assert jax.grad(f)(empty, empty).shape == (0,)
    assert sj.custom_vjp("relu")(empty).shape == (0,)
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: yhat of shape \(0,\) has no"):
        sj.custom_vjp(CE)(empty, empty)


def test_bad_hyper_parameters_name_themselves():
    f = sj.custom_vjp(HUBER, delta=-1.0)
    with pytest.raises(ValueError, match=r"^huber: delta must be a finite number > 0, got -1.0"):
        f(jnp.ones(2), jnp.zeros(2))
    with pytest.raises(ValueError, match=r"^huber: delta must be a finite number > 0"):
        jax.jit(f)(jnp.ones(2), jnp.zeros(2))


@pytest.mark.parametrize("jit", [False, True])
def test_without_x64_results_are_float32(jit):
    """jax's default: no float64 arrays, so the kernels' float64 results come back float32."""
    with jax.enable_x64(False):
        f = sj.custom_vjp(HUBER)
        f = jax.jit(f) if jit else f
        loss = f(jnp.array([1, 4]), jnp.array([0.0, 1.0]))
        grad = jax.grad(f)(jnp.array([1.0, 4.0]), jnp.array([0.0, 1.0]))
    assert loss.dtype == grad.dtype == jnp.float32
    assert float(loss) == 1.5 and grad.tolist() == [0.5, 0.5]
