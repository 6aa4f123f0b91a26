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
            _compare(name, np.sum(got, dtype=np.float64) if o == "value" else got, v, dtype)


def test_every_elementwise_kernel_has_a_c_body():
    """Every function of the numpy target without a class axis is in the cupy target."""
    class_axis = re.compile(r"^(softmax|softmax_cross_entropy|categorical_cross_entropy|kl_div)")
    for module, fused in MODULES.items():
        want = {n for n in module.__all__ if not class_axis.match(n)}
        assert set(fused.C_KERNELS) == want == set(fused.__all__)


def test_module_imports_without_cupy_and_says_so():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed here")
    with pytest.raises(ModuleNotFoundError, match="cupy"):
        MODULES[A].sigmoid_grad(np.zeros(3))


def test_weight_helpers_check_and_divide_like_the_numpy_target():
    """The cupy modules' weight= helpers (run here with numpy as the array module): the mean's
    divisor is count, else the sum of the weights, else the size; bad weights fail clearly."""
    fused, x = MODULES[L], np.zeros((2, 3), np.float32)
    w, inv_n = fused._weighting("huber", [1, 2, 3], x, None, xp=np)
    assert w.dtype == np.float32 and w.shape == (2, 3) and inv_n == 1 / 12
    assert fused._weighting("huber", [1, 2, 3], x, 4.0, xp=np)[1] == 0.25
    one, inv_n = fused._weighting("huber", None, x, None, xp=np)
    assert one == 1 and one.dtype == np.float32 and inv_n == 1 / 6
    for bad, match in [
        ([1, 2], "huber: weight of shape \\(2,\\) does not broadcast to one per element"),
        ([1, -1, 0], "huber: weight must be finite and non-negative"),
        ([0, 0, 0], "huber: the weights sum to zero; pass count="),
    ]:
        with pytest.raises(ValueError, match=match):
            fused._weighting("huber", bad, x, None, xp=np)
    with pytest.raises(TypeError, match="huber: weight has dtype"):
        fused._weights("huber", ["a"], x, xp=np)
