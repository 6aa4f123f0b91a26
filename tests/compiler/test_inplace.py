"""The buffer-reusing bodies: equal to the plain numpy each docstring shows, safe with ``out=``."""

from __future__ import annotations

import inspect
import textwrap
import threading

import numpy as np
import pytest

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from tests.conftest import ACTIVATIONS, CLASS_AXIS_LOSSES, LOSSES, REGULARIZERS, loss_inputs

MODULES = {"activations": A, "losses": L, "regularizers": R}


def _functions():
    for label, module in MODULES.items():
        for name in module.__all__:
            yield label, name


def _inputs(label: str, name: str, rng: np.random.Generator, awkward: bool) -> list[np.ndarray]:
    """Return the array arguments of emitted function ``name``."""
    base = name
    for suffix in ("_value_and_grad", "_grad", "_hess", "_hvp", "_vjp", "_per_sample"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            break
    if label == "losses":
        args = list(loss_inputs(base, rng, awkward))
    elif base == "softmax":
        args = [rng.normal(size=(12, 5)) * 3]
    else:
        x = rng.normal(size=24) * 3
        if awkward:
            x[:7] = [0.0, 1e-8, -1e-8, 30.0, -30.0, 700.0, -700.0]
        args = [x]
    if name.endswith(("_hvp", "_vjp")):
        args.append(rng.normal(size=args[0].shape))
    return args


def _plain(fn, args: list[np.ndarray]):
    """Run the 'As plain numpy' block of ``fn``'s docstring on ``args``."""
    doc = inspect.getdoc(fn)
    block = doc.split("As plain numpy", 1)[1].split("\n", 2)[2]
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "out"]
    env = {"np": np, **vars(inspect.getmodule(fn))}
    env.update(zip((p.name for p in params), args, strict=False))
    env.update({p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY})
    source = "def _f():\n" + textwrap.indent(textwrap.dedent(block), "    ")
    exec(source, env)
    return env["_f"]()


@pytest.mark.parametrize(("label", "name"), list(_functions()))
@pytest.mark.parametrize("awkward", [False, True])
def test_body_equals_the_plain_numpy_in_its_docstring(label, name, awkward, rng):
    fn = getattr(MODULES[label], name)
    args = _inputs(label, name, rng, awkward)
    with np.errstate(all="ignore"):
        want = _plain(fn, args)
        got = fn(*args)
    pairs = zip(
        want if isinstance(want, tuple) else (want,),
        got if isinstance(got, tuple) else (got,),
        strict=True,
    )
    for w, g in pairs:
        # the same formula, rounded in another order: relative to the result's scale
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13 * scale, err_msg=name)


def _array_functions():
    for label, name in _functions():
        fn = getattr(MODULES[label], name)
        if "out" in inspect.signature(fn).parameters:
            yield label, name


@pytest.mark.parametrize(("label", "name"), list(_array_functions()))
def test_out_is_written_and_inputs_are_not(label, name, rng):
    """out= is one array (a value-and-gradient function's gradient), or for a function whose
    results are all arrays (_grad_hess) a tuple of them."""
    fn = getattr(MODULES[label], name)
    args = _inputs(label, name, rng, awkward=False)
    copies = [a.copy() for a in args]
    want = fn(*args)
    pair = isinstance(want, tuple) and all(isinstance(w, np.ndarray) for w in want)
    wanted = list(want) if pair else [want[1] if isinstance(want, tuple) else want]

    def call(*inputs, out):
        got = fn(*inputs, out=tuple(out) if pair else out[0])
        return list(got) if pair else [got[1] if isinstance(got, tuple) else got]

    out = [np.full(w.shape, np.nan) for w in wanted]
    got = call(*args, out=out)
    for g, o, w in zip(got, out, wanted, strict=True):
        assert g is o
        np.testing.assert_array_equal(o, w)
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)
    # out may be an input: the result is the same, computed before the input is overwritten
    if args[0].shape == wanted[0].shape:
        first = args[0].copy()
        rest = [np.empty_like(w) for w in wanted[1:]]
        aliased = call(first, *args[1:], out=[first, *rest])
        for a, w in zip(aliased, wanted, strict=True):
            np.testing.assert_array_equal(a, w)


def test_values_of_mean_losses_match_numpy_means(rng):
    # the value is summed term by term; compare with the mean of the element-wise formula
    yhat, y = rng.normal(size=1000) * 3, rng.normal(size=1000) * 3
    np.testing.assert_allclose(L.log_cosh(yhat, y), np.mean(np.log(np.cosh(yhat - y))), rtol=1e-13)
    np.testing.assert_allclose(L.mse(yhat, y), np.mean((yhat - y) ** 2), rtol=1e-13)
    z, t = rng.normal(size=(40, 7)) * 3, rng.dirichlet(np.ones(7), size=40)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    for ls in (0.0, 0.1):
        smooth = t * (1 - ls) + ls / 7
        want = -np.mean(np.sum(smooth * logp, axis=1))
        np.testing.assert_allclose(
            L.softmax_cross_entropy(z, t, label_smoothing=ls), want, rtol=1e-13
        )


def test_targets_broadcast_against_predictions(rng):
    yhat = rng.normal(size=(6, 4))
    y = rng.normal(size=4)
    full = np.broadcast_to(y, yhat.shape).copy()
    for name in ("mse", "huber", "log_cosh"):
        v, g = getattr(L, f"{name}_value_and_grad")(yhat, y)
        v_full, g_full = getattr(L, f"{name}_value_and_grad")(yhat, full)
        assert v == pytest.approx(v_full, rel=1e-14)
        np.testing.assert_allclose(g, g_full, rtol=1e-14)
    # a scalar target
    v, g = L.mse_value_and_grad(yhat, 0.5)
    assert v == pytest.approx(np.mean((yhat - 0.5) ** 2), rel=1e-14)


def test_bad_out_names_the_function():
    x = np.zeros(5)
    with pytest.raises(
        ValueError, match=r"sigmoid_grad: out must be a float array of shape \(5,\)"
    ):
        A.sigmoid_grad(x, out=np.zeros(4))
    with pytest.raises(ValueError, match="huber_grad: out must be a float array"):
        L.huber_grad(x, x, out=np.zeros(5, dtype=int))
    with pytest.raises(
        ValueError, match=r"mse_grad: yhat of shape \(5,\) and y of shape \(3,\) do not broadcast"
    ):
        L.mse_grad(x, np.zeros(3))


def test_scratch_is_per_thread_and_per_shape(rng):
    xs = [rng.normal(size=s) * 4 for s in (1000, 37, 1000, 5, 2000)]
    want = [A.gelu_tanh_grad(x) for x in xs]
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        results[i] = [A.gelu_tanh_grad(x) for _ in range(20) for x in xs][-len(xs) :]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results.values():
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_every_builtin_is_covered():
    names = {n for _, n in _functions()}
    for base in ACTIVATIONS + LOSSES + REGULARIZERS + CLASS_AXIS_LOSSES:
        assert base in names


@pytest.mark.parametrize("name", LOSSES)
def test_count_gives_a_share_of_a_larger_mean(name, rng):
    # halves of a batch, each divided by the whole batch's count, add up to the whole
    yhat, y = loss_inputs(name, rng)
    fn = getattr(L, f"{name}_value_and_grad")
    value, grad = fn(yhat, y)
    n = len(yhat)
    v1, g1 = fn(yhat[: n // 2], y[: n // 2], count=n)
    v2, g2 = fn(yhat[n // 2 :], y[n // 2 :], count=n)
    assert v1 + v2 == pytest.approx(value, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(np.concatenate([g1, g2]), grad, rtol=1e-12, atol=1e-300)
    assert getattr(L, name)(yhat[: n // 2], y[: n // 2], count=n) == pytest.approx(v1, rel=1e-14)
