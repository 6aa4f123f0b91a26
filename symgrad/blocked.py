"""Evaluate emitted kernels block by block, so temporaries stay in cache (and, optionally, on
several threads: numpy ufuncs release the GIL). The emitted functions stay the simple form
reviewers read; this module only decides which slice of the data each call sees.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

#: 64 Ki float64 elements = 512 KiB per array, so a kernel's few scratch arrays stay in L2.
#: Measured here with the buffer-reusing kernels (sigmoid_grad, BCE, Huber, softmax CE; 1 and 2
#: threads): 64 Ki was fastest or within noise among 16, 64, 128 and 256 Ki; 16 Ki loses to
#: the per-call overhead (~5 us) and to thread hand-offs.
DEFAULT_BLOCK = 65536
#: With several threads, larger blocks: each ufunc call hands the GIL over, and on this VM a
#: hand-over costs tens of microseconds. 256 Ki was fastest for 2 threads (BCE 0.57x,
#: Huber 0.69x, softmax CE 0.57x of hand numpy; 64 Ki gave 0.69x, 0.89x, 0.58x).
THREADED_BLOCK = 262144


#: min and max of a block, NaN where a value is NaN (np.min and np.max without their wrappers)
_LOWEST, _HIGHEST = np.minimum.reduce, np.maximum.reduce


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="symgrad-block")


def run(tasks: list[Callable[[], None]], workers: int) -> None:
    """Run ``tasks`` (each writes its own slice of a result) on ``workers`` threads of this
    module's pool; with several workers, each takes one contiguous share of them (one future
    per worker: a future per block would cost more than a block's arithmetic)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    share = -(-len(tasks) // workers)
    # one BLAS thread per worker: np.vdot and matmul inside the kernels would otherwise start
    # BLAS threads of their own on every block (measured: 2 workers ran 1.5-3x slower)
    with _blas().limit(limits=1, user_api="blas"):
        _run_groups([tasks[i : i + share] for i in range(0, len(tasks), share)], workers)


def _run_groups(groups: list[list[Callable[[], None]]], workers: int) -> None:
    def run_group(group: list[Callable[[], None]]) -> None:
        for task in group:
            task()

    for future in [_pool(workers).submit(run_group, g) for g in groups]:
        future.result()


def _count(value: object, what: str) -> int:
    """Return ``value`` if it is an integer >= 1 (not a bool), else raise one clear ValueError."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"blocked: {what} must be an integer >= 1, got {value!r}")
    return int(value)


def block_size(n: int, workers: int, itemsize: int = 8) -> int:
    """Return the block for ``n`` elements of ``itemsize`` bytes on ``workers`` threads:
    ``DEFAULT_BLOCK`` on one; on several, ``THREADED_BLOCK`` shrunk (not below
    ``DEFAULT_BLOCK``) so that every thread gets at least one block. The sizes are float64
    elements: float32 blocks hold twice as many, the same bytes (measured for the logistic
    _grad_hess at 1e6 float32 elements, one thread: 1.35x the hand objective with 128 Ki
    elements a block against 1.51x with 64 Ki, in one run; a call's overhead is the same,
    its arithmetic about half)."""
    scale = max(1, 8 // itemsize)
    if workers <= 1:
        return DEFAULT_BLOCK * scale
    return min(THREADED_BLOCK * scale, max(DEFAULT_BLOCK * scale, -(-n // workers)))


def _block(block: int | None, workers: int | None) -> int:
    """Return the block size: the caller's, else the default for the number of threads."""
    if block is not None:
        return _count(block, "block (a number of elements)")
    return DEFAULT_BLOCK if _workers(workers) <= 1 else THREADED_BLOCK


def _workers(workers: int | None) -> int:
    if workers is None:
        return min(2, os.cpu_count() or 1)
    return _count(workers, "workers (a number of threads)")


def _real(name: str, arg: str, a: object) -> np.ndarray:
    """Return ``a`` as a float64 array; integers and bools are converted, complex, object and
    string arrays are a TypeError (the emitted kernels' own rule, applied before blocking)."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"blocked.{name}: {arg} is not an array of numbers ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"blocked.{name}: {arg} has dtype {arr.dtype}; expected real numbers "
            "(float, int or bool)"
        )
    return arr.astype(float, copy=False)


def _flat_inputs(arrays) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Broadcast inputs to the first one's shape and view them as contiguous 1-D arrays."""
    arrs = [_real("elementwise", f"argument {i + 1}", a) for i, a in enumerate(arrays)]
    shape = arrs[0].shape
    for i, a in enumerate(arrs[1:], 2):
        _broadcasts("elementwise", f"argument {i}", a.shape, "argument 1", shape)
    arrs = [np.broadcast_to(a, shape) for a in arrs]
    return [np.ascontiguousarray(a).reshape(-1) for a in arrs], shape


def _broadcasts(name: str, arg: str, shape: tuple, first: str, target: tuple) -> None:
    """Raise ValueError unless ``shape`` broadcasts to ``target`` (never ``target`` up)."""
    try:
        ok = np.broadcast_shapes(shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"blocked.{name}: {arg} of shape {shape} does not broadcast to {first}'s shape "
            f"{target}; it must have that shape or broadcast to it"
        )


@cache
def _keywords(fn: Callable[..., object]) -> frozenset[str]:
    """Return ``fn``'s parameter names: emitted kernels take ``out=`` (and losses ``count=``)."""
    try:
        return frozenset(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _flat_out(out: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return a flat view of the caller's ``out`` (checked) or a new flat result array."""
    if out is None:
        return np.empty(int(np.prod(shape)))
    if out.shape != shape or not out.flags.c_contiguous or out.dtype != np.float64:
        raise ValueError(
            f"blocked.{name}: out must be a C-contiguous float64 array of shape {shape}, "
            f"got {out.dtype} of shape {out.shape}"
        )
    return out.reshape(-1)


def elementwise(
    fn: Callable[..., np.ndarray],
    *arrays: np.ndarray,
    block: int | None = None,
    workers: int | None = 1,
    out: np.ndarray | None = None,
    **hyper: float,
) -> np.ndarray:
    """Return ``fn(*arrays, **hyper)`` for an element-wise kernel, computed block by block.

    Emitted kernels write each block straight into ``out`` (or a new array), so their scratch
    arrays are block-sized, stay in cache, and are reused from block to block.
    """
    flat, shape = _flat_inputs(arrays)
    result = _flat_out(out, shape, "elementwise")
    block = _block(block, workers)
    direct = "out" in _keywords(fn)

    def task(lo: int) -> Callable[[], None]:
        def run() -> None:
            parts = (a[lo : lo + block] for a in flat)
            if direct:
                fn(*parts, out=result[lo : lo + block], **hyper)
            else:
                result[lo : lo + block] = fn(*parts, **hyper)

        return run

    run([task(lo) for lo in range(0, result.size, block)], _workers(workers))
    return result.reshape(shape)


def grad_hess(
    fn: Callable[..., tuple[np.ndarray, np.ndarray]],
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    workers: int = 1,
    out: tuple[np.ndarray, np.ndarray] | None = None,
    **kwargs: object,
) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """Return ``fn(yhat, y, **kwargs)`` for an element-wise ``_grad_hess`` kernel (yhat and y of
    one shape), block by block on ``workers`` threads (``block_size``), min(h) and y's (min,
    max), each taken per block while it is in cache (NaN where a value is NaN: a label check
    with no pass over memory of its own). The numbers are those of one call.

    Each block is written straight into its slices of the results (the kernel's
    ``out=(grad, hess)``; a kernel without ``out=`` has its results copied in). ``out``: two
    flat, distinct arrays of yhat's size and the result dtype to write them into (a caller's
    recycled results, ``symgrad.recycle``), else new ones."""
    flat_yhat = np.ascontiguousarray(yhat).reshape(-1)
    flat_y = np.ascontiguousarray(y).reshape(-1)
    dtype = np.result_type(flat_yhat, flat_y)  # the kernels' own rule: float32 stays float32
    dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    if out is None:
        grad, h = np.empty(flat_yhat.size, dtype), np.empty(flat_yhat.size, dtype)
    else:
        grad, h = out
        bad = any(type(a) is not np.ndarray or a.shape != flat_yhat.shape for a in out)
        if bad or any(a.dtype != dtype for a in out) or np.may_share_memory(grad, h):
            raise ValueError(
                f"blocked.grad_hess: out must be two flat {dtype} arrays of {flat_yhat.size} "
                f"elements that share no memory, got "
                f"{[(str(np.asarray(a).dtype), np.shape(a)) for a in out]}"
            )
    block = block_size(flat_yhat.size, workers, np.dtype(dtype).itemsize)
    starts = range(0, flat_yhat.size, block)
    # per block: min(h), min(y), max(y); the empty input's are the reductions' identities
    ends = np.empty((max(1, len(starts)), 3))
    ends[:] = (np.inf, np.inf, -np.inf)
    # a partial (an objective's kernel with its hyper-parameters) is asked through its function,
    # which lives as long as its module: the cache then holds no objective's partial
    direct = "out" in _keywords(getattr(fn, "func", fn))

    def task(i: int, lo: int) -> Callable[[], None]:
        def run() -> None:
            part = slice(lo, lo + block)
            labels, h_part = flat_y[part], h[part]
            if direct:
                fn(flat_yhat[part], labels, out=(grad[part], h_part), **kwargs)
            else:
                grad[part], h[part] = fn(flat_yhat[part], labels, **kwargs)
            # the ufuncs' own reductions: np.min's wrapper costs more than a block's minimum
            row = ends[i]
            row[0] = _LOWEST(h_part)
            row[1] = _LOWEST(labels)
            row[2] = _HIGHEST(labels)

        return run

    run([task(i, lo) for i, lo in enumerate(starts)], workers)
    shape = np.shape(yhat)
    lowest = float(np.min(ends[:, 0]))
    span = (float(np.min(ends[:, 1])), float(np.max(ends[:, 2])))
    return grad.reshape(shape), h.reshape(shape), lowest, span


def _rows(yhat: np.ndarray, y: np.ndarray, class_axis: bool, block: int):
    """Return yhat and y as rows (samples) and the number of rows per block."""
    yhat = _real("loss_value_and_grad", "yhat", yhat)
    y = _real("loss_value_and_grad", "y", y)
    _broadcasts("loss_value_and_grad", "y", y.shape, "yhat", yhat.shape)
    y = np.broadcast_to(y, yhat.shape)
    if class_axis and (yhat.ndim == 0 or yhat.shape[-1] == 0):
        raise ValueError(
            f"blocked.loss_value_and_grad: yhat of shape {yhat.shape} has no class axis; "
            "the last axis holds the classes and needs at least one"
        )
    if class_axis:
        rows_yhat = np.ascontiguousarray(yhat).reshape(-1, yhat.shape[-1])
        rows_y = np.ascontiguousarray(y).reshape(rows_yhat.shape)
        return rows_yhat, rows_y, max(1, block // max(1, rows_yhat.shape[1]))
    return np.ascontiguousarray(yhat).reshape(-1), np.ascontiguousarray(y).reshape(-1), block


def loss_value_and_grad(
    fn: Callable[..., tuple[float, np.ndarray]],
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    class_axis: bool = False,
    block: int | None = None,
    workers: int | None = 1,
    out: np.ndarray | None = None,
    **hyper: float,
) -> tuple[float, np.ndarray]:
    """Return ``fn(yhat, y)`` for a mean-reduced loss's ``_value_and_grad``, block by block.

    Emitted losses are called with ``count=n`` so each block returns its share of the whole
    mean; for other functions each block's mean and gradient (which carries 1/n_block) are
    re-weighted by the block's share of the samples (exact, as the loss is a mean).
    For class-axis losses the blocks are whole rows.
    """
    values, grad = _loss_blocks(
        fn, yhat, y, class_axis, block=block, workers=workers, out=out, hyper=hyper, with_value=True
    )
    # the mean of an empty input is NaN, as the emitted losses give it
    return (float(values.sum()) if values.size else float("nan")), grad


def loss_grad(
    fn: Callable[..., np.ndarray],
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    class_axis: bool = False,
    block: int | None = None,
    workers: int | None = 1,
    out: np.ndarray | None = None,
    **hyper: float,
) -> np.ndarray:
    """Return ``fn(yhat, y)`` for a mean-reduced loss's ``_grad``, block by block."""
    return _loss_blocks(
        fn,
        yhat,
        y,
        class_axis,
        block=block,
        workers=workers,
        out=out,
        hyper=hyper,
        with_value=False,
    )[1]


def _loss_blocks(fn, yhat, y, class_axis, *, block, workers, out, hyper, with_value):
    rows_yhat, rows_y, step = _rows(yhat, y, class_axis, _block(block, workers))
    shape = np.shape(yhat)
    n = rows_yhat.shape[0]
    grad = _flat_out(out, shape, "loss_grad").reshape(rows_yhat.shape)
    starts = list(range(0, n, step))
    values = np.zeros(len(starts))
    direct = "out" in _keywords(fn)
    # an emitted loss given count=n returns its block's share of the whole mean directly;
    # any other function's per-block mean is re-weighted afterwards
    counted = direct and "count" in _keywords(fn)

    def task(i: int, lo: int) -> Callable[[], None]:
        def run() -> None:
            hi = min(lo + step, n)
            part = grad[lo:hi]
            kwargs = {"out": part, "count": n} if counted else {"out": part} if direct else {}
            result = fn(rows_yhat[lo:hi], rows_y[lo:hi], **kwargs, **hyper)
            v, g = result if with_value else (0.0, result)
            if counted:
                values[i] = v
                return
            share = (hi - lo) / n
            values[i] = v * share
            np.multiply(g, share, out=part)

        return run

    run([task(i, lo) for i, lo in enumerate(starts)], _workers(workers))
    return values, grad.reshape(shape)
