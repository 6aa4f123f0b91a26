"""Functional optimizers with torch.optim's exact update rules, for numpy parameter pytrees.

Each constructor returns an :class:`Optimizer` of two pure functions, as in optax::

    opt = adam(lr=1e-2)
    state = opt.init(params)
    params, state = opt.update(grads, state, params)

``params`` and ``grads`` are pytrees: dicts, lists and tuples (nested) of numpy arrays.
Dict leaves are visited in the insertion order of ``params``; other trees are matched by key.
Nothing passed in is modified: every update returns new arrays and a new state. The state is
a NamedTuple holding the update ``count`` and per-leaf buffers laid out like ``params``
(``None`` for a buffer an option does not use), so it can be inspected and checkpointed.

Hyper-parameter names, defaults and update rules are those of ``torch.optim`` (single-tensor
code path); ``lr`` may also be a schedule ``step -> lr`` (see :mod:`symgrad.schedules`),
evaluated at ``state.count``, which is 0 for the first update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any, NamedTuple

import numpy as np

from symgrad.schedules import Schedule, as_schedule

__all__ = [
    "OPTIMIZERS",
    "AdadeltaState",
    "AdagradState",
    "AdamState",
    "AdamaxState",
    "NAdamState",
    "Optimizer",
    "RMSpropState",
    "SGDState",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "get",
    "nadam",
    "rmsprop",
    "sgd",
]

PyTree = Any
LearningRate = float | Callable[[int], float]

# --------------------------------------------------------------------------- pytrees


class _TreeDef(NamedTuple):
    kind: str  # "leaf", "none", "dict", "list", "tuple"
    node_type: type | None
    keys: tuple
    children: tuple


_LEAF = _TreeDef("leaf", None, (), ())


def _flatten(tree: PyTree) -> tuple[list, _TreeDef]:
    """Split a pytree into its leaves (deterministic order) and a structure description."""
    leaves: list = []

    def go(node: PyTree) -> _TreeDef:
        if node is None:
            return _TreeDef("none", None, (), ())
        if isinstance(node, dict):
            keys = tuple(node)
            return _TreeDef("dict", type(node), keys, tuple(go(node[k]) for k in keys))
        if isinstance(node, list | tuple):
            kind = "list" if isinstance(node, list) else "tuple"
            return _TreeDef(kind, type(node), tuple(range(len(node))), tuple(go(c) for c in node))
        leaves.append(node)
        return _LEAF

    return leaves, go(tree)


def _path_str(path: tuple) -> str:
    return "".join(f"[{k!r}]" for k in path)


def _leaf_paths(treedef: _TreeDef) -> list[str]:
    """List the path of every leaf of ``treedef``, e.g. ``['layer'][0]``, in leaf order."""
    out: list[str] = []

    def go(td: _TreeDef, path: tuple) -> None:
        if td.kind == "leaf":
            out.append(_path_str(path))
        for k, child in zip(td.keys, td.children, strict=True):
            go(child, (*path, k))

    go(treedef, ())
    return out


def _flatten_as(treedef: _TreeDef, tree: PyTree, what: str = "tree") -> list:
    """Return the leaves of ``tree`` in ``treedef``'s order, checking it has that structure."""
    leaves: list = []

    def go(td: _TreeDef, node: PyTree, path: tuple) -> None:
        where = f"{what}{_path_str(path)}"
        if td.kind == "leaf":
            if node is None or isinstance(node, dict | list | tuple):
                raise ValueError(f"{where}: expected an array leaf, got {type(node).__name__}")
            leaves.append(node)
        elif td.kind == "none":
            if node is not None:
                raise ValueError(f"{where}: expected None, got {type(node).__name__}")
        elif td.kind == "dict":
            if not isinstance(node, dict):
                raise ValueError(f"{where}: expected a dict, got {type(node).__name__}")
            if set(node) != set(td.keys):
                raise ValueError(
                    f"{where}: dict keys {sorted(map(repr, node))} do not match "
                    f"{sorted(map(repr, td.keys))}"
                )
            for k, child in zip(td.keys, td.children, strict=True):
                go(child, node[k], (*path, k))
        else:
            want = list if td.kind == "list" else tuple
            if not isinstance(node, want) or len(node) != len(td.keys):
                got = type(node).__name__ + (
                    f" of length {len(node)}" if isinstance(node, list | tuple) else ""
                )
                raise ValueError(
                    f"{where}: expected a {td.kind} of length {len(td.keys)}, got {got}"
                )
            for k, child in zip(td.keys, td.children, strict=True):
                go(child, node[k], (*path, k))

    go(treedef, tree, ())
    return leaves


def _unflatten(treedef: _TreeDef, leaves: list) -> PyTree:
    """Rebuild a pytree of ``treedef``'s structure from leaves in flatten order."""
    it = iter(leaves)

    def go(td: _TreeDef) -> PyTree:
        if td.kind == "leaf":
            return next(it)
        if td.kind == "none":
            return None
        children = [go(c) for c in td.children]
        if td.kind == "dict":
            out = dict(zip(td.keys, children, strict=True))
            return out if td.node_type is dict else td.node_type(out)
        if td.kind == "list":
            return children if td.node_type is list else td.node_type(children)
        if hasattr(td.node_type, "_fields"):  # namedtuple
            return td.node_type(*children)
        return td.node_type(children)

    return go(treedef)


def _tree_leaves(tree: PyTree) -> list:
    """Return the leaves of a pytree in deterministic order."""
    return _flatten(tree)[0]


def _tree_map(fn: Callable, tree: PyTree, *rest: PyTree) -> PyTree:
    """Apply ``fn`` leaf-wise over trees shaped like ``tree``; return a tree of results."""
    leaves, treedef = _flatten(tree)
    others = [_flatten_as(treedef, r, f"tree #{i + 1}") for i, r in enumerate(rest)]
    return _unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others, strict=True)])


def _as_float_array(x: Any) -> np.ndarray:
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.inexact) else a.astype(np.float64)


# --------------------------------------------------------------------------- helpers


class Optimizer(NamedTuple):
    """Hold an optimizer's pure ``init``/``update`` functions and its settings.

    ``init(params) -> state``; ``update(grads, state, params) -> (new_params, new_state)``.
    ``learning_rate(step)`` gives the rate used for update number ``step`` (0-based).
    """

    init: Callable[[PyTree], Any]
    update: Callable[[PyTree, Any, PyTree], tuple[PyTree, Any]]
    name: str
    hyperparams: Mapping[str, Any]
    learning_rate: Schedule


def _fail(opt: str, name: str, value: Any, rule: str) -> None:
    raise ValueError(f"{opt}: invalid {name}={value!r}; {rule}")


def _real(opt: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        _fail(opt, name, value, "must be a finite real number")
    return float(value)


def _nonneg(opt: str, name: str, value: Any) -> float:
    v = _real(opt, name, value)
    if v < 0:
        _fail(opt, name, value, "must be >= 0")
    return v


def _unit(opt: str, name: str, value: Any, *, closed: bool) -> float:
    v = _real(opt, name, value)
    if not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        _fail(opt, name, value, "must be in [0, 1]" if closed else "must be in [0, 1)")
    return v


def _betas(opt: str, betas: Any) -> tuple[float, float]:
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        _fail(opt, "betas", betas, "must be a pair (beta1, beta2)")
    return (
        _unit(opt, "betas[0]", betas[0], closed=False),
        _unit(opt, "betas[1]", betas[1], closed=False),
    )


def _lr_schedule(opt: str, lr: LearningRate) -> Schedule:
    if callable(lr):
        return as_schedule(lr)
    return as_schedule(_nonneg(opt, "lr", lr))


def _lr_at(opt: str, schedule: Schedule, count: int) -> float:
    lr = schedule(count)
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(
            f"{opt}: learning-rate schedule gave lr={lr!r} at step {count}; must be finite and >= 0"
        )
    return lr


def _prepare(opt: str, grads: PyTree, params: PyTree, *buffers: PyTree):
    """Flatten params, grads and state buffers to float arrays, checking structure and shape."""
    p_leaves, treedef = _flatten(params)
    p_leaves = [_as_float_array(p) for p in p_leaves]
    g_leaves = [_as_float_array(g) for g in _flatten_as(treedef, grads, "grads")]
    for i, (p, g) in enumerate(zip(p_leaves, g_leaves, strict=True)):
        if p.shape != g.shape:
            path = _leaf_paths(treedef)[i]
            raise ValueError(f"{opt}: grads{path} has shape {g.shape}, params has {p.shape}")
    bufs = [None if b is None else _flatten_as(treedef, b, f"{opt} state buffer") for b in buffers]
    return treedef, p_leaves, g_leaves, bufs


def _zeros_like_tree(params: PyTree, fill: float = 0.0) -> PyTree:
    return _tree_map(lambda p: np.full_like(_as_float_array(p), fill), params)


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """Compute ``start + weight * (end - start)`` the way torch's CPU ``lerp_`` rounds it."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def _signed(g: np.ndarray, maximize: bool) -> np.ndarray:
    return -g if maximize else g


# --------------------------------------------------------------------------- SGD


class SGDState(NamedTuple):
    """Hold SGD's update count and momentum buffers (``None`` without momentum)."""

    count: int
    momentum_buffer: PyTree


def sgd(
    lr: LearningRate = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    nesterov: bool = False,
    weight_decay: float = 0,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``SGD``: the first momentum update copies the gradient, undampened."""
    name = "sgd"
    sched = _lr_schedule(name, lr)
    momentum = _nonneg(name, "momentum", momentum)
    dampening = _real(name, "dampening", dampening)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    if nesterov and (momentum <= 0 or dampening != 0):
        _fail(name, "nesterov", nesterov, "Nesterov momentum needs momentum > 0 and dampening 0")

    def init(params: PyTree) -> SGDState:
        return SGDState(0, _zeros_like_tree(params) if momentum != 0 else None)

    def update(grads: PyTree, state: SGDState, params: PyTree) -> tuple[PyTree, SGDState]:
        lr_t = _lr_at(name, sched, state.count)
        treedef, ps, gs, (bufs,) = _prepare(name, grads, params, state.momentum_buffer)
        new_p, new_b = [], []
        for i, (p, g) in enumerate(zip(ps, gs, strict=True)):
            g = _signed(g, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p
            if momentum != 0:
                if state.count == 0:
                    buf = np.array(g, copy=True)
                else:
                    buf = momentum * bufs[i] + (1 - dampening) * g
                new_b.append(buf)
                g = g + momentum * buf if nesterov else buf
            new_p.append(p - lr_t * g)
        buf_tree = _unflatten(treedef, new_b) if momentum != 0 else None
        return _unflatten(treedef, new_p), SGDState(state.count + 1, buf_tree)

    hyper = dict(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    return Optimizer(init, update, name, hyper, sched)


# --------------------------------------------------------------------------- Adagrad


class AdagradState(NamedTuple):
    """Hold Adagrad's update count and running sums of squared gradients."""

    count: int
    sum: PyTree


def adagrad(
    lr: LearningRate = 1e-2,
    lr_decay: float = 0,
    weight_decay: float = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``Adagrad``: step ``t`` uses ``lr / (1 + (t - 1) * lr_decay)``."""
    name = "adagrad"
    sched = _lr_schedule(name, lr)
    lr_decay = _nonneg(name, "lr_decay", lr_decay)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    initial = _nonneg(name, "initial_accumulator_value", initial_accumulator_value)
    eps = _nonneg(name, "eps", eps)

    def init(params: PyTree) -> AdagradState:
        return AdagradState(0, _zeros_like_tree(params, initial))

    def update(grads: PyTree, state: AdagradState, params: PyTree):
        lr_t = _lr_at(name, sched, state.count)
        step = state.count + 1
        treedef, ps, gs, (sums,) = _prepare(name, grads, params, state.sum)
        clr = lr_t / (1 + (step - 1) * lr_decay)
        new_p, new_s = [], []
        for p, g, s in zip(ps, gs, sums, strict=True):
            g = _signed(g, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p
            s = s + g * g
            new_s.append(s)
            new_p.append(p - clr * (g / (np.sqrt(s) + eps)))
        return _unflatten(treedef, new_p), AdagradState(step, _unflatten(treedef, new_s))

    hyper = dict(
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        initial_accumulator_value=initial,
        eps=eps,
        maximize=maximize,
    )
    return Optimizer(init, update, name, hyper, sched)


# --------------------------------------------------------------------------- Adadelta


class AdadeltaState(NamedTuple):
    """Hold Adadelta's update count, squared-gradient and squared-delta averages."""

    count: int
    square_avg: PyTree
    acc_delta: PyTree


def adadelta(
    lr: LearningRate = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``Adadelta`` (``lr`` scales the delta; torch's default 1.0)."""
    name = "adadelta"
    sched = _lr_schedule(name, lr)
    rho = _unit(name, "rho", rho, closed=True)
    eps = _nonneg(name, "eps", eps)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)

    def init(params: PyTree) -> AdadeltaState:
        return AdadeltaState(0, _zeros_like_tree(params), _zeros_like_tree(params))

    def update(grads: PyTree, state: AdadeltaState, params: PyTree):
        lr_t = _lr_at(name, sched, state.count)
        treedef, ps, gs, (sqs, accs) = _prepare(
            name, grads, params, state.square_avg, state.acc_delta
        )
        new_p, new_sq, new_acc = [], [], []
        for p, g, sq, acc in zip(ps, gs, sqs, accs, strict=True):
            g = _signed(g, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p
            sq = rho * sq + (1 - rho) * (g * g)
            delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
            acc = rho * acc + (1 - rho) * (delta * delta)
            new_sq.append(sq)
            new_acc.append(acc)
            new_p.append(p - lr_t * delta)
        new_state = AdadeltaState(
            state.count + 1, _unflatten(treedef, new_sq), _unflatten(treedef, new_acc)
        )
        return _unflatten(treedef, new_p), new_state

    hyper = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
    return Optimizer(init, update, name, hyper, sched)


# --------------------------------------------------------------------------- RMSprop


class RMSpropState(NamedTuple):
    """Hold RMSprop's count, square average, gradient average and momentum buffer."""

    count: int
    square_avg: PyTree
    grad_avg: PyTree  # None unless centered
    momentum_buffer: PyTree  # None unless momentum > 0


def rmsprop(
    lr: LearningRate = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``RMSprop``; ``eps`` is added after the square root."""
    name = "rmsprop"
    sched = _lr_schedule(name, lr)
    alpha = _unit(name, "alpha", alpha, closed=True)
    eps = _nonneg(name, "eps", eps)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    momentum = _nonneg(name, "momentum", momentum)

    def init(params: PyTree) -> RMSpropState:
        return RMSpropState(
            0,
            _zeros_like_tree(params),
            _zeros_like_tree(params) if centered else None,
            _zeros_like_tree(params) if momentum > 0 else None,
        )

    def update(grads: PyTree, state: RMSpropState, params: PyTree):
        lr_t = _lr_at(name, sched, state.count)
        treedef, ps, gs, (sqs, gavgs, bufs) = _prepare(
            name, grads, params, state.square_avg, state.grad_avg, state.momentum_buffer
        )
        new_p, new_sq, new_ga, new_buf = [], [], [], []
        for i, (p, g, sq) in enumerate(zip(ps, gs, sqs, strict=True)):
            g = _signed(g, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p
            sq = alpha * sq + (1 - alpha) * (g * g)
            new_sq.append(sq)
            if centered:
                ga = _lerp(gavgs[i], g, 1 - alpha)
                new_ga.append(ga)
                avg = np.sqrt(sq - ga * ga) + eps
            else:
                avg = np.sqrt(sq) + eps
            if momentum > 0:
                buf = momentum * bufs[i] + g / avg
                new_buf.append(buf)
                new_p.append(p - lr_t * buf)
            else:
                new_p.append(p - lr_t * (g / avg))
        new_state = RMSpropState(
            state.count + 1,
            _unflatten(treedef, new_sq),
            _unflatten(treedef, new_ga) if centered else None,
            _unflatten(treedef, new_buf) if momentum > 0 else None,
        )
        return _unflatten(treedef, new_p), new_state

    hyper = dict(
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
        maximize=maximize,
    )
    return Optimizer(init, update, name, hyper, sched)


# --------------------------------------------------------------------------- Adam / AdamW


class AdamState(NamedTuple):
    """Hold Adam's count, first and second moments and their running max (amsgrad)."""

    count: int
    exp_avg: PyTree
    exp_avg_sq: PyTree
    max_exp_avg_sq: PyTree  # None unless amsgrad


def _adam(
    name: str,
    lr: LearningRate,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
) -> Optimizer:
    sched = _lr_schedule(name, lr)
    beta1, beta2 = _betas(name, betas)
    eps = _nonneg(name, "eps", eps)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)

    def init(params: PyTree) -> AdamState:
        return AdamState(
            0,
            _zeros_like_tree(params),
            _zeros_like_tree(params),
            _zeros_like_tree(params) if amsgrad else None,
        )

    def update(grads: PyTree, state: AdamState, params: PyTree):
        lr_t = _lr_at(name, sched, state.count)
        step = state.count + 1
        treedef, ps, gs, (ms, vs, vmaxs) = _prepare(
            name, grads, params, state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq
        )
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr_t / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        new_p, new_m, new_v, new_vmax = [], [], [], []
        for i, (p, g, m, v) in enumerate(zip(ps, gs, ms, vs, strict=True)):
            g = _signed(g, maximize)
            if weight_decay != 0:
                if decoupled:
                    p = p * (1 - lr_t * weight_decay)
                else:
                    g = g + weight_decay * p
            m = _lerp(m, g, 1 - beta1)
            v = beta2 * v + (1 - beta2) * (g * g)
            new_m.append(m)
            new_v.append(v)
            if amsgrad:
                vmax = np.maximum(vmaxs[i], v)
                new_vmax.append(vmax)
                denom = np.sqrt(vmax) / bias_correction2_sqrt + eps
            else:
                denom = np.sqrt(v) / bias_correction2_sqrt + eps
            new_p.append(p - step_size * (m / denom))
        new_state = AdamState(
            step,
            _unflatten(treedef, new_m),
            _unflatten(treedef, new_v),
            _unflatten(treedef, new_vmax) if amsgrad else None,
        )
        return _unflatten(treedef, new_p), new_state

    hyper = dict(
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
    )
    return Optimizer(init, update, name, hyper, sched)


def adam(
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``Adam`` (L2 ``weight_decay`` added to the gradient)."""
    return _adam("adam", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=False)


def adamw(
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``AdamW``: params shrink by ``1 - lr * weight_decay`` before the Adam step."""
    return _adam("adamw", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=True)


# --------------------------------------------------------------------------- Adamax


class AdamaxState(NamedTuple):
    """Hold Adamax's count, first moment and exponentially weighted infinity norm."""

    count: int
    exp_avg: PyTree
    exp_inf: PyTree


def adamax(
    lr: LearningRate = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``Adamax``: ``u = max(beta2 * u, |g| + eps)``."""
    name = "adamax"
    sched = _lr_schedule(name, lr)
    beta1, beta2 = _betas(name, betas)
    eps = _nonneg(name, "eps", eps)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)

    def init(params: PyTree) -> AdamaxState:
        return AdamaxState(0, _zeros_like_tree(params), _zeros_like_tree(params))

    def update(grads: PyTree, state: AdamaxState, params: PyTree):
        lr_t = _lr_at(name, sched, state.count)
        step = state.count + 1
        treedef, ps, gs, (ms, us) = _prepare(name, grads, params, state.exp_avg, state.exp_inf)
        clr = lr_t / (1 - beta1**step)
        new_p, new_m, new_u = [], [], []
        for p, g, m, u in zip(ps, gs, ms, us, strict=True):
            g = _signed(g, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p
            m = _lerp(m, g, 1 - beta1)
            u = np.maximum(beta2 * u, np.abs(g) + eps)
            new_m.append(m)
            new_u.append(u)
            new_p.append(p - clr * (m / u))
        new_state = AdamaxState(step, _unflatten(treedef, new_m), _unflatten(treedef, new_u))
        return _unflatten(treedef, new_p), new_state

    hyper = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, maximize=maximize)
    return Optimizer(init, update, name, hyper, sched)


# --------------------------------------------------------------------------- NAdam


class NAdamState(NamedTuple):
    """Hold NAdam's count, running product of momentum coefficients, and both moments."""

    count: int
    mu_product: float
    exp_avg: PyTree
    exp_avg_sq: PyTree


def nadam(
    lr: LearningRate = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """Build torch ``NAdam``: ``mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))``."""
    name = "nadam"
    sched = _lr_schedule(name, lr)
    beta1, beta2 = _betas(name, betas)
    eps = _nonneg(name, "eps", eps)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    momentum_decay = _nonneg(name, "momentum_decay", momentum_decay)

    def init(params: PyTree) -> NAdamState:
        return NAdamState(0, 1.0, _zeros_like_tree(params), _zeros_like_tree(params))

    def update(grads: PyTree, state: NAdamState, params: PyTree):
        lr_t = _lr_at(name, sched, state.count)
        step = state.count + 1
        treedef, ps, gs, (ms, vs) = _prepare(name, grads, params, state.exp_avg, state.exp_avg_sq)
        bias_correction2 = 1 - beta2**step
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
        mu_product = state.mu_product * mu
        mu_product_next = mu_product * mu_next
        coef_g = (-lr_t * (1.0 - mu)) / (1.0 - mu_product)
        coef_m = (-lr_t * mu_next) / (1.0 - mu_product_next)
        new_p, new_m, new_v = [], [], []
        for p, g, m, v in zip(ps, gs, ms, vs, strict=True):
            g = _signed(g, maximize)
            if weight_decay != 0:
                if decoupled_weight_decay:
                    p = p * (1 - lr_t * weight_decay)
                else:
                    g = g + weight_decay * p
            m = _lerp(m, g, 1 - beta1)
            v = beta2 * v + (1 - beta2) * (g * g)
            denom = np.sqrt(v / bias_correction2) + eps
            new_m.append(m)
            new_v.append(v)
            new_p.append(p + coef_g * (g / denom) + coef_m * (m / denom))
        new_state = NAdamState(
            step, mu_product, _unflatten(treedef, new_m), _unflatten(treedef, new_v)
        )
        return _unflatten(treedef, new_p), new_state

    hyper = dict(
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        momentum_decay=momentum_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        maximize=maximize,
    )
    return Optimizer(init, update, name, hyper, sched)


# --------------------------------------------------------------------------- registry

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "adamax": adamax,
    "nadam": nadam,
}


def get(name: str, **kwargs: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` (case-insensitive) with ``kwargs``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)
