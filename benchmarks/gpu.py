"""GPU timings: symgrad's fused CuPy kernels against torch, jax.jit and the memory-bandwidth floor.

Run ``python -m benchmarks.gpu`` on a machine with a CUDA GPU and CuPy (torch and jax[cuda] are
optional columns). At ``--size`` elements (default 1e8, float64) it checks every implementation
against symgrad's numpy-equivalent result on the first million elements, then prints the median
time per call of:

- symgrad fused: ``generated/*_cupy.py`` (one ElementwiseKernel per function; the loss value
  by a sum); softmax CE has a class axis, so it runs its row reductions (ReductionKernels: the
  row max and the sums over classes) and then one ElementwiseKernel per output shape;
- symgrad xp: ``generated/*_xp.py`` on CuPy arrays (one standard op at a time);
- torch (eager, CUDA) and jax.jit (x64 enabled for float64);
- floor: bytes read and written once / measured device copy bandwidth (``b = a.copy()``).

Workloads: sigmoid' (read x, write out), BCE-with-logits value and gradient (read z, y, write
grad), Huber gradient (read yhat, y, write grad), softmax CE value and gradient (1e6 x 100 rows
for 1e8 elements: read z, Y, write grad). Without CuPy or a GPU it prints why and exits with 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable

NO_GPU = "benchmarks.gpu: no GPU here"
CHECK = 1_000_000  # elements compared before timing


def gpu_problem() -> str | None:
    """Return why the GPU benchmark cannot run here, or None when CuPy sees a CUDA device."""
    if importlib.util.find_spec("cupy") is None:
        return f"{NO_GPU} (cupy is not installed; pip install cupy-cuda12x on a CUDA machine)"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver or runtime missing
        return f"{NO_GPU} (cupy cannot reach a CUDA device: {type(exc).__name__}: {exc})"
    return None if count > 0 else f"{NO_GPU} (cupy found no CUDA device)"


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated(stem: str):
    from symgrad.resources import generated_dir

    return _load(str(generated_dir() / f"{stem}.py"), f"benchmarks_gpu_{stem}")


def _time_cupy(fn: Callable[[], object], repeat: int) -> float:
    """Return the median seconds per call, measured with CUDA events around each call."""
    import cupy

    fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(times)


def _time_sync(fn: Callable[[], object], sync: Callable[[object], None], repeat: int) -> float:
    """Return the median seconds per call of ``fn``, waiting for its result with ``sync``."""
    sync(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(n: int, dtype: str, repeat: int) -> float:
    """Return the device's copy bandwidth in bytes per second (read n and write n elements)."""
    import cupy

    a = cupy.ones(n, dtype)
    b = cupy.empty_like(a)
    seconds = _time_cupy(lambda: cupy.copyto(b, a), repeat)
    return 2 * a.nbytes / seconds


def _data(n: int, dtype: str, classes: int):
    import cupy

    rng = cupy.random.default_rng(0)
    x = (rng.standard_normal(n, dtype="float64") * 3).astype(dtype)
    y = (rng.random(n, dtype="float64") > 0.5).astype(dtype)
    t = (rng.standard_normal(n, dtype="float64") * 3).astype(dtype)
    rows = n // classes
    Z = (rng.standard_normal((rows, classes), dtype="float64") * 3).astype(dtype)
    Y = cupy.zeros((rows, classes), dtype)
    Y[cupy.arange(rows), rng.integers(0, classes, rows)] = 1
    return {"x": x, "y": y, "t": t, "Z": Z, "Y": Y}


def _symgrad_columns(data) -> dict[str, dict[str, Callable[[], object]]]:
    A, L = _generated("activations_cupy"), _generated("losses_cupy")
    AX, LX = _generated("activations_xp"), _generated("losses_xp")
    x, y, t, Z, Y = (data[k] for k in "xytZY")
    columns = {
        "sigmoid'": {
            "symgrad fused": lambda: A.sigmoid_grad(x),
            "symgrad xp": lambda: AX.sigmoid_grad(x),
        },
        "BCE-with-logits value+grad": {
            "symgrad fused": lambda: L.binary_cross_entropy_with_logits_value_and_grad(x, y),
            "symgrad xp": lambda: LX.binary_cross_entropy_with_logits_value_and_grad(x, y),
        },
        "Huber grad": {
            "symgrad fused": lambda: L.huber_grad(x, t),
            "symgrad xp": lambda: LX.huber_grad(x, t),
        },
        "softmax CE value+grad": {
            "symgrad fused": lambda: L.softmax_cross_entropy_value_and_grad(Z, Y),
            "symgrad xp": lambda: LX.softmax_cross_entropy_value_and_grad(Z, Y),
        },
    }
    if importlib.util.find_spec("array_api_compat") is None:
        print("# array-api-compat not installed: xp columns skipped", file=sys.stderr)
        for work in columns.values():
            work.pop("symgrad xp")
    return columns


def _torch_columns(data) -> dict[str, Callable[[], object]]:
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        return {}
    x, y, t, Z, Y = (torch.as_tensor(data[k], device="cuda") for k in "xytZY")
    n, rows = x.numel(), Z.shape[0]

    def sigmoid_grad():
        s = torch.sigmoid(x)
        return s * (1 - s)

    def bce():
        return F.binary_cross_entropy_with_logits(x, y), (torch.sigmoid(x) - y) / n

    def softmax_ce():
        return F.cross_entropy(Z, Y), (torch.softmax(Z, dim=-1) - Y) / rows

    return {
        "sigmoid'": sigmoid_grad,
        "BCE-with-logits value+grad": bce,
        "Huber grad": lambda: torch.clamp(x - t, -1.0, 1.0) / n,
        "softmax CE value+grad": softmax_ce,
    }


def _jax_columns(data, dtype: str) -> dict[str, Callable[[], object]]:
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    if not any(d.platform == "gpu" for d in jax.devices()):
        return {}
    import jax.numpy as jnp

    x, y, t, Z, Y = (jnp.asarray(data[k].get()) for k in "xytZY")

    def bce(z, y):
        return jnp.mean(jnp.logaddexp(0, z) - y * z)

    def softmax_ce(z, Y):
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(z), axis=-1))

    sigmoid_grad = jax.jit(lambda v: jax.nn.sigmoid(v) * jax.nn.sigmoid(-v))
    bce_vg = jax.jit(jax.value_and_grad(bce))
    huber = jax.jit(lambda a, b: jnp.clip(a - b, -1.0, 1.0) / a.size)
    ce_vg = jax.jit(jax.value_and_grad(softmax_ce))
    return {
        "sigmoid'": lambda: sigmoid_grad(x),
        "BCE-with-logits value+grad": lambda: bce_vg(x, y),
        "Huber grad": lambda: huber(x, t),
        "softmax CE value+grad": lambda: ce_vg(Z, Y),
    }


#: elements read and written per input element, for the floor
TRAFFIC = {
    "sigmoid'": 2,
    "BCE-with-logits value+grad": 3,
    "Huber grad": 3,
    "softmax CE value+grad": 3,
}


def _optional(name: str, build: Callable[[], dict]) -> dict:
    if importlib.util.find_spec(name) is None:
        print(f"# {name}: not installed, column skipped", file=sys.stderr)
        return {}
    try:
        columns = build()
    except Exception as exc:  # a CPU-only build, a driver mismatch: report it, keep going
        print(f"# {name}: unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
        return {}
    if not columns:
        print(f"# {name}: no GPU device, column skipped", file=sys.stderr)
    return columns


def _host_grad(result):
    """Return the gradient array of a result (the last element of a tuple) as a host array."""
    import numpy as np

    out = result[-1] if isinstance(result, tuple) else result
    if hasattr(out, "get"):
        out = out.get()
    elif hasattr(out, "cpu"):
        out = out.cpu().numpy()
    return np.asarray(out).reshape(-1)[:CHECK]


def run(n: int, dtype: str, repeat: int, classes: int) -> list[str]:
    """Return the result table's lines (markdown)."""
    import cupy
    import numpy as np

    data = _data(n, dtype, classes)
    ours = _symgrad_columns(data)
    others = {
        "torch": _optional("torch", lambda: _torch_columns(data)),
        "jax.jit": _optional("jax", lambda: _jax_columns(data, dtype)),
    }
    bandwidth = copy_bandwidth(n, dtype, repeat)
    item = np.dtype(dtype).itemsize
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    lines = [
        f"{device}, {n:.0e} {dtype} elements, copy bandwidth {bandwidth / 1e9:.0f} GB/s, "
        f"median of {repeat} (ms)",
        "",
        "| kernel | symgrad fused | symgrad xp | torch | jax.jit | floor | fused / jax | fused / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tolerance = 1e-5 if dtype == "float32" else 1e-10
    for work, columns in ours.items():
        reference = _host_grad(columns["symgrad fused"]())
        scale = float(np.max(np.abs(reference))) or 1.0
        cells = {}
        candidates = [(label, fn, "cupy") for label, fn in columns.items()]
        candidates += [(label, t[work], label) for label, t in others.items() if work in t]
        for label, fn, clock in candidates:
            err = float(np.max(np.abs(_host_grad(fn()) - reference))) / scale
            if err > tolerance:
                cells[label] = f"mismatch {err:.1e}"
            elif clock == "cupy":
                cells[label] = _time_cupy(fn, repeat)
            elif label == "jax.jit":
                cells[label] = _time_sync(fn, _jax_block, repeat)
            else:
                cells[label] = _time_sync(fn, _torch_sync, repeat)
        floor = TRAFFIC[work] * n * item / bandwidth
        fused = cells["symgrad fused"]
        jax_t = cells.get("jax.jit")
        row = [work] + [
            _ms(cells.get(c)) for c in ("symgrad fused", "symgrad xp", "torch", "jax.jit")
        ]
        ok = isinstance(fused, float)
        row += [_ms(floor), f"{fused / jax_t:.2f}" if ok and isinstance(jax_t, float) else "-"]
        row.append(f"{fused / floor:.2f}" if ok else "-")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _ms(value) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value * 1e3:.2f}"


def _jax_block(result) -> None:
    import jax

    jax.block_until_ready(result)


def _torch_sync(result) -> None:
    import torch

    torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    """Print the GPU table, or why it cannot be measured here (exit status 2)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--size", type=float, default=1e8, help="elements (default 1e8)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per cell")
    parser.add_argument("--classes", type=int, default=100, help="softmax CE classes")
    args = parser.parse_args(argv)
    problem = gpu_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    print("\n".join(run(int(args.size), args.dtype, args.repeat, args.classes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
