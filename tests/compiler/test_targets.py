"""Every lowering target emits the functions of one table (``compiler/emitted.py``): the numpy,
array-api and cupy modules have the same functions, in the same order, with the same parameter
names, defaults and keyword-only-ness, for every built-in kernel and for user specs."""

from __future__ import annotations

import importlib.util
import inspect

import numpy as np
import pytest
import sympy as sp
from conftest import emitted_args

import symgrad as sg
import symgrad.losses as L
from symgrad.compiler.emitted import TABLE
from symgrad.compiler.targets import TARGETS, c_on_cpu, checked_targets
from symgrad.resources import generated_dir

STEMS = ("activations", "losses", "regularizers")
SUFFIXES = {"numpy": "", "array-api": "_xp", "cupy": "_cupy"}


def _load(stem: str, target: str):
    path = generated_dir() / f"{stem}{SUFFIXES[target]}.py"
    spec = importlib.util.spec_from_file_location(f"symgrad_test_targets_{stem}_{target}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signatures(module) -> list[tuple[str, list[tuple[str, object, str]]]]:
    """Return each public function's name and (parameter, default, kind) triples, in order."""
    return [
        (
            name,
            [
                (p.name, p.default, p.kind.name)
                for p in inspect.signature(getattr(module, name)).parameters.values()
            ],
        )
        for name in module.__all__
    ]


def test_every_target_has_a_module():
    assert set(TARGETS) == set(SUFFIXES)


@pytest.mark.parametrize("stem", STEMS)
def test_builtin_modules_have_the_same_functions_and_signatures(stem):
    want = signatures(_load(stem, "numpy"))
    assert want
    for target in TARGETS[1:]:
        assert signatures(_load(stem, target)) == want, target


def _user_specs():
    @sg.loss
    def tukey(yhat, y, c=4.685):
        """Tukey's biweight, smoothed."""
        r = (yhat - y) / c
        return c**2 / 6 * (1 - (1 - sp.tanh(r) ** 2) ** 3)

    @sg.activation
    def swish(x, beta=1.0):
        return x / (1 + sp.exp(-beta * x))

    @sg.regularizer
    def smooth_l1_pen(w, lam=0.1, eps=1e-3):
        return lam * sp.sqrt(w**2 + eps**2)

    return tukey, swish, smooth_l1_pen


def test_user_specs_compile_to_the_same_signatures_on_every_target():
    specs = _user_specs()
    want = signatures(sg.compile(*specs))
    assert [n for n, _ in want][:3] == ["smooth_l1_pen", "smooth_l1_pen_grad", "smooth_l1_pen_hess"]
    for target in TARGETS[1:]:
        assert signatures(sg.compile(*specs, target=target)) == want, target


def test_the_table_lists_grad_hess_for_every_loss():
    assert "_grad_hess" in [fn.suffix for fn in TABLE["loss"]]
    for name, meta in L.KERNELS.items():
        assert f"{name}_grad_hess" in meta["functions"], name


@pytest.mark.parametrize("name", sorted(L.KERNELS))
def test_grad_hess_equals_grad_and_hess(name, rng):
    """One CSE over both: the same numbers as _grad and _hess, with count= and weight=."""
    fn = getattr(L, f"{name}_grad_hess")
    yhat, y = emitted_args(L, f"{name}_grad_hess", rng)
    units = np.shape(getattr(L, f"{name}_per_sample")(yhat, y))
    weight = rng.uniform(0, 2, size=units)
    for kwargs in ({}, {"count": 1}, {"weight": weight}, {"count": 7.0, "weight": weight}):
        with np.errstate(all="ignore"):
            grad, hess = fn(yhat, y, **kwargs)
            want_grad = getattr(L, f"{name}_grad")(yhat, y, **kwargs)
            want_hess = getattr(L, f"{name}_hess")(yhat, y, **kwargs)
        assert grad.shape == hess.shape == yhat.shape
        assert not np.shares_memory(grad, hess)
        for got, want in ((grad, want_grad), (hess, want_hess)):  # to rounding of the largest
            scale = np.max(np.abs(want[np.isfinite(want)]), initial=0.0)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * scale, err_msg=name)


def test_grad_hess_with_count_one_is_per_sample(rng):
    yhat, y = rng.normal(size=(2, 9))
    grad, hess = L.binary_cross_entropy_with_logits_grad_hess(yhat, (y > 0) * 1.0, count=1)
    p = 1 / (1 + np.exp(-yhat))
    np.testing.assert_allclose(grad, p - (y > 0), rtol=1e-14)
    np.testing.assert_allclose(hess, p * (1 - p), rtol=1e-13)


def _grad_hess_module(target: str):
    """Return the losses module of ``target`` to call on numpy arrays: the numpy target, the
    array-api target (array_api_compat's numpy namespace), cupy's with its C on the CPU."""
    if target == "array-api":
        pytest.importorskip("array_api_compat")
    return _runnable(_load("losses", target), target)


OUT_TARGETS = ("numpy", "array-api", "cupy")


@pytest.mark.parametrize("target", OUT_TARGETS)
@pytest.mark.parametrize("name", sorted(L.KERNELS))
def test_grad_hess_out_gives_the_numbers_of_the_call_without_it(target, name, rng):
    """out=(grad, hess) is filled and returned: the same numbers as without out=, with
    count= and weight=, and an input that is also an out array is read before it is written."""
    module = _grad_hess_module(target)
    fn = getattr(module, f"{name}_grad_hess")
    yhat, y = emitted_args(L, f"{name}_grad_hess", rng)
    units = np.shape(getattr(L, f"{name}_per_sample")(yhat, y))
    weight = rng.uniform(0, 2, size=units)
    for kwargs in ({}, {"count": 1}, {"count": 7.0, "weight": weight}):
        with np.errstate(all="ignore"):
            want = fn(yhat, y, **kwargs)
            out = (np.full(yhat.shape, np.nan), np.full(yhat.shape, np.nan))
            got = fn(yhat, y, out=out, **kwargs)
        assert got[0] is out[0] and got[1] is out[1], name
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, np.asarray(w), err_msg=f"{target} {name}")
    if target == "numpy":  # the score array itself as out[0]: read before written
        grad = yhat.copy()
        with np.errstate(all="ignore"):
            fn(grad, y, count=1, out=(grad, np.empty_like(grad)))
            np.testing.assert_array_equal(grad, fn(yhat, y, count=1)[0])


def _bad_outs():
    """Return (out, the error's one line) pairs for yhat of shape (4,)."""
    frozen = np.zeros(4)
    frozen.flags.writeable = False
    both = np.zeros(8)
    one = np.zeros(4)
    return [
        (one, r"out must be a pair \(grad, hess\) of arrays, one per result; got ndarray$"),
        ((one,), r"out must be a pair \(grad, hess\) .*; got tuple of length 1$"),
        ((one, one, one), r"out must be a pair \(grad, hess\) .*; got tuple of length 3$"),
        ((one, one), r"out\[0\] \(grad\) and out\[1\] \(hess\) share memory; each result"),
        ((both[:4], both[2:6]), r"out\[0\] \(grad\) and out\[1\] \(hess\) share memory"),
        ((one, np.zeros(3)), r"out\[1\] \(hess\) must be a float array of shape \(4,\), got "),
        ((np.zeros(4, int), one), r"out\[0\] \(grad\) must be a float array of shape \(4,\)"),
        ((one, np.zeros(4, complex)), r"out\[1\] \(hess\) must be a float array of shape"),
        ((one, [0.0] * 4), r"out\[1\] \(hess\) must be a float array of shape \(4,\), got list"),
        ((one, np.zeros(4, np.float32)), r"out\[1\] \(hess\) has dtype float32 and out\[0\]"),
        ((one, frozen), r"out\[1\] \(hess\) is read-only$"),
    ]


@pytest.mark.parametrize("target", OUT_TARGETS)
@pytest.mark.parametrize(("out", "message"), _bad_outs())
def test_grad_hess_refuses_a_bad_out_with_one_line(target, out, message):
    fn = _grad_hess_module(target).binary_cross_entropy_with_logits_grad_hess
    with pytest.raises(
        ValueError, match=f"^binary_cross_entropy_with_logits_grad_hess: {message}"
    ) as e:
        fn(np.zeros(4), np.ones(4), out=out)
    assert "\n" not in str(e.value)


def _plain_calls():
    """Return (out, arrays, classes, whether ``_prepare`` may pass them through) cases."""
    a, b, g, h = np.zeros(4), np.ones(4), np.empty(4), np.empty(4)
    frozen, both = np.zeros(4), np.zeros(8)
    frozen.flags.writeable = False
    return [
        ((g, h), (a, b), False, True),
        ((g, h), (a, b), True, True),
        ((g, h), (np.zeros((4, 0)), np.zeros((4, 0))), True, False),  # no class
        ((g, h), (a, np.ones(1)), False, False),  # a target to broadcast
        ((g, h), (a, np.ones(4, int)), False, False),  # integers to convert
        ((g, h), (a, [1.0] * 4), False, False),
        ((g, h), (a, np.ma.ones(4)), False, False),  # an array subclass
        ((g, h, h), (a, b), False, False),
        ([g, h], (a, b), False, False),
        ((g, np.empty(4, np.float32)), (a, b), False, False),
        ((g, np.empty(4, int)), (a, b), False, False),
        ((g, np.empty(3)), (a, b), False, False),
        ((g, frozen), (a, b), False, False),
        ((g, g), (a, b), False, False),
        ((both[:4], both[2:6]), (a, b), False, False),
        ((g, h), (a, h), False, False),  # an input that is an out: copied first
        ((g, None), (a, b), False, False),
        (g, (a, b), False, True),  # a function of one result: out alone
        (np.empty(4, np.float32), (a, b), False, True),  # either float dtype, as out= takes
        (g, (g, b), False, False),
        (None, (a, b), False, False),
    ]


@pytest.mark.parametrize(("out", "arrays", "classes", "plain"), _plain_calls())
def test_prepare_passes_through_only_calls_with_nothing_to_convert_or_report(
    out, arrays, classes, plain
):
    """``_plain`` (the numpy target's fast path of ``_prepare``) accepts a call only where the
    general path returns every array unchanged; the rest go the general path."""
    forms = ("grad", "hess") if isinstance(out, tuple | list) else None
    assert L._plain(out, arrays, forms, classes) is plain
    if plain:
        got = L._prepare("f", out, *arrays, forms=forms, classes=classes)
        outs = out if forms else (out,)
        assert all(x is y for x, y in zip(got, (*outs, *arrays), strict=True))


def _bad_single_outs():
    """Return (out, the error's one line) pairs for a single result of shape (4,)."""
    frozen = np.zeros(4)
    frozen.flags.writeable = False
    return [
        (
            np.zeros(4, int),
            r"out must be a float array of shape \(4,\), got int64 of shape \(4,\)$",
        ),
        (np.zeros(4, bool), r"out must be a float array of shape \(4,\), got bool"),
        (np.zeros(4, complex), r"out must be a float array of shape \(4,\), got complex128"),
        (np.zeros(3), r"out must be a float array of shape \(4,\), got float64 of shape \(3,\)$"),
        ([0.0] * 4, r"out must be a float array of shape \(4,\), got list of shape None$"),
        (frozen, r"out is read-only$"),
    ]


@pytest.mark.parametrize("target", OUT_TARGETS)
@pytest.mark.parametrize(("out", "message"), _bad_single_outs())
def test_a_single_out_follows_the_same_rule_on_every_target(target, out, message):
    """One rule for a single ``out=`` on every target (``_out_rule``): the array-api and cupy
    targets wrote the gradient into an int ``out`` and returned it truncated ([0, 1, 1] for
    [0.33, 1, 1.8]), and took a read-only or foreign one until the write failed."""
    fn = _grad_hess_module(target).mse_grad
    with pytest.raises(ValueError, match=f"^mse_grad: {message}") as e:
        fn(np.array([0.5, 1.5, 2.7, 0.0]), np.zeros(4), out=out)
    assert "\n" not in str(e.value)
    good = np.full(4, np.nan)
    assert fn(np.array([0.5, 1.5, 2.7, 0.0]), np.zeros(4), out=good) is good
    np.testing.assert_allclose(good, [0.25, 0.75, 1.35, 0.0])


def test_float32_out_of_the_numpy_target_computes_in_float32(rng):
    """Either float dtype is taken, as a single out= is: the scratch follows out's dtype."""
    yhat, y = rng.normal(size=(2, 50))
    y = (y > 0) * 1.0
    out = (np.empty(50, np.float32), np.empty(50, np.float32))
    L.binary_cross_entropy_with_logits_grad_hess(yhat, y, count=1, out=out)
    want = L.binary_cross_entropy_with_logits_grad_hess(yhat.astype(np.float32), y, count=1)
    np.testing.assert_allclose(out[0], want[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out[1], want[1], rtol=1e-6, atol=1e-7)


def _runnable(module, target: str):
    """Return ``module`` ready to call on numpy arrays (cupy: its C compiled for the CPU)."""
    if target != "cupy":
        return module
    if c_on_cpu.compiler() is None:
        pytest.skip("no C compiler: the cupy target's C bodies cannot run here")
    return c_on_cpu.Library({"m": module}, types=("double",)).bind("m", module)


def test_safe_mode_checks_every_target_that_can_run_here():
    """array-api on numpy arrays (array_api_compat is a test dependency); cupy where a C
    compiler exists (the CI has one; elsewhere cupy's forms are the array-api tree in C)."""
    cupy = ("cupy",) if c_on_cpu.compiler() is not None else ()
    assert checked_targets() == ("numpy", "array-api", *cupy)


@pytest.mark.parametrize("target", TARGETS)
def test_a_form_safe_mode_rejects_is_emitted_by_no_target(target):
    """exp(1/(1+exp(-x))): safe mode rejects the stabilized second derivative (off by 1e-3 at
    30, and 0 for -1.4e-130 at 300, on the array-api and cupy targets before every target was
    checked); every target now emits the form that verified."""

    @sg.activation
    def exp_sigmoid(x):
        return sp.exp(1 / (1 + sp.exp(-x)))

    x = sp.Symbol("x", real=True)
    exact = sp.diff(sp.exp(1 / (1 + sp.exp(-x))), x, 2)
    want = [float(sp.N(exact.subs(x, v), 40)) for v in (30, 300)]
    module = _runnable(sg.compile(exp_sigmoid, target=target), target)
    got = np.asarray(module.exp_sigmoid_hess(np.array([30.0, 300.0])))
    np.testing.assert_allclose(got, want, rtol=1e-13)
