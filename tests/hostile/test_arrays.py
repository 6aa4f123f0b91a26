"""Hostile arrays against every emitted function (a registry sweep) on every target: dtypes,
shapes, counts, hyper-parameters and empty inputs give the documented result or one clear error,
never a silently wrong number (docs/inputs.md). The rules live in one template
(``templates/inputs.py.jinja``) that every target's module includes; the sweep runs the numpy
target, the array-api target on array-api-strict and torch (CPU) arrays, and the cupy target's
wrappers with their C bodies compiled on the CPU (``symgrad.compiler.targets.c_on_cpu``)."""

from __future__ import annotations

import importlib.util
import inspect

import numpy as np
import pytest

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from symgrad import blocked
from symgrad.compiler.targets import c_on_cpu
from symgrad.resources import generated_dir

CLASS_AXIS = ("softmax_cross_entropy", "categorical_cross_entropy", "kl_div", "softmax")
FUNCTIONS = [(m, n) for m in (A, L, R) for n in m.__all__]
IDS = [f"{m.__name__.split('.')[-1]}.{n}" for m, n in FUNCTIONS]
STEMS = {A: "activations", L: "losses", R: "regularizers"}
TARGETS = ["numpy", "array-api-strict", "torch", "cupy-c"]


def _load(stem: str, suffix: str):
    path = generated_dir() / f"{stem}{suffix}.py"
    spec = importlib.util.spec_from_file_location(f"symgrad_hostile_{stem}{suffix}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Target:
    """One target's modules and how to pass it arrays: ``arg`` converts a numpy input (one it
    cannot represent, an object array or a list, goes in as it is), ``back`` a result."""

    def __init__(self, modules: dict, arg=lambda a: a, back=np.asarray) -> None:
        self.modules, self.arg, self.back = modules, arg, back

    def fn(self, module, name):
        return getattr(self.modules[module], name)

    def __call__(self, module, name, *args, **kwargs):
        fn = self.fn(module, name)
        out = fn(*(self.arg(a) for a in args), **{k: self.arg(v) for k, v in kwargs.items()})
        return tuple(self.back(o) for o in out) if isinstance(out, tuple) else self.back(out)


def _convert(asarray):
    def arg(a):
        if isinstance(a, np.ndarray) and a.dtype.kind in "biufc":
            return asarray(a)
        return a

    return arg


@pytest.fixture(scope="module", params=TARGETS)
def target(request, tmp_path_factory):
    if request.param == "numpy":
        return Target({m: m for m in STEMS})
    if request.param == "cupy-c":
        if c_on_cpu.compiler() is None:
            pytest.skip("no C compiler: the cupy target's C bodies cannot run on the CPU")
        modules = {m: _load(stem, "_cupy") for m, stem in STEMS.items()}
        lib = c_on_cpu.Library({STEMS[m]: mod for m, mod in modules.items()})
        return Target({m: lib.bind(STEMS[m], mod) for m, mod in modules.items()})
    pytest.importorskip("array_api_compat")
    modules = {m: _load(stem, "_xp") for m, stem in STEMS.items()}
    if request.param == "torch":
        torch = pytest.importorskip("torch")
        return Target(modules, _convert(torch.asarray), lambda t: t.numpy())
    xps = pytest.importorskip("array_api_strict")
    return Target(modules, _convert(xps.asarray))


def arrays_of(fn) -> list[str]:
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]


def parts(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def class_axis(name: str) -> bool:
    return name.startswith(CLASS_AXIS)


def inputs(name: str, fn, shape=None, dtype=float) -> list[np.ndarray]:
    """Return valid inputs in (0, 1) (probabilities suit every built-in), of ``dtype``."""
    shape = shape if shape is not None else ((4, 3) if class_axis(name) else (6,))
    rng = np.random.default_rng(0)
    return [rng.uniform(0.05, 0.95, shape).astype(dtype) for _ in arrays_of(fn)]


@pytest.mark.parametrize(("module", "name"), FUNCTIONS, ids=IDS)
def test_integer_and_bool_inputs_are_converted_to_float(target, module, name):
    fn = getattr(module, name)
    for dtype in (np.uint8, np.int8, np.int64, bool):
        ints = [np.arange(a.size, dtype=np.int64).reshape(a.shape) % 2 for a in inputs(name, fn)]
        with np.errstate(all="ignore"):
            got = target(module, name, *(a.astype(dtype) for a in ints))
            want = target(module, name, *(a.astype(float) for a in ints))
        for g, w in zip(parts(got), parts(want), strict=True):
            np.testing.assert_array_equal(g, w)


def test_integer_examples_from_the_issue(target):
    assert float(target(L, "mse", np.array([0, 1], np.uint8), np.array([1, 0], np.uint8))) == 1.0
    got = target(A, "sigmoid", np.array([-128], np.int8))[0]
    assert got == pytest.approx(1 / (1 + np.exp(128)), rel=1e-12, abs=0)


@pytest.mark.parametrize(("module", "name"), FUNCTIONS, ids=IDS)
@pytest.mark.parametrize(
    "bad",
    [
        np.array([1 + 2j, 0.5 + 0j, 0.25 + 0j]),
        np.array([0.5, 0.5, 0.5], dtype=object),
        np.array(["0.5", "0.5", "0.5"]),
        np.array([b"a", b"b", b"c"]),
        np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
        [[0.5], [0.5, 0.5]],  # ragged
        {"a": 1},
    ],
    ids=["complex", "object", "str", "bytes", "datetime", "ragged", "dict"],
)
def test_non_real_inputs_are_one_type_error_naming_function_and_argument(target, module, name, bad):
    fn = getattr(module, name)
    names = arrays_of(fn)
    for i, arg in enumerate(names):
        args = inputs(name, fn, shape=(3,) if not class_axis(name) else (1, 3))
        args[i] = bad
        with pytest.raises(TypeError) as info:
            target(module, name, *args)
        message = str(info.value)
        assert message.startswith(f"{name}: {arg} ") and "\n" not in message, message


def test_complex_input_is_refused_not_cut_to_its_real_part(target):
    with pytest.raises(TypeError, match=r"^sigmoid: x has dtype \S*complex128"):
        target(A, "sigmoid", np.array([1 + 1j]))


@pytest.mark.parametrize("name", L.__all__)
def test_loss_never_broadcasts_yhat_up(target, name):
    fn = getattr(L, name)
    names = arrays_of(fn)
    small = (5, 1) if not class_axis(name) else (5, 1, 3)
    big = (5,) if not class_axis(name) else (5, 4, 3)
    for i in range(1, len(names)):
        args = inputs(name, fn, shape=small)
        args[i] = inputs(name, fn, shape=big)[i]
        with pytest.raises(ValueError) as info:
            target(L, name, *args)
        message = str(info.value)
        assert f"{names[0]} of shape {small}" in message and f"of shape {big}" in message
        assert "would broadcast" in message and "\n" not in message
    # targets broadcast TO yhat's shape: the gradient keeps yhat's shape
    args = inputs(name, fn)
    args[1:] = [a[:1] for a in args[1:]]
    with np.errstate(all="ignore"):
        result = parts(target(L, name, *args))
    for part in result:
        if np.ndim(part):  # a class-axis loss's per-sample values: one per row
            rows = name.endswith("_per_sample") and class_axis(name)
            assert part.shape == (args[0].shape[:-1] if rows else args[0].shape)


def test_issue_example_broadcast_up(target):
    with pytest.raises(ValueError, match=r"yhat of shape \(5, 1\) and y of shape \(5,\)"):
        target(L, "mse_value_and_grad", np.zeros((5, 1)), np.zeros(5))


LOSS_FUNCTIONS = [n for n in L.__all__ if "count" in inspect.signature(getattr(L, n)).parameters]


@pytest.mark.parametrize("name", LOSS_FUNCTIONS)
def test_bad_count_is_one_value_error(target, name):
    fn = getattr(L, name)
    for count in [0, -1, -0.5, True, False, np.bool_(True), float("nan"), float("inf"), 10**400]:
        with pytest.raises(ValueError, match=rf"^{name}: count must be a positive finite number"):
            target(L, name, *inputs(name, fn), count=count)
    for count in ["3", [3]]:  # not converted to arrays: they stay what they are
        with pytest.raises(ValueError, match=rf"^{name}: count must be a positive finite number"):
            target.fn(L, name)(*(target.arg(a) for a in inputs(name, fn)), count=count)


@pytest.mark.parametrize("name", LOSS_FUNCTIONS)
def test_good_counts(target, name):
    fn = getattr(L, name)
    args = inputs(name, fn)
    base = target(L, name, *args)
    for count in (3, 3.0, np.int32(3), np.float32(3)):
        scaled = target.fn(L, name)(*(target.arg(a) for a in args), count=count)
        rows = args[0].shape[0] if class_axis(name) else args[0].size
        for s, b in zip(parts(scaled), parts(base), strict=True):
            np.testing.assert_allclose(target.back(s), np.asarray(b) * rows / 3, rtol=1e-12)


@pytest.mark.parametrize(("module", "name"), FUNCTIONS, ids=IDS)
def test_empty_inputs(target, module, name):
    fn = getattr(module, name)
    shape = (0, 3) if class_axis(name) else (0,)
    for part in parts(target(module, name, *inputs(name, fn, shape=shape))):
        if np.ndim(part):  # a class-axis loss's per-sample values: one per row
            rows = name.endswith("_per_sample") and class_axis(name)
            assert part.shape == (shape[:-1] if rows else shape)
        else:  # the mean of nothing is NaN; a sum (regularizer) of nothing is 0
            assert np.isnan(part) if module is L else part == 0.0


def test_empty_inputs_through_blocked_match():
    e = np.zeros(0)
    value, grad = blocked.loss_value_and_grad(L.mse_value_and_grad, e, e)
    assert np.isnan(value) and grad.shape == (0,)
    value, grad = L.mse_value_and_grad(e, e)
    assert np.isnan(value) and grad.shape == (0,)
    assert blocked.elementwise(A.sigmoid, e).shape == (0,)
    assert L.mse(e, e, count=4) == 0.0  # a block of nothing adds nothing to a counted mean


@pytest.mark.parametrize("name", [n for n in CLASS_AXIS if n in L.__all__ or n in A.__all__])
def test_class_axis_needs_a_class_axis(target, name):
    module = L if name in L.__all__ else A
    fn = getattr(module, name)
    for shape in ((), (4, 0)):
        with pytest.raises(ValueError, match=rf"^{name}: .* has no class axis"):
            target(module, name, *inputs(name, fn, shape=shape))


def test_zero_d_inputs_are_elementwise(target):
    assert target(A, "sigmoid", np.array(0.0)).shape == ()
    assert float(target(L, "mse", np.array(2.0), np.array(0.0))) == 4.0


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (L.huber, {"delta": -1.0}),
        (L.huber_grad, {"delta": 0.0}),
        (L.huber_grad_hess, {"delta": -1.0}),
        (L.smooth_l1, {"beta": 0}),
        (L.pinball, {"tau": -0.1}),
        (L.sigmoid_focal, {"gamma": -1.0}),
        (L.sigmoid_focal_grad, {"alpha": 2.0}),
        (A.softplus, {"beta": float("nan")}),
        (A.elu, {"alpha": float("inf")}),
        (A.leaky_relu, {"alpha": np.array([0.1, 0.2])}),
        (R.l1, {"lam": -1}),
        (R.elastic_net_grad, {"l1_ratio": 1.5}),
        (R.l2, {"lam": True}),
        (R.l2, {"lam": 10**400}),
        (L.huber, {"delta": "1"}),
    ],
    ids=lambda v: getattr(v, "__name__", repr(v)),
)
def test_hyper_parameters_out_of_domain(target, fn, kwargs):
    name = fn.__name__
    module = next(m for m in STEMS if getattr(m, name, None) is fn)
    param = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"^{name}: {param} must be "):
        target.fn(module, name)(*(target.arg(a) for a in inputs(name, fn)), **kwargs)


def test_weight_rules(target):
    """weight= is checked by the same rules on every target."""
    yhat, y = inputs("huber", L.huber)
    for weight, error, match in [
        (np.ones(4), ValueError, r"^huber: weight of shape \(4,\) does not broadcast to one per"),
        (-np.ones(6), ValueError, "^huber: weight must be finite and non-negative"),
        (np.full(6, np.nan), ValueError, "^huber: weight must be finite and non-negative"),
        (np.zeros(6), ValueError, "^huber: the weights sum to zero; pass count="),
        (np.ones(6) * 1j, TypeError, r"^huber: weight has dtype \S*complex128"),
    ]:
        with pytest.raises(error, match=match):
            target(L, "huber", yhat, y, weight=weight)


def test_bad_out():
    x = np.zeros(3)
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="sigmoid_grad: out is read-only"):
        A.sigmoid_grad(x, out=frozen)
    with pytest.raises(ValueError, match="out must be a float array"):
        A.sigmoid_grad(x, out=np.zeros(3, dtype=complex))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block": 1.5}, "block .* must be an integer >= 1, got 1.5"),
        ({"block": 0}, "block .* must be an integer >= 1"),
        ({"block": True}, "block .* must be an integer >= 1"),
        ({"workers": 0}, "workers .* must be an integer >= 1, got 0"),
        ({"workers": -2}, "workers .* must be an integer >= 1"),
        ({"workers": 1.0}, "workers .* must be an integer >= 1"),
    ],
)
def test_blocked_arguments(kwargs, message):
    x = np.zeros(10)
    with pytest.raises(ValueError, match=message):
        blocked.elementwise(A.sigmoid, x, **kwargs)
    with pytest.raises(ValueError, match=message):
        blocked.loss_value_and_grad(L.mse_value_and_grad, x, x, **kwargs)


def test_blocked_inputs():
    with pytest.raises(TypeError, match="blocked.loss_value_and_grad: yhat has dtype complex"):
        blocked.loss_value_and_grad(L.mse_value_and_grad, np.ones(3) * 1j, np.ones(3))
    with pytest.raises(ValueError, match=r"y of shape \(5,\) does not broadcast to yhat's"):
        blocked.loss_value_and_grad(L.mse_value_and_grad, np.zeros((5, 1)), np.zeros(5))
    value, grad = blocked.loss_value_and_grad(
        L.mse_value_and_grad, np.array([0, 1], np.uint8), np.array([1, 0], np.uint8)
    )
    assert value == 1.0 and grad.tolist() == [-1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": None}, "fit: optimizer must be a symgrad Optimizer"),
        ({"optimizer": 3}, "fit: optimizer must be a symgrad Optimizer"),
        ({"objective": lambda p, X, y: 1.0}, r"fit: objective must return a pair \(loss, grads\)"),
        ({"objective": None}, "fit: objective must be callable"),
        ({"X": {"a": np.zeros((4, 2))}}, "fit: X must be an array indexed along axis 0"),
        ({"X": "abcd"}, "fit: X must be an array"),
        ({"y": {1, 2, 3, 4}}, "fit: y must be an array"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_fit_arguments(kwargs, message):
    import symgrad as sg

    args = {
        "objective": lambda p, X, y: (float(np.sum(p**2)), 2 * p),
        "params": np.ones(2),
        "X": np.zeros((4, 2)),
        "y": np.zeros(4),
        "optimizer": "sgd",
    } | kwargs
    with pytest.raises(TypeError, match=f"^{message}"):
        sg.fit(
            args.pop("objective"),
            args.pop("params"),
            args.pop("X"),
            args.pop("y"),
            epochs=1,
            **args,
        )
