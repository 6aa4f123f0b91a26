"""The in-place fast path of the named optimizers Adam, AdamW and SGD: torch's trajectories.

Each step function does, leaf by leaf and into preallocated scratch arrays, exactly the
floating-point operations of the pure chain in :mod:`symgrad._transform` (the same operands,
the same order, the same rounding), so a run of in-place steps gives the very same numbers
as the pure ``update`` (and so matches ``torch.optim`` as the pure path does). The params
and the state's moment buffers are overwritten; the step returns the state with its counts
advanced. Only plain numpy float leaves take this path: a step returns None, having
touched nothing, for anything else, and :func:`symgrad.optim.step_in_place` then runs the
pure update.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from symgrad import tree
from symgrad._transform import AdamState, ScaleByScheduleState, TraceState
from symgrad.schedules import Schedule

PyTree = Any
Step = Callable[[PyTree, Any, PyTree], Any]


class _Scratch:
    """Two scratch arrays per parameter leaf, allocated once and reused by every step."""

    def __init__(self) -> None:
        self._bufs: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, i: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = (i, p.shape, p.dtype)
        if key not in self._bufs:
            self._bufs[key] = (np.empty_like(p), np.empty_like(p))
        return self._bufs[key]


def fast_leaves(params: PyTree, grads: PyTree) -> tuple[list, list, Any] | None:
    """Return ``(param leaves, grad leaves, how to read buffers)`` when every param is a
    writeable numpy float array and every grad a numpy array of its shape and dtype; else
    None. A plain dict (the models' params) is read directly, other trees through
    :mod:`symgrad.tree`."""
    if type(params) is dict and type(grads) is dict and grads.keys() == params.keys():
        ps, gs = list(params.values()), list(grads.values())
        keys = list(params)

        def read(buffers: PyTree) -> list:
            return [buffers[k] for k in keys]
    else:
        ps, treedef = tree.flatten(params)
        try:
            gs = tree.flatten_as(treedef, grads, "grads")
        except (ValueError, TypeError):
            return None

        def read(buffers: PyTree) -> list:
            return tree.flatten_as(treedef, buffers, "optimizer state buffer")

    for p, g in zip(ps, gs, strict=True):
        if type(p) is not np.ndarray or p.dtype.kind != "f" or not p.flags.writeable:
            return None
        if type(g) is not np.ndarray or g.shape != p.shape or g.dtype != p.dtype:
            return None
    return ps, gs, read


def _on_fast_leaves(step: Callable[..., Any]) -> Step:
    """Return ``(grads, state, params) -> state``: ``step`` on the leaves, or None (touching
    nothing) when they cannot take the fast path."""

    def run(grads: PyTree, state: Any, params: PyTree) -> Any:
        leaves = fast_leaves(params, grads)
        return None if leaves is None else step(*leaves, state)

    return run


def _lr(name: str, schedule: Schedule, count: int) -> float:
    lr = schedule(count)
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(
            f"{name}: learning-rate schedule gave lr={lr!r} at step {count}; "
            "must be finite and >= 0"
        )
    return lr


def _index(states: tuple, kind: type) -> int:
    return next(i for i, s in enumerate(states) if isinstance(s, kind))


def _l2(g: np.ndarray, p: np.ndarray, wd: float, out: np.ndarray) -> np.ndarray:
    """Return ``g + wd * p`` rounded as the pure chain does (torch's L2 weight decay)."""
    np.multiply(p, wd, out=out)
    out += g
    return out


def adam_step(
    name: str, schedule: Schedule, betas: tuple[float, float], eps: float, *,
    weight_decay: float, decoupled: bool,
) -> Step:  # fmt: skip
    """Return the in-place step of torch Adam (``decoupled``: AdamW), amsgrad off."""
    scratch = _Scratch()
    b1, b2 = betas
    keep, square_w = 1 - b1, 1 - b2

    def step(ps: list, gs: list, read: Callable, state: Any) -> Any:
        inner = state.inner
        ia, il = _index(inner, AdamState), _index(inner, ScaleByScheduleState)
        adam, sched = inner[ia], inner[il]
        t = adam.count + 1
        bc1, bc2 = 1 - b1**t, (1 - b2**t) ** 0.5
        lr = _lr(name, schedule, sched.count)
        ms, vs = read(adam.exp_avg), read(adam.exp_avg_sq)
        for i, (p, g, m, v) in enumerate(zip(ps, gs, ms, vs, strict=True)):
            t1, t2 = scratch(i, p)
            if weight_decay != 0 and not decoupled:
                g = _l2(g, p, weight_decay, t2)
            np.subtract(g, m, out=t1)  # m = lerp(m, g, 1 - b1), as torch's CPU lerp_
            if keep < 0.5:
                t1 *= keep
                m += t1
            else:
                t1 *= 1.0 - keep
                np.subtract(g, t1, out=m)
            np.multiply(g, g, out=t1)
            t1 *= square_w
            v *= b2
            v += t1
            np.sqrt(v, out=t1)
            t1 /= bc2
            t1 += eps
            np.divide(m, t1, out=t1)
            t1 /= bc1
            if weight_decay != 0 and decoupled:
                np.multiply(p, weight_decay, out=t2)
                t1 += t2
            t1 *= -lr
            p += t1
        new = list(inner)
        new[ia] = AdamState(t, adam.exp_avg, adam.exp_avg_sq, None)
        new[il] = ScaleByScheduleState(sched.count + 1)
        return type(state)(state.count + 1, tuple(new))

    return _on_fast_leaves(step)


def sgd_step(name: str, schedule: Schedule, momentum: float, dampening: float,
             nesterov: bool, weight_decay: float) -> Step:  # fmt: skip
    """Return the in-place step of torch SGD (momentum, dampening, Nesterov, L2 decay)."""
    scratch = _Scratch()
    damp = 1 - dampening

    def step(ps: list, gs: list, read: Callable, state: Any) -> Any:
        inner = state.inner
        il = _index(inner, ScaleByScheduleState)
        sched = inner[il]
        lr = _lr(name, schedule, sched.count)
        new = list(inner)
        bufs: list = [None] * len(ps)
        if momentum != 0:
            it = _index(inner, TraceState)
            trace = inner[it]
            first = trace.count == 0
            bufs = read(trace.momentum_buffer)
            new[it] = TraceState(trace.count + 1, trace.momentum_buffer)
        for i, (p, g, buf) in enumerate(zip(ps, gs, bufs, strict=True)):
            t1, t2 = scratch(i, p)
            if weight_decay != 0:
                g = _l2(g, p, weight_decay, t2)
            u = g
            if buf is not None:
                if first:
                    np.copyto(buf, g)
                else:
                    buf *= momentum
                    if damp == 1:
                        buf += g  # (1 - 0) * g is g exactly
                    else:
                        np.multiply(g, damp, out=t1)
                        buf += t1
                u = buf
                if nesterov:
                    np.multiply(buf, momentum, out=t1)
                    t1 += g
                    u = t1
            np.multiply(u, -lr, out=t1)
            p += t1
        new[il] = ScaleByScheduleState(sched.count + 1)
        return type(state)(state.count + 1, tuple(new))

    return _on_fast_leaves(step)
