"""The cupy target's C kernel bodies, compiled on the CPU with the system C compiler (a shared
library loaded with cffi's ABI mode, so no Python headers are needed), give
the numpy target's results for every element-wise kernel, in float64 and float32."""

from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import emitted_args

import symgrad.activations as A
import symgrad.losses as L
import symgrad.regularizers as R
from symgrad.compiler.cuda import FUNCTIONS as C_FUNCTIONS
from symgrad.resources import generated_dir

cffi = pytest.importorskip("cffi")
COMPILER = shutil.which("cc") or shutil.which("gcc")
if COMPILER is None:  # .ci/run fails before the tests when there is none
    pytest.skip("no C compiler", allow_module_level=True)

CTYPES = {"f64": "double", "f32": "float"}
#: C maths functions the bodies may call (the C column of the spelling table, and more)
MATH = sorted(
    {f for f in C_FUNCTIONS.values() if not f.startswith("sg_")}
    | {"fmax", "fmin", "sqrt", "pow", "erf", "erfc"}
)
DTYPES = {"f64": np.float64, "f32": np.float32}


def _load(stem: str):
    spec = importlib.util.spec_from_file_location(
        f"symgrad_test_{stem}_cupy", generated_dir() / f"{stem}_cupy.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {A: _load("activations"), L: _load("losses"), R: _load("regularizers")}


def _names(params: str) -> list[str]:
    return [p.split()[-1] for p in params.split(",") if p.strip()]


def _c_function(name: str, kernel: tuple[str, str, str], suffix: str) -> tuple[str, str]:
    """Return the declaration and definition looping the very same body over n elements."""
    ins, outs = _names(kernel[0]), _names(kernel[1])
    args = ["long sg_n", "const T *const *sg_in", "T *const *sg_out"]
    decl = f"void {name}_{suffix}({', '.join(args)})".replace("T ", CTYPES[suffix] + " ")
    loads = "".join(f"        const T {v} = sg_in[{i}][sg_i];\n" for i, v in enumerate(ins))
    decls = "".join(f"        T {v};\n" for v in outs)
    body = "\n".join("            " + line for line in kernel[2].strip().splitlines())
    stores = "".join(f"        sg_out[{i}][sg_i] = {v};\n" for i, v in enumerate(outs))
    code = (
        f"{decl} {{\n    for (long sg_i = 0; sg_i < sg_n; sg_i++) {{\n{loads}{decls}"
        f"        {{\n{body}\n        }}\n{stores}    }}\n}}\n"
    )
    return decl + ";", code


def _c_reduction(name: str, ins: str, expr: str, reduce: tuple[str, str], suffix: str):
    """Return the declaration and definition of a row reduction as cupy.ReductionKernel runs it:
    a = identity, then a = reduce_expr(a, b) with b the map expression at each class."""
    args = ["long sg_rows", "long sg_cols", "const T *const *sg_in", "T *sg_out"]
    decl = f"void {name}_{suffix}({', '.join(args)})".replace("T ", CTYPES[suffix] + " ")
    loads = "".join(
        f"            const T {v} = sg_in[{i}][sg_i];\n" for i, v in enumerate(_names(ins))
    )
    reduce_expr, identity = reduce
    code = (
        f"{decl} {{\n    for (long sg_r = 0; sg_r < sg_rows; sg_r++) {{\n"
        f"        T a = {identity};\n"
        "        for (long sg_c = 0; sg_c < sg_cols; sg_c++) {\n"
        "            const long sg_i = sg_r * sg_cols + sg_c;\n"
        f"{loads}            const T b = {expr};\n            a = {reduce_expr};\n        }}\n"
        "        sg_out[sg_r] = a;\n    }\n}\n"
    )
    return decl + ";", code


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """Compile every kernel of the three cupy modules, for double and float, into one library."""
    ffi = cffi.FFI()
    decls, parts = [], ["#include <math.h>\n"]
    for suffix, ctype in CTYPES.items():
        parts.append(f"#define T {ctype}\n")
        if ctype == "float":  # float overloads, as CUDA C++ picks them (tgmath.h compiles slowly)
            parts += [f"#define {f}(...) {f}f(__VA_ARGS__)\n" for f in MATH]
        for module in MODULES.values():
            parts.append(module.PREAMBLE)
            for name, kernel in module.C_KERNELS.items():
                decl, code = _c_function(_c_name(module, name), kernel, suffix)
                decls.append(decl)
                parts.append(code)
            for name, stages in getattr(module, "C_STAGES", {}).items():
                for i, (kind, ins, outs, text) in enumerate(stages):
                    stage = f"{_c_name(module, name)}_{i}"
                    if kind == "map":
                        decl, code = _c_function(stage, (ins, outs, text), suffix)
                    else:
                        decl, code = _c_reduction(stage, ins, text, module.REDUCE[kind], suffix)
                    decls.append(decl)
                    parts.append(code)
            parts.append("#undef sg_sign\n#undef sg_logaddexp\n")
        parts.append("#undef T\n")
        if ctype == "float":
            parts += [f"#undef {f}\n" for f in MATH]
    ffi.cdef("\n".join(decls))
    where = tmp_path_factory.mktemp("kernels")
    (where / "kernels.c").write_text("".join(parts))
    flags = ["-O0", "-std=c99", "-Werror=implicit-function-declaration", "-shared", "-fPIC"]
    subprocess.run(
        [COMPILER, *flags, "kernels.c", "-o", "kernels.so", "-lm"],
        cwd=where,
        check=True,
        capture_output=True,
    )
    return ffi, ffi.dlopen(str(where / "kernels.so"))


def _c_name(module, name: str) -> str:
    return f"{module.__name__.rsplit('_', 2)[-2]}_{name}"  # l1 is a loss and a regularizer


def _run(lib, name, kernel, suffix, arrays, scalars):
    ffi, clib = lib
    dtype = DTYPES[suffix]
    n = arrays[0].size
    ins = [np.ascontiguousarray(np.broadcast_to(a, arrays[0].shape), dtype) for a in arrays]
    ins += [np.full(n, s, dtype) for s in scalars]
    outs = [np.empty(n, dtype) for _ in _names(kernel[1])]
    ctype = CTYPES[suffix]
    in_ptrs = ffi.new(f"{ctype} *[]", [ffi.cast(f"{ctype} *", a.ctypes.data) for a in ins])
    out_ptrs = ffi.new(f"{ctype} *[]", [ffi.cast(f"{ctype} *", a.ctypes.data) for a in outs])
    getattr(clib, f"{name}_{suffix}")(n, in_ptrs, out_ptrs)
    return [o.reshape(arrays[0].shape) for o in outs]


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


@pytest.mark.parametrize("suffix", list(CTYPES))
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
    ffi, clib = lib
    dtype, ctype = DTYPES[suffix], CTYPES[suffix]
    kind, ins, outs, text = MODULES[module].C_STAGES[name][index]
    values = [np.asarray(v, dtype) for v in values]
    shape = np.broadcast_shapes(*(v.shape for v in values))
    values = [np.ascontiguousarray(np.broadcast_to(v, shape)) for v in values]
    stage = f"{_c_name(MODULES[module], name)}_{index}"
    if kind == "map":
        return _run(lib, stage, (ins, outs, text), suffix, values, [])
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    out = np.empty(shape[:-1] + (1,), dtype)
    ptrs = ffi.new(f"{ctype} *[]", [ffi.cast(f"{ctype} *", v.ctypes.data) for v in values])
    getattr(clib, f"{stage}_{suffix}")(rows, cols, ptrs, ffi.cast(f"{ctype} *", out.ctypes.data))
    return [out]


def _run_stages(lib, module, name: str, env: dict, suffix: str) -> dict:
    """Run the kernels of class-axis function ``name`` in order on the values in ``env``
    (inputs, scalars, weight); return ``env`` with every result added."""
    for i, (_, ins, outs, _) in enumerate(MODULES[module].C_STAGES[name]):
        got = _run_stage(lib, module, name, i, [env[v] for v in _names(ins)], suffix)
        env.update(zip(_names(outs), got, strict=True))
    return env


ROW_CASES = [(m, n) for m in MODULES for n in sorted(getattr(MODULES[m], "C_STAGES", {}))]


@pytest.mark.parametrize("suffix", list(CTYPES))
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


@pytest.mark.parametrize("suffix", list(CTYPES))
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


@pytest.mark.parametrize("suffix", list(CTYPES))
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
