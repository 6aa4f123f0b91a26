"""The cupy target's C kernel bodies, compiled on the CPU with the system C compiler (a shared
library loaded with ctypes: ``symgrad.compiler.targets.c_on_cpu``, which safe mode uses too),
give the numpy target's results for every kernel, in float64 and float32."""

from __future__ import annotations

import importlib.util
import inspect
import re

import numpy as np
import pytest
from conftest import emitted_args

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from symgrad.compiler.targets import c_on_cpu
from symgrad.compiler.targets.c_on_cpu import names as _names
from symgrad.resources import generated_dir

if c_on_cpu.compiler() is None:  # .ci/run fails before the tests when there is none
    pytest.skip("no C compiler", allow_module_level=True)

DTYPES = {"f64": np.float64, "f32": np.float32}
STEMS = {A: "activations", L: "losses", R: "regularizers"}


def _load(stem: str):
    spec = importlib.util.spec_from_file_location(
        f"symgrad_test_{stem}_cupy", generated_dir() / f"{stem}_cupy.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {m: _load(stem) for m, stem in STEMS.items()}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """Compile every kernel of the three cupy modules, for double and float, into one library."""
    where = tmp_path_factory.mktemp("kernels")
    return c_on_cpu.Library({STEMS[m]: fused for m, fused in MODULES.items()}, where)


def _c_name(module, name: str) -> str:
    return f"{module.__name__.rsplit('_', 2)[-2]}_{name}"  # l1 is a loss and a regularizer


def _run(lib, name, kernel, suffix, arrays, scalars):
    dtype = DTYPES[suffix]
    values = [np.asarray(a, dtype) for a in arrays] + [dtype(s) for s in scalars]
    return lib.map(name, len(_names(kernel[1])), values)


def _compare(name, got, want, dtype):
    eps = float(np.finfo(dtype).eps)
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    finite = np.isfinite(want)
    assert np.array_equal(finite, np.isfinite(got)), f"{name}: finite in one target only"
    scale = np.max(np.abs(want[finite]), initial=0.0)
    np.testing.assert_allclose(
        got[finite], want[finite], rtol=256 * eps, atol=64 * eps * scale, err_msg=name
    )


CASES = [(m, n) for m in MODULES for n in sorted(MODULES[m].C_KERNELS)]


@pytest.mark.parametrize("suffix", list(DTYPES))
@pytest.mark.parametrize(
    ("module", "name"), CASES, ids=[f"{m.__name__.rsplit('.', 1)[-1]}-{n}" for m, n in CASES]
)
def test_c_body_matches_numpy_target(lib, module, name, suffix, rng):
    kernel = MODULES[module].C_KERNELS[name]
    fn = getattr(module, name)
    sig = inspect.signature(getattr(MODULES[module], name))
    n_arrays = sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in sig.parameters.values())
    dtype = DTYPES[suffix]
    arrays = [a.astype(dtype) for a in emitted_args(module, name, rng)][:n_arrays]
    arrays = list(np.broadcast_arrays(*arrays))
    ins = _names(kernel[0])
    hyper = {p.name: p.default for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}
    weighted = "weight" in ins  # a loss: weight=None is the scalar 1, else one per element
    shape = arrays[0].shape
    for weight in [None, rng.uniform(0, 2, shape) * (rng.uniform(size=shape) > 0.2)]:
        if weight is not None and not weighted:
            break
        w = np.ones(shape, dtype) if weight is None else weight.astype(dtype)
        hyper["inv_n"] = 1 / (w.size if weight is None else np.sum(w, dtype=np.float64))
        scalars = [hyper[v] for v in ins[n_arrays + weighted :]]
        kernel_arrays = [*arrays, w] if weighted else arrays
        outs = _run(lib, _c_name(MODULES[module], name), kernel, suffix, kernel_arrays, scalars)
        with np.errstate(all="ignore"):
            want = fn(*arrays, weight=None if weight is None else w) if weighted else fn(*arrays)
        want = want if isinstance(want, tuple) else (want,)
        for o, got, v in zip(_names(kernel[1]), outs, want, strict=True):
            total = np.sum(got, dtype=np.float64) * (hyper["inv_n"] if weighted else 1.0)
            _compare(name, total if o == "total" else got, v, dtype)


def test_every_kernel_has_a_c_body():
    """Every function of the numpy target is in the cupy target: one ElementwiseKernel without a
    class axis, row reductions and maps (C_STAGES) with one."""
    class_axis = re.compile(r"^(softmax|softmax_cross_entropy|categorical_cross_entropy|kl_div)")
    for module, fused in MODULES.items():
        want = {n for n in module.__all__ if not class_axis.match(n)}
        assert set(fused.C_KERNELS) == want
        assert set(getattr(fused, "C_STAGES", {})) == set(module.__all__) - want
        assert set(fused.__all__) == set(module.__all__)


def _run_stage(lib, module, name: str, index: int, values: list, suffix: str) -> list:
    """Run kernel ``index`` of class-axis function ``name`` on ``values`` (its in params, arrays
    or scalars) as CuPy would: broadcast, then a row reduction or an element-wise map."""
    dtype = DTYPES[suffix]
    kind, _, outs, _ = MODULES[module].C_STAGES[name][index]
    values = [np.asarray(v, dtype) for v in values]
    stage = f"{_c_name(MODULES[module], name)}_{index}"
    if kind == "map":
        return lib.map(stage, len(_names(outs)), values)
    return [lib.reduce(stage, values)]


def _run_stages(lib, module, name: str, env: dict, suffix: str) -> dict:
    """Run the kernels of class-axis function ``name`` in order on the values in ``env``
    (inputs, scalars, weight); return ``env`` with every result added."""
    for i, (_, ins, outs, _) in enumerate(MODULES[module].C_STAGES[name]):
        got = _run_stage(lib, module, name, i, [env[v] for v in _names(ins)], suffix)
        env.update(zip(_names(outs), got, strict=True))
    return env


ROW_CASES = [(m, n) for m in MODULES for n in sorted(getattr(MODULES[m], "C_STAGES", {}))]


@pytest.mark.parametrize("suffix", list(DTYPES))
@pytest.mark.parametrize(
    ("module", "name"),
    ROW_CASES,
    ids=[f"{m.__name__.rsplit('.', 1)[-1]}-{n}" for m, n in ROW_CASES],
)
def test_class_axis_kernels_match_numpy_target(lib, module, name, suffix, rng):
    """Row max, sums over classes and the element-wise maps give the numpy target's softmax,
    its vjp and the class-axis losses (value, per sample, gradient, Hessian, hvp), with and
    without per-row weights."""
    fn = getattr(module, name)
    sig = inspect.signature(getattr(MODULES[module], name))
    dtype = DTYPES[suffix]
    arrays = [a.astype(dtype) for a in emitted_args(module, name, rng)]
    names = [p.name for p in sig.parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    hyper = {p.name: p.default for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}
    shape = arrays[0].shape
    loss = "weight" in hyper
    for weight in [None, rng.uniform(0, 2, shape[:-1]) * (rng.uniform(size=shape[:-1]) > 0.2)]:
        if weight is not None and not loss:
            break
        w = None if weight is None else weight.astype(dtype)
        env = {**dict(zip(names, arrays, strict=True)), **hyper, "n_classes": shape[-1]}
        env["weight"] = 1 if w is None else w[..., None]
        rows = int(np.prod(shape[:-1]))
        env["inv_n"] = 1 / (rows if w is None else np.sum(w, dtype=np.float64))
        env = _run_stages(lib, module, name, env, suffix)
        outs = [o for st in MODULES[module].C_STAGES[name] if st[0] == "map" for o in _names(st[2])]
        got = [
            env["inv_n"] * np.sum(env[o], dtype=np.float64) if o == "total" else env[o]
            for o in outs
        ]
        if name.endswith("_per_sample"):
            got = [got[0][..., 0]]
        with np.errstate(all="ignore"):
            want = fn(*arrays, weight=w) if loss else fn(*arrays)
        want = want if isinstance(want, tuple) else (want,)
        for g, v in zip(got, want, strict=True):
            _compare(f"{name} weight={w is not None}", g, v, dtype)


def test_module_imports_without_cupy_and_says_so():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed here")
    with pytest.raises(ModuleNotFoundError, match="cupy"):
        MODULES[A].sigmoid_grad(np.zeros(3))


def test_weight_helpers_check_and_divide_like_the_numpy_target():
    """The cupy modules' weight= helpers (run here with numpy as the array module): the mean's
    divisor is count, else the sum of the weights, else the size; bad weights fail clearly."""
    fused, x = _load("losses"), np.zeros((2, 3), np.float32)
    fused._xp = lambda: np
    w, inv_n = fused._weighting("huber", [1, 2, 3], x, None, False)
    assert w.dtype == np.float32 and w.shape == (2, 3) and inv_n == 1 / 12
    assert fused._weighting("huber", [1, 2, 3], x, 4.0, False)[1] == 0.25
    one, inv_n = fused._weighting("huber", None, x, None, False)
    assert one == 1 and one.dtype == np.float32 and inv_n == 1 / 6
    rows, inv_n = fused._weighting("kl_div", [1, 3], x, None, True)
    assert rows.shape == (2, 1) and inv_n == 1 / 4
    assert fused._weighting("kl_div", None, x, None, True)[1] == 1 / 2
    for bad, rows, match in [
        ([1, 2], False, "huber: weight of shape \\(2,\\) does not broadcast to one per element"),
        ([1, 2, 3], True, "huber: weight of shape \\(3,\\) does not broadcast to one per row"),
        ([1, -1, 0], False, "huber: weight must be finite and non-negative"),
        ([0, 0, 0], False, "huber: the weights sum to zero; pass count="),
    ]:
        with pytest.raises(ValueError, match=match):
            fused._weighting("huber", bad, x, None, rows)
    with pytest.raises(TypeError, match="huber: weight has dtype"):
        fused._weights("huber", ["a"], x, False)


@pytest.mark.parametrize("suffix", list(DTYPES))
def test_class_axis_wrappers_call_their_kernels_in_order(lib, suffix, rng):
    """The generated wrappers of the class-axis functions, run with each cupy kernel replaced by
    the same C compiled here (and numpy for cupy's arrays), return the numpy target's results:
    their arguments, scalars, keepdims reductions and finishing sums are the right ones."""
    dtype = DTYPES[suffix]
    for module, name in ROW_CASES:
        fused = _load(MODULES[module].__name__.rsplit("_", 2)[-2])  # a fresh copy to patch

        def stage(name, index, module=module):
            kind = MODULES[module].C_STAGES[name][index][0]

            def call(*values, axis=None, keepdims=False):
                assert (axis, keepdims) == ((None, False) if kind == "map" else (-1, True))
                out = _run_stage(lib, module, name, index, list(values), suffix)
                return out[0] if len(out) == 1 else tuple(out)

            return call

        fused._stage, fused._xp = stage, lambda: np
        arrays = [a.astype(dtype) for a in emitted_args(module, name, rng)]
        got = getattr(fused, name)(*arrays)
        with np.errstate(all="ignore"):
            want = getattr(module, name)(*arrays)
        got, want = (
            (got if isinstance(got, tuple) else (got,)),
            (want if isinstance(want, tuple) else (want,)),
        )
        for g, w in zip(got, want, strict=True):
            assert np.shape(g) == np.shape(w), name
            _compare(name, g, w, dtype)


@pytest.mark.parametrize("suffix", list(DTYPES))
def test_elementwise_wrappers_call_their_kernels(lib, suffix, rng):
    """The element-wise wrappers, run with each ElementwiseKernel replaced by the same C compiled
    here: their arguments (weight as the scalar 1, scalars of the input's type) and sums."""
    dtype = DTYPES[suffix]
    for module, name in CASES:
        fused = _load(MODULES[module].__name__.rsplit("_", 2)[-2])
        kernel = MODULES[module].C_KERNELS[name]

        def run(*values, kernel=kernel, name=name, fused=fused):
            assert all(np.asarray(v).dtype == dtype for v in values), name
            values = np.broadcast_arrays(*values)
            out = _run(lib, _c_name(fused, name), kernel, suffix, values, [])
            return out[0] if len(out) == 1 else tuple(out)

        fused._kernel = lambda _name, run=run: run
        fused._xp = lambda: np
        arrays = [a.astype(dtype) for a in emitted_args(module, name, rng)]
        arrays = arrays[: len(_names(kernel[0]))]
        n_arrays = sum(
            p.kind == p.POSITIONAL_OR_KEYWORD
            for p in inspect.signature(getattr(fused, name)).parameters.values()
        )
        got = getattr(fused, name)(*arrays[:n_arrays])
        with np.errstate(all="ignore"):
            want = getattr(module, name)(*arrays[:n_arrays])
        got, want = (
            (got if isinstance(got, tuple) else (got,)),
            (want if isinstance(want, tuple) else (want,)),
        )
        for g, w in zip(got, want, strict=True):
            _compare(name, g, w, dtype)
