"""Evaluate emitted kernels block by block, so temporaries stay in cache (and, optionally, on
several threads: numpy ufuncs release the GIL). The emitted functions stay the simple form
reviewers read; this module only decides which slice of the data each call sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

#: 16 Ki float64 elements = 128 KiB per temporary, so a kernel's temporaries stay in L2.
#: Measured on this 2-core machine (sigmoid_grad / BCE / softmax CE, 1 thread): 16 Ki was
#: fastest or within noise of it among 8, 16, 32 and 64 Ki.
DEFAULT_BLOCK = 16384


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="symgrad-block")


def _run(tasks: list[Callable[[], None]], workers: int) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    for future in [_pool(workers).submit(t) for t in tasks]:
        future.result()


def _workers(workers: int | None) -> int:
    return workers if workers is not None else min(2, os.cpu_count() or 1)


def _flat_inputs(arrays) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Broadcast inputs to one shape and view them as contiguous 1-D arrays."""
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    shape = arrs[0].shape
    return [np.ascontiguousarray(a).reshape(-1) for a in arrs], shape


def elementwise(
    fn: Callable[..., np.ndarray],
    *arrays: np.ndarray,
    block: int = DEFAULT_BLOCK,
    workers: int | None = 1,
    **hyper: float,
) -> np.ndarray:
    """Return ``fn(*arrays, **hyper)`` for an element-wise kernel, computed block by block."""
    flat, shape = _flat_inputs(arrays)
    out = np.empty(flat[0].size)

    def task(lo: int) -> Callable[[], None]:
        def run() -> None:
            out[lo : lo + block] = fn(*(a[lo : lo + block] for a in flat), **hyper)

        return run

    _run([task(lo) for lo in range(0, out.size, block)], _workers(workers))
    return out.reshape(shape)


def loss_value_and_grad(
    fn: Callable[..., tuple[float, np.ndarray]],
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    class_axis: bool = False,
    block: int = DEFAULT_BLOCK,
    workers: int | None = 1,
    **hyper: float,
) -> tuple[float, np.ndarray]:
    """Return ``fn(yhat, y)`` for a mean-reduced loss's ``_value_and_grad``, block by block.

    Each block's mean and gradient (which carries 1/n_block) are re-weighted by the block's
    share of the samples, which is exact because every emitted loss is a mean over samples.
    For class-axis losses the blocks are whole rows.
    """
    yhat = np.asarray(yhat, dtype=float)
    y = np.broadcast_to(np.asarray(y, dtype=float), yhat.shape)
    if class_axis:
        rows_yhat = np.ascontiguousarray(yhat).reshape(-1, yhat.shape[-1])
        rows_y = np.ascontiguousarray(y).reshape(rows_yhat.shape)
        step = max(1, block // max(1, rows_yhat.shape[1]))
    else:
        rows_yhat = np.ascontiguousarray(yhat).reshape(-1)
        rows_y = np.ascontiguousarray(y).reshape(-1)
        step = block
    n = rows_yhat.shape[0]
    grad = np.empty(rows_yhat.shape)
    starts = list(range(0, n, step))
    values = np.zeros(len(starts))

    def task(i: int, lo: int) -> Callable[[], None]:
        def run() -> None:
            hi = min(lo + step, n)
            v, g = fn(rows_yhat[lo:hi], rows_y[lo:hi], **hyper)
            share = (hi - lo) / n
            values[i] = v * share
            np.multiply(g, share, out=grad[lo:hi])

        return run

    _run([task(i, lo) for i, lo in enumerate(starts)], _workers(workers))
    return float(values.sum()), grad.reshape(yhat.shape)
