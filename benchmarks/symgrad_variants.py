"""Optional symgrad columns: emitted kernels with ``out=`` buffers, and symgrad.blocked on 2 threads.

A cell is unavailable (not an error) when the emitted kernel takes no ``out=`` or
``symgrad.blocked`` does not exist; the plain symgrad column is always the headline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import symgrad.activations as A
import symgrad.losses as L
from benchmarks.columns import Factory, Kernel, Unavailable
from benchmarks.symgrad_impl import accepts_out
from benchmarks.workloads import Data

WORKERS = 2


def _with_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    if not accepts_out(fn):
        raise Unavailable(f"{fn.__name__} takes no out=")
    return fn


def _out_sigmoid_grad(data: Data) -> Kernel:
    fn, x = _with_out(A.sigmoid_grad), data["x"]
    out = np.empty_like(x)
    return lambda: (fn(x, out=out),)


def _out_bce_logits(data: Data) -> Kernel:
    fn, z, y = _with_out(L.binary_cross_entropy_with_logits_value_and_grad), data["z"], data["y"]
    out = np.empty_like(z)
    return lambda: fn(z, y, out=out)


def _out_huber_grad(data: Data) -> Kernel:
    fn, yhat, y = _with_out(L.huber_grad), data["yhat"], data["y"]
    out, delta = np.empty_like(yhat), data["delta"]
    return lambda: (fn(yhat, y, delta=delta, out=out),)


def _out_softmax_ce(data: Data) -> Kernel:
    fn, z, Y = _with_out(L.softmax_cross_entropy_value_and_grad), data["z"], data["Y"]
    out = np.empty_like(z)
    return lambda: fn(z, Y, out=out)


OUT_FACTORIES: dict[str, Factory] = {
    "sigmoid_grad": _out_sigmoid_grad,
    "bce_logits": _out_bce_logits,
    "huber_grad": _out_huber_grad,
    "softmax_ce": _out_softmax_ce,
}


def _blocked():
    import symgrad.blocked

    return symgrad.blocked


def _threaded_sigmoid_grad(data: Data) -> Kernel:
    blocked, x = _blocked(), data["x"]
    return lambda: (blocked.elementwise(A.sigmoid_grad, x, workers=WORKERS),)


def _threaded_bce_logits(data: Data) -> Kernel:
    blocked, z, y = _blocked(), data["z"], data["y"]
    fn = L.binary_cross_entropy_with_logits_value_and_grad
    return lambda: blocked.loss_value_and_grad(fn, z, y, workers=WORKERS)


def _threaded_huber_grad(data: Data) -> Kernel:
    blocked, yhat, y, delta = _blocked(), data["yhat"], data["y"], data["delta"]
    n = yhat.size

    def block_grad(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        g = L.huber_grad(a, b, delta=delta)  # carries 1 / block size: rescale to 1 / n
        g *= a.size / n
        return g

    return lambda: (blocked.elementwise(block_grad, yhat, y, workers=WORKERS),)


def _threaded_softmax_ce(data: Data) -> Kernel:
    blocked, z, Y = _blocked(), data["z"], data["Y"]
    fn = L.softmax_cross_entropy_value_and_grad
    return lambda: blocked.loss_value_and_grad(fn, z, Y, class_axis=True, workers=WORKERS)


THREADED: dict[str, Factory] = {
    "sigmoid_grad": _threaded_sigmoid_grad,
    "bce_logits": _threaded_bce_logits,
    "huber_grad": _threaded_huber_grad,
    "softmax_ce": _threaded_softmax_ce,
}
