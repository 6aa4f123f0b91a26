"""Run a CuPy-target module on the CPU: its C bodies compiled with the system C compiler.

Every ``C_KERNELS`` body and ``C_STAGES`` kernel of a generated cupy module is wrapped in a
plain C loop (an element-wise map over n elements, or a row reduction as cupy.ReductionKernel
runs it), compiled for double and float into one shared library and loaded with ctypes. ``bind``
then points the module's ``_xp``, ``_kernel`` and ``_stage`` at numpy and that library, so the
very wrappers and C bodies CuPy would run are what safe mode and the tests call. Where there is
no C compiler, ``compiler()`` is None and nothing here runs.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np

from symgrad.compiler.cuda import FUNCTIONS

#: C type -> numpy dtype, and the suffix of the compiled function's name
TYPES = {"double": (np.float64, "f64"), "float": (np.float32, "f32")}
#: C maths functions a body may call (the C column of the spelling table, and more); for float
#: they map to the f-suffixed overloads, as CUDA C++ picks them (tgmath.h compiles slowly)
MATH = sorted(
    {f for f in FUNCTIONS.values() if not f.startswith("sg_")}
    | {"fmax", "fmin", "sqrt", "pow", "erf", "erfc"}
)


def compiler() -> str | None:
    """Return the system C compiler, or None where there is none."""
    return shutil.which("cc") or shutil.which("gcc")


def names(params: str) -> list[str]:
    """Return the parameter names of a kernel's ``"T a, T b"`` parameter list."""
    return [p.split()[-1] for p in params.split(",") if p.strip()]


def _map(name: str, ins: str, outs: str, body: str) -> str:
    """Return a C function looping the kernel ``body`` over n elements."""
    loads = "".join(f"        const T {v} = sg_in[{i}][sg_i];\n" for i, v in enumerate(names(ins)))
    decls = "".join(f"        T {v};\n" for v in names(outs))
    inner = "\n".join("            " + line for line in body.strip().splitlines())
    stores = "".join(f"        sg_out[{i}][sg_i] = {v};\n" for i, v in enumerate(names(outs)))
    return (
        f"void {name}(long sg_n, const T *const *sg_in, T *const *sg_out) {{\n"
        f"    for (long sg_i = 0; sg_i < sg_n; sg_i++) {{\n{loads}{decls}"
        f"        {{\n{inner}\n        }}\n{stores}    }}\n}}\n"
    )


def _reduction(name: str, ins: str, expr: str, reduce: tuple[str, str]) -> str:
    """Return a C row reduction as cupy.ReductionKernel runs it: a = identity, then
    a = reduce_expr(a, b) with b the map expression at each class of the row."""
    loads = "".join(
        f"            const T {v} = sg_in[{i}][sg_i];\n" for i, v in enumerate(names(ins))
    )
    reduce_expr, identity = reduce
    return (
        f"void {name}(long sg_rows, long sg_cols, const T *const *sg_in, T *sg_out) {{\n"
        "    for (long sg_r = 0; sg_r < sg_rows; sg_r++) {\n"
        f"        T a = {identity};\n"
        "        for (long sg_c = 0; sg_c < sg_cols; sg_c++) {\n"
        "            const long sg_i = sg_r * sg_cols + sg_c;\n"
        f"{loads}            const T b = {expr};\n            a = {reduce_expr};\n        }}\n"
        "        sg_out[sg_r] = a;\n    }\n}\n"
    )


def c_source(modules: dict[str, ModuleType], types: tuple[str, ...] = tuple(TYPES)) -> str:
    """Return one C file defining every kernel of ``modules`` (prefix -> cupy module) for
    each C type of ``types`` (double, float): ``<prefix>_<function>[_<stage>]_<f64|f32>``."""
    parts = ["#include <math.h>\n"]
    for ctype in types:
        suffix = TYPES[ctype][1]
        parts.append(f"#define T {ctype}\n")
        if ctype == "float":
            parts += [f"#define {f}(...) {f}f(__VA_ARGS__)\n" for f in MATH]
        for prefix, module in modules.items():
            parts.append(module.PREAMBLE)
            for name, (ins, outs, body) in module.C_KERNELS.items():
                parts.append(_map(f"{prefix}_{name}_{suffix}", ins, outs, body))
            for name, stages in getattr(module, "C_STAGES", {}).items():
                for i, (kind, ins, outs, text) in enumerate(stages):
                    label = f"{prefix}_{name}_{i}_{suffix}"
                    if kind == "map":
                        parts.append(_map(label, ins, outs, text))
                    else:
                        parts.append(_reduction(label, ins, text, module.REDUCE[kind]))
            parts.append("#undef sg_sign\n#undef sg_logaddexp\n")
        parts.append("#undef T\n")
        if ctype == "float":
            parts += [f"#undef {f}\n" for f in MATH]
    return "".join(parts)


class Library:
    """The kernels of some cupy modules, compiled for the CPU and callable on numpy arrays."""

    def __init__(
        self,
        modules: dict[str, ModuleType],
        where: Path | None = None,
        types: tuple[str, ...] = tuple(TYPES),
    ) -> None:
        cc = compiler()
        if cc is None:
            raise RuntimeError("no C compiler (cc or gcc) on PATH")
        self.modules = modules
        own = where is None
        folder = Path(tempfile.mkdtemp(prefix="symgrad_c_")) if own else where
        (folder / "kernels.c").write_text(c_source(modules, types))
        flags = ["-O0", "-std=c99", "-Werror=implicit-function-declaration", "-shared", "-fPIC"]
        subprocess.run(
            [cc, *flags, "kernels.c", "-o", "kernels.so", "-lm"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        self.lib = ctypes.CDLL(str(folder / "kernels.so"))
        if own:  # the loaded library stays mapped; its files are no longer needed
            shutil.rmtree(folder, ignore_errors=True)

    def _suffix(self, dtype) -> str:
        for np_type, suffix in TYPES.values():
            if np.dtype(dtype) == np_type:
                return suffix
        raise TypeError(f"no C kernel for dtype {dtype}")

    def map(self, label: str, n_out: int, values: list) -> list[np.ndarray]:
        """Run the element-wise function ``label`` (no type suffix) on ``values``, broadcast."""
        dtype = np.result_type(*(np.asarray(v).dtype for v in values), np.float32)
        values = [np.asarray(v, dtype) for v in values]
        shape = np.broadcast_shapes(*(v.shape for v in values))
        ins = [np.ascontiguousarray(np.broadcast_to(v, shape)) for v in values]
        outs = [np.empty(shape, dtype) for _ in range(n_out)]
        fn = getattr(self.lib, f"{label}_{self._suffix(dtype)}")
        fn(ctypes.c_long(int(np.prod(shape))), _pointers(ins), _pointers(outs))
        return outs

    def reduce(self, label: str, values: list) -> np.ndarray:
        """Run the row reduction ``label`` over the last axis, keeping it (keepdims)."""
        dtype = np.result_type(*(np.asarray(v).dtype for v in values), np.float32)
        values = [np.asarray(v, dtype) for v in values]
        shape = np.broadcast_shapes(*(v.shape for v in values))
        ins = [np.ascontiguousarray(np.broadcast_to(v, shape)) for v in values]
        out = np.empty(shape[:-1] + (1,), dtype)
        fn = getattr(self.lib, f"{label}_{self._suffix(dtype)}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        fn(
            ctypes.c_long(rows),
            ctypes.c_long(cols),
            _pointers(ins),
            out.ctypes.data_as(ctypes.c_void_p),
        )
        return out

    def bind(self, prefix: str, module: ModuleType) -> ModuleType:
        """Point the wrappers of ``module`` (compiled here under ``prefix``) at numpy and this
        library instead of CuPy; return the module."""

        def kernel(name: str):
            n_out = len(names(module.C_KERNELS[name][1]))

            def call(*values):
                outs = self.map(f"{prefix}_{name}", n_out, list(values))
                return outs[0] if n_out == 1 else tuple(outs)

            return call

        def stage(name: str, index: int):
            kind, _, outs, _ = module.C_STAGES[name][index]
            label = f"{prefix}_{name}_{index}"

            def call(*values, axis=None, keepdims=False):
                if kind != "map":
                    return self.reduce(label, list(values))
                got = self.map(label, len(names(outs)), list(values))
                return got[0] if len(got) == 1 else tuple(got)

            return call

        module._xp = lambda: np
        module._kernel = kernel
        module._stage = stage
        return module


def _pointers(arrays: list[np.ndarray]):
    return (ctypes.c_void_p * len(arrays))(*(a.ctypes.data for a in arrays))
