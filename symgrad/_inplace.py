"""The in-place fast path of the named optimizers Adam, AdamW and SGD: torch's trajectories.

Each step function does, leaf by leaf and into preallocated scratch arrays, exactly the
floating-point operations of the pure chain in :mod:`symgrad._transform` (the same operands,
the same order, the same rounding), so a run of in-place steps gives the very same numbers
as the pure ``update`` (and so matches ``torch.optim`` as the pure path does). The params
and the state's moment buffers are overwritten; the step returns the state with its counts
advanced. Where leaves lie back to back in one flat array (:func:`join`; the named
optimizers' ``init`` lays out their moment buffers so), an operation is one ufunc call over
all of them, as torch's ``foreach``; the scratch arrays are flat and allocated once. Only plain numpy float leaves take this path: a step returns None, having
touched nothing, for anything else, and :func:`symgrad.optim.step_in_place` then runs the
pure update.
"""

from __future__ import annotations

import math
import operator
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from symgrad import tree
from symgrad._transform import AdamState, ScaleByScheduleState, TraceState
from symgrad.schedules import Schedule

PyTree = Any
Step = Callable[[PyTree, Any, PyTree], Any]


def views(flat: np.ndarray, like: list) -> list:
    """Return views of ``flat`` shaped like the arrays of ``like``, back to back."""
    out, at = [], 0
    for a in like:
        out.append(flat[at : at + a.size].reshape(a.shape))
        at += a.size
    return out


#: id of each flat array :func:`join` made -> (a weak reference to it, weak references to
#: its views in leaf order); an entry goes when its flat array does.
_JOINS: dict[int, tuple[weakref.ref, tuple[weakref.ref, ...]]] = {}


def joined(arrays: list) -> np.ndarray | None:
    """Return the one flat array behind ``arrays`` when they are, in order, the views
    :func:`join` made of it, else None."""
    base = arrays[0].base
    entry = _JOINS.get(id(base)) if type(base) is np.ndarray else None
    if entry is None or entry[0]() is not base or len(entry[1]) != len(arrays):
        return None
    for ref, a in zip(entry[1], arrays):  # noqa: B905 - the lengths are equal
        if ref() is not a:
            return None
    return base


def join(buffers: PyTree) -> PyTree:
    """Return a copy of ``buffers`` whose numpy leaves are views of one flat array, back to back
    in leaf order, so :func:`joined` finds it and a step runs one ufunc call per operation
    over all of them (torch's ``foreach``, in numpy). Trees with other leaves, several dtypes
    or empty leaves are returned as they are."""
    leaves, treedef = tree.flatten(buffers)
    if not leaves or any(
        type(a) is not np.ndarray or a.dtype != leaves[0].dtype or a.size == 0 for a in leaves
    ):
        return buffers
    flat = np.empty(sum(a.size for a in leaves), leaves[0].dtype)
    parts = views(flat, leaves)
    for view, a in zip(parts, leaves, strict=True):
        np.copyto(view, a)
    key = id(flat)
    _JOINS[key] = (weakref.ref(flat, lambda _: _JOINS.pop(key, None)),
                   tuple(weakref.ref(v) for v in parts))  # fmt: skip
    return tree.unflatten(treedef, parts)


class _Layout:
    """:func:`joined` of a list of long-lived leaves (state buffers), cached while the list
    holds the very same arrays."""

    def __init__(self) -> None:
        self._seen: list = []
        self._flat: np.ndarray | None = None

    def __call__(self, arrays: list) -> np.ndarray | None:
        seen = self._seen
        if len(seen) != len(arrays) or not all(map(operator.is_, seen, arrays)):
            self._seen, self._flat = list(arrays), joined(arrays)
        return self._flat


class _Params:
    """The params' layout, cached while a step gets the very same param arrays: their flat
    array (None unless joined), two flat scratch arrays with a view of each shaped like
    every leaf (allocated once per shapes and dtype, reused by every step), and the lanes
    of ``(params, scratch 1, scratch 2)`` (see :func:`_lanes`)."""

    def __init__(self) -> None:
        self._seen: list = []
        self._key: tuple | None = None
        self._scratch: tuple = ()
        self._out: tuple = ()

    def __call__(self, ps: list) -> tuple:
        seen = self._seen
        if len(seen) == len(ps) and all(map(operator.is_, seen, ps)):
            return self._out
        key = (ps[0].dtype, *(p.shape for p in ps))
        if key != self._key:
            size = sum(p.size for p in ps)
            t1, t2 = np.empty(size, ps[0].dtype), np.empty(size, ps[0].dtype)
            self._key, self._scratch = key, (t1, t2, views(t1, ps), views(t2, ps))
        P, (t1, t2, t1s, t2s) = joined(ps), self._scratch
        self._seen, self._out = list(ps), (P, *self._scratch, _lanes((P, t1, t2), (ps, t1s, t2s)))
        return self._out


class _Where:
    """The positions of given state types in a chain's tuple of states, found once."""

    def __init__(self, *kinds: type) -> None:
        self._kinds = kinds
        self._types: tuple = ()
        self._at: tuple = ()

    def __call__(self, states: tuple) -> tuple:
        types = tuple(map(type, states))
        if types != self._types:
            self._types, self._at = types, tuple(_index(states, k) for k in self._kinds)
        return self._at


class _Leaves:
    """``(params, grads) -> (param leaves, grad leaves, how to read buffers)`` when every
    param is a writeable numpy float array and every grad a numpy array of its shape and
    dtype, else None. A plain dict (the models' params) is read by key in the params' order
    (grads and state buffers may hold the keys in another order), other trees through
    :mod:`symgrad.tree`. The params last found fit, and the reader of their keys, are kept:
    the very same arrays are not checked again, nor the grads last found fit for them."""

    def __init__(self) -> None:
        self._checked: list = []
        self._grads: list = []
        self._keys: tuple = ()
        self._read: Callable[[PyTree], list] = list

    def __call__(self, params: PyTree, grads: PyTree) -> tuple[list, list, Any] | None:
        found = self._read_leaves(params, grads)
        if found is None:
            return None
        ps, gs, _ = found
        checked = self._checked
        if len(checked) != len(ps) or not all(map(operator.is_, checked, ps)):
            for p in ps:
                if type(p) is not np.ndarray or p.dtype.kind != "f" or not p.flags.writeable:
                    return None
            self._checked, self._grads = ps, []
        seen = self._grads
        if len(seen) != len(gs) or not all(map(operator.is_, seen, gs)):
            for p, g in zip(ps, gs, strict=True):
                if type(g) is not np.ndarray or g.shape != p.shape or g.dtype != p.dtype:
                    return None
            self._grads = gs
        return found

    def _read_leaves(self, params: PyTree, grads: PyTree) -> tuple[list, list, Any] | None:
        """Return the param and grad leaves in the params' order and the buffers' reader, or
        None when the grads do not have the params' structure."""
        if type(params) is dict and type(grads) is dict:
            ps, keys = list(params.values()), tuple(params)
            if tuple(grads) == keys:
                gs = list(grads.values())
            elif grads.keys() == params.keys():
                gs = [grads[k] for k in keys]
            else:
                return None
            if keys != self._keys:
                self._keys, self._read = keys, _by_key(keys)
            return ps, gs, self._read
        ps, treedef = tree.flatten(params)
        try:
            gs = tree.flatten_as(treedef, grads, "grads")
        except (ValueError, TypeError):
            return None

        def read(buffers: PyTree) -> list:
            return tree.flatten_as(treedef, buffers, "optimizer state buffer")

        return ps, gs, read


def _by_key(keys: tuple) -> Callable[[dict], list]:
    def read(buffers: dict) -> list:
        return [buffers[k] for k in keys]

    return read


def _on_fast_leaves(step: Callable[..., Any]) -> Step:
    """Return ``(grads, state, params) -> state``: ``step`` on the leaves, or None (touching
    nothing) when they cannot take the fast path."""
    leaves_of = _Leaves()

    def run(grads: PyTree, state: Any, params: PyTree) -> Any:
        leaves = leaves_of(params, grads)
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


def _lanes(flat: tuple, leaves: tuple) -> list[tuple]:
    """Return what one operation runs over: the flat arrays as one lane when none is None
    (the leaves are joined), else one lane per leaf."""
    for a in flat:
        if a is None:
            return list(zip(*leaves, strict=True))
    return [flat]


def _lerp(g_lanes: list, m_lanes: list, T1: np.ndarray, weight: float) -> None:
    """Set ``m = lerp(m, g, weight)`` rounded as torch's CPU ``lerp_`` (``T1``: scratch)."""
    for g, m, t1 in g_lanes:
        np.subtract(g, m, out=t1)
    if weight < 0.5:
        T1 *= weight
        for m, _, t1 in m_lanes:
            m += t1
    else:
        T1 *= 1.0 - weight
        for g, m, t1 in g_lanes:
            np.subtract(g, t1, out=m)


def _adam_direction(
    g_lanes: list, m_lanes: list, T1: np.ndarray, hyper: tuple, bc1: float, bc2: float
) -> None:
    """Set ``v = b2 v + (1 - b2) g^2`` and leave Adam's ``m / bc1 / (sqrt(v) / bc2 + eps)``
    in ``T1``, rounded as the pure chain (a division by a correction of exactly 1 skipped)."""
    square_w, b2, eps = hyper
    for g, _, t1 in g_lanes:
        np.multiply(g, g, out=t1)
    T1 *= square_w
    for _, v, t1 in m_lanes:
        v *= b2
        v += t1
        np.sqrt(v, out=t1)
    if bc2 != 1.0:
        T1 /= bc2
    T1 += eps
    for m, _, t1 in m_lanes:
        np.divide(m, t1, out=t1)
    if bc1 != 1.0:
        T1 /= bc1


def adam_step(
    name: str, schedule: Schedule, betas: tuple[float, float], eps: float, *,
    weight_decay: float, decoupled: bool,
) -> Step:  # fmt: skip
    """Return the in-place step of torch Adam (``decoupled``: AdamW), amsgrad off.

    Operations on the scratch arrays alone run once over their flat array; those that read
    the moments, the gradients or the params run once over a flat array when those leaves
    lie back to back (:func:`join`), else once per leaf. Every element sees the same
    operations in the same order either way, and a division by a bias correction that is
    exactly 1.0 (``b1 ** t`` below half an ulp of 1, for ``t`` past a few hundred steps) is
    skipped: it would return its input unchanged.
    """
    layout, at_m, at_v = _Params(), _Layout(), _Layout()
    where = _Where(AdamState, ScaleByScheduleState)
    b1, b2 = betas
    keep, square_w = 1 - b1, 1 - b2
    l2, shrink = weight_decay != 0 and not decoupled, weight_decay != 0 and decoupled

    def step(ps: list, gs: list, read: Callable, state: Any) -> Any:
        inner = state.inner
        ia, il = where(inner)
        adam, sched = inner[ia], inner[il]
        t = adam.count + 1
        bc1, bc2 = 1 - b1**t, (1 - b2**t) ** 0.5
        lr = _lr(name, schedule, sched.count)
        ms, vs = read(adam.exp_avg), read(adam.exp_avg_sq)
        P, T1, T2, t1s, t2s, p_lanes = layout(ps)
        M, V = at_m(ms), at_v(vs)
        G = None if M is None and P is None else joined(gs)
        if l2:
            for p, g, t2 in _lanes((P, G, T2), (ps, gs, t2s)):
                _l2(g, p, weight_decay, t2)
            G, gs = T2, t2s  # the scratch is flat: the decayed gradient is joined
        g_lanes = _lanes((G, M, T1), (gs, ms, t1s))
        m_lanes = _lanes((M, V, T1), (ms, vs, t1s))
        _lerp(g_lanes, m_lanes, T1, keep)
        _adam_direction(g_lanes, m_lanes, T1, (square_w, b2, eps), bc1, bc2)
        if shrink:
            for p, _, t2 in p_lanes:
                np.multiply(p, weight_decay, out=t2)
            T1 += T2
        T1 *= -lr
        for p, t1, _ in p_lanes:
            p += t1
        new = list(inner)
        new[ia] = AdamState(t, adam.exp_avg, adam.exp_avg_sq, None)
        new[il] = ScaleByScheduleState(sched.count + 1)
        return type(state)(state.count + 1, tuple(new))

    return _on_fast_leaves(step)


def sgd_step(name: str, schedule: Schedule, momentum: float, dampening: float,
             nesterov: bool, weight_decay: float) -> Step:  # fmt: skip
    """Return the in-place step of torch SGD (momentum, dampening, Nesterov, L2 decay), over
    flat arrays where the leaves are joined, as :func:`adam_step`.

    With momentum and no dampening a step is four passes, each one ufunc call over the
    moment buffer's flat array or one per leaf where the grads or params are separate:
    ``buf *= momentum`` (always one call: ``init`` joins the buffer), ``buf += g``,
    ``t = buf * -lr`` (one call) and ``p += t``, the pure chain's four roundings.
    """
    layout, at_b = _Params(), _Layout()
    where = _Where(ScaleByScheduleState, TraceState) if momentum else _Where(ScaleByScheduleState)
    damp = 1 - dampening

    def step(ps: list, gs: list, read: Callable, state: Any) -> Any:
        inner = state.inner
        il, *it = where(inner)
        sched = inner[il]
        lr = _lr(name, schedule, sched.count)
        new = list(inner)
        P, T1, T2, t1s, t2s, p_lanes = layout(ps)
        G = joined(gs)
        if weight_decay != 0:
            for p, g, t2 in _lanes((P, G, T2), (ps, gs, t2s)):
                _l2(g, p, weight_decay, t2)
            G, gs = T2, t2s  # the scratch is flat: the decayed gradient is joined
        U, us = G, gs  # the update before the learning rate
        if momentum != 0:
            trace = inner[it[0]]
            bufs = read(trace.momentum_buffer)
            B = at_b(bufs)
            _momentum(trace.count == 0, (B, G, T1), (bufs, gs, t1s), momentum, damp)
            U, us = B, bufs
            if nesterov:
                for buf, g, t1 in _lanes((B, G, T1), (bufs, gs, t1s)):
                    np.multiply(buf, momentum, out=t1)
                    t1 += g
                U, us = T1, t1s
            new[it[0]] = TraceState(trace.count + 1, trace.momentum_buffer)
        for u, t1 in _lanes((U, T1), (us, t1s)):
            np.multiply(u, -lr, out=t1)
        for p, t1, _ in p_lanes:
            p += t1
        new[il] = ScaleByScheduleState(sched.count + 1)
        return type(state)(state.count + 1, tuple(new))

    return _on_fast_leaves(step)


def _momentum(first: bool, flat: tuple, leaves: tuple, momentum: float, damp: float) -> None:
    """Set torch's momentum buffer ``buf = momentum * buf + damp * g`` (the gradient itself
    at the first step) over ``flat = (B, G, T1)`` or their ``leaves``; ``T1``: scratch."""
    B, G, T1 = flat
    bufs, gs, t1s = leaves
    if first:
        for buf, g in _lanes((B, G), (bufs, gs)):
            np.copyto(buf, g)
        return
    for buf in [B] if B is not None else bufs:  # the buffer alone: one call when joined
        buf *= momentum
    if damp == 1:
        for buf, g in _lanes((B, G), (bufs, gs)):
            buf += g  # (1 - 0) * g is g exactly
        return
    for buf, g, t1 in _lanes(flat, leaves):
        np.multiply(g, damp, out=t1)
        buf += t1
