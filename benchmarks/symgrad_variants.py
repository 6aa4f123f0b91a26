"""Optional symgrad columns: emitted kernels with ``out=`` buffers, and symgrad.blocked on 1 and 2
threads (all writing into a preallocated ``out``, as the hand-written baseline does).

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


def _blocked_factories(workers: int) -> dict[str, Factory]:
    """Return factories running the emitted kernels block by block into preallocated ``out``."""

    def sigmoid_grad(data: Data) -> Kernel:
        blocked, x = _blocked(), data["x"]
        out = np.empty_like(x)
        return lambda: (blocked.elementwise(A.sigmoid_grad, x, workers=workers, out=out),)

    def bce_logits(data: Data) -> Kernel:
        blocked, z, y = _blocked(), data["z"], data["y"]
        fn, out = L.binary_cross_entropy_with_logits_value_and_grad, np.empty_like(z)
        return lambda: blocked.loss_value_and_grad(fn, z, y, workers=workers, out=out)

    def huber_grad(data: Data) -> Kernel:
        blocked, yhat, y, delta = _blocked(), data["yhat"], data["y"], data["delta"]
        out = np.empty_like(yhat)
        return lambda: (
            blocked.loss_grad(L.huber_grad, yhat, y, workers=workers, out=out, delta=delta),
        )

    def softmax_ce(data: Data) -> Kernel:
        blocked, z, Y = _blocked(), data["z"], data["Y"]
        fn, out = L.softmax_cross_entropy_value_and_grad, np.empty_like(z)
        return lambda: blocked.loss_value_and_grad(
            fn, z, Y, class_axis=True, workers=workers, out=out
        )

    return {
        "sigmoid_grad": sigmoid_grad,
        "bce_logits": bce_logits,
        "huber_grad": huber_grad,
        "softmax_ce": softmax_ce,
    }


BLOCKED = _blocked_factories(1)
THREADED = _blocked_factories(WORKERS)
