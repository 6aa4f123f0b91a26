"""Functional optimizers with torch.optim's exact update rules, for numpy parameter pytrees.

Each named constructor returns an :class:`Optimizer` of two pure functions::

    opt = adam(lr=1e-2)
    state = opt.init(params)
    params, state = opt.update(grads, state, params)

Underneath, each is a short :func:`chain` of optax-style gradient transformations (kept in
``opt.transform``): ``adamw`` is ``chain(scale_by_adam(...), add_decayed_weights(wd),
scale_by_learning_rate(lr))``. The pieces (clipping by global norm or value, weight-decay
masks, an EMA of the params, Lion's sign step) compose with any optimizer, and
:func:`as_optimizer` turns a chain back into an :class:`Optimizer` for :func:`symgrad.fit`::

    opt = as_optimizer(chain(clip_by_global_norm(1.0), adam(lr=1e-3), ema_params(0.99)))

``params`` and ``grads`` are pytrees (see :mod:`symgrad.tree`); dict leaves are visited in
the insertion order of ``params``, other trees are matched by key. Nothing passed in is
modified. The state is an :class:`OptState` NamedTuple: the update ``count`` and the chain's
tuple of per-piece NamedTuple states, so it can be inspected, pickled and resumed.

Hyper-parameter names, defaults and update rules are those of ``torch.optim`` (single-tensor
code path); ``lr`` may also be a schedule ``step -> lr`` (see :mod:`symgrad.schedules`),
evaluated at the update count, which is 0 for the first update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from symgrad import _inplace, _xp, tree
from symgrad._transform import (
    AdadeltaState,
    AdagradState,
    AdamaxState,
    AdamState,
    EmaParamsState,
    EmptyState,
    GradientTransformation,
    LearningRate,
    LionState,
    Mask,
    NAdamState,
    RMSpropState,
    ScaleByScheduleState,
    TraceState,
    _add_decayed_weights,
    _betas,
    _fail,
    _lr_schedule,
    _nonneg,
    _real,
    _scale_by_adadelta,
    _scale_by_adagrad,
    _scale_by_adam,
    _scale_by_adamax,
    _scale_by_lion,
    _scale_by_lr,
    _scale_by_nadam,
    _scale_by_rmsprop,
    _trace,
    add_decayed_weights,
    apply_updates,
    as_transform,
    chain,
    clip,
    clip_by_global_norm,
    ema_params,
    find_state,
    global_norm,
    identity,
    scale,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_nadam,
    scale_by_rmsprop,
    trace,
)
from symgrad.schedules import Schedule

__all__ = [
    "OPTIMIZERS",
    "AdadeltaState",
    "AdagradState",
    "AdamState",
    "AdamaxState",
    "EmaParamsState",
    "EmptyState",
    "GradientTransformation",
    "LionState",
    "NAdamState",
    "OptState",
    "Optimizer",
    "RMSpropState",
    "SGDState",
    "ScaleByScheduleState",
    "TraceState",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "as_optimizer",
    "as_transform",
    "chain",
    "clip",
    "clip_by_global_norm",
    "ema_params",
    "find_state",
    "get",
    "global_norm",
    "identity",
    "join",
    "lion",
    "nadam",
    "rmsprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_rmsprop",
    "sgd",
    "step_in_place",
    "trace",
]

PyTree = Any
SGDState = TraceState  # the state of SGD's momentum piece, under its former name


class Optimizer(NamedTuple):
    """Hold an optimizer's pure ``init``/``update`` functions and its settings.

    ``init(params) -> state``; ``update(grads, state, params) -> (new_params, new_state)``.
    ``learning_rate(step)`` gives the rate used for update number ``step`` (0-based), or is
    ``None`` when unknown. ``transform`` is the gradient transformation underneath (``None``
    for optimizers that are not chains, such as :mod:`symgrad.newton`'s).

    ``step(grads, state, params) -> state`` is the in-place fast path of ``sgd``, ``adam``
    and ``adamw`` (``None`` for the others, and with ``maximize``, ``amsgrad`` or a weight
    decay mask): it overwrites ``params`` and the state's buffers with the very numbers
    ``update`` would return, with no new arrays per step, or returns None (touching
    nothing) for leaves it cannot overwrite. :func:`step_in_place` calls it, falling back
    to ``update``.
    """

    init: Callable[[PyTree], Any]
    update: Callable[[PyTree, Any, PyTree], tuple[PyTree, Any]]
    name: str
    hyperparams: Mapping[str, Any]
    learning_rate: Schedule | None
    transform: GradientTransformation | None = None
    step: Callable[[PyTree, Any, PyTree], Any] | None = None


class OptState(NamedTuple):
    """Hold an :class:`Optimizer`'s update ``count`` and its transformation's state."""

    count: int
    inner: Any


def _checked(name: str, grads: PyTree, params: PyTree) -> tuple[PyTree, PyTree]:
    """Return params and grads as float trees of params' structure, checking their shapes."""
    p_leaves, treedef = tree.flatten(params)
    p_leaves = [tree.as_float_array(p) for p in p_leaves]
    g_leaves = [tree.as_float_array(g) for g in tree.flatten_as(treedef, grads, "grads")]
    for i, (p, g) in enumerate(zip(p_leaves, g_leaves, strict=True)):
        if _xp.is_foreign(p) and not _xp.is_foreign(g):  # numpy grads for torch/... params
            g_leaves[i] = g = _xp.like(g, p)
        if tuple(p.shape) != tuple(g.shape):
            path = tree.leaf_paths(treedef)[i]
            raise ValueError(f"{name}: grads{path} has shape {g.shape}, params has {p.shape}")
    return tree.unflatten(treedef, p_leaves), tree.unflatten(treedef, g_leaves)


def as_optimizer(
    transform: GradientTransformation | Optimizer,
    name: str = "custom",
    hyperparams: Mapping[str, Any] | None = None,
    learning_rate: LearningRate | None = None,
) -> Optimizer:
    """Wrap a gradient transformation as an :class:`Optimizer` whose update returns params.

    ``learning_rate`` (optional) is only recorded, e.g. in :func:`symgrad.fit`'s history.
    """
    tx = as_transform(transform)
    sched = None if learning_rate is None else _lr_schedule(name, learning_rate)

    def init(params: PyTree) -> OptState:
        return OptState(0, tx.init(params))

    def update(grads: PyTree, state: OptState, params: PyTree) -> tuple[PyTree, OptState]:
        params, grads = _checked(name, grads, params)
        updates, inner = tx.update(grads, state.inner, params)
        return apply_updates(params, updates), OptState(state.count + 1, inner)

    return Optimizer(init, update, name, dict(hyperparams or {}), sched, tx)


#: The state buffers the in-place fast path reads, joined by the named optimizers' ``init``.
_JOINED = {AdamState: ("exp_avg", "exp_avg_sq"), TraceState: ("momentum_buffer",)}


def _named(name: str, hyper: dict, lr: LearningRate, *parts: Any, fast: Any = None) -> Optimizer:
    """Build the named optimizer ``chain(*parts, scale_by_learning_rate(lr))``; ``fast``
    (``schedule -> step``) builds its in-place fast path."""
    sched = _lr_schedule(name, lr)
    tx = chain(*(p for p in parts if p is not None), _scale_by_lr(name, sched))
    opt = as_optimizer(tx, name, hyper, sched)
    if fast is None:
        return opt

    def init(params: PyTree) -> OptState:
        """Return the chain's state, its moment buffers joined into one flat array each
        (same values), so the fast path runs one ufunc call per operation over them."""
        state = opt.init(params)
        inner = tuple(
            s._replace(**{f: _inplace.join(getattr(s, f)) for f in _JOINED[type(s)]})
            if type(s) in _JOINED
            else s
            for s in state.inner
        )
        return OptState(state.count, inner)

    return opt._replace(init=init, step=fast(sched))


def join(params: PyTree) -> PyTree:
    """Return a copy of ``params`` whose numpy leaves are views of one flat array, back to
    back in leaf order (the tree, shapes, dtype and values kept), so that
    :func:`step_in_place` updates them with one ufunc call per operation. Write gradients
    into such a tree as well (e.g. ``MLP.objective(..., out=join(grads))``) to keep every
    operation one call. Trees of several dtypes or non-numpy leaves come back unchanged.
    """
    return _inplace.join(params)


def step_in_place(opt: Optimizer, grads: PyTree, state: Any, params: PyTree) -> Any:
    """Update ``params`` in place by one step of ``opt``; return the new state.

    The named optimizers' fast path (:attr:`Optimizer.step`) runs when every param is a
    writeable numpy float array and every grad a numpy array of its shape and dtype; it
    gives exactly the numbers of ``opt.update``. Otherwise ``opt.update`` runs and its
    result is copied into ``params``.

    The named optimizers' ``init`` lays each moment buffer out as views of one flat array,
    so most operations of a step are one ufunc call over all parameters (torch's
    ``foreach``); params and grads laid out that way too (:func:`join`) make every
    operation one call.
    """
    if opt.step is not None:
        done = opt.step(grads, state, params)
        if done is not None:
            return done
    new, state = opt.update(grads, state, params)
    for old, value in zip(tree.leaves(params), tree.leaves(new), strict=True):
        np.copyto(old, value)
    return state


def _ascent_and_l2(name: str, maximize: bool, weight_decay: float, mask: Mask | None) -> list:
    """Return torch's gradient preamble: negate to maximize, then add L2 weight decay."""
    parts = [scale(-1.0)] if maximize else []
    if weight_decay != 0:
        parts.append(_add_decayed_weights(name, weight_decay, mask))
    return parts


def _with_mask(hyper: dict, mask: Mask | None) -> dict:
    return hyper if mask is None else {**hyper, "weight_decay_mask": mask}


# --------------------------------------------------------------------------- named optimizers


def sgd(
    lr: LearningRate = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    nesterov: bool = False,
    weight_decay: float = 0,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``SGD``: the first momentum update copies the gradient, undampened."""
    name = "sgd"
    momentum = _nonneg(name, "momentum", momentum)
    dampening = _real(name, "dampening", dampening)
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    if nesterov and (momentum <= 0 or dampening != 0):
        _fail(name, "nesterov", nesterov, "Nesterov momentum needs momentum > 0 and dampening 0")
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                 weight_decay=weight_decay, maximize=maximize)  # fmt: skip
    fast = None
    if not maximize and weight_decay_mask is None:

        def fast(sched: Schedule) -> Any:
            return _inplace.sgd_step(name, sched, momentum, dampening, nesterov, weight_decay)

    return _named(
        name,
        _with_mask(hyper, weight_decay_mask),
        lr,
        *_ascent_and_l2(name, maximize, weight_decay, weight_decay_mask),
        _trace(name, momentum, dampening, nesterov) if momentum != 0 else None,
        fast=fast,
    )


def adagrad(
    lr: LearningRate = 1e-2,
    lr_decay: float = 0,
    weight_decay: float = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``Adagrad``: step ``t`` uses ``lr / (1 + (t - 1) * lr_decay)``."""
    name = "adagrad"
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    core = _scale_by_adagrad(name, lr_decay, initial_accumulator_value, eps)
    hyper = dict(lr=lr, lr_decay=float(lr_decay), weight_decay=weight_decay,
                 initial_accumulator_value=float(initial_accumulator_value), eps=float(eps),
                 maximize=maximize)  # fmt: skip
    prelude = _ascent_and_l2(name, maximize, weight_decay, weight_decay_mask)
    return _named(name, _with_mask(hyper, weight_decay_mask), lr, *prelude, core)


def adadelta(
    lr: LearningRate = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``Adadelta`` (``lr`` scales the delta; torch's default 1.0)."""
    name = "adadelta"
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    core = _scale_by_adadelta(name, rho, eps)
    hyper = dict(lr=lr, rho=float(rho), eps=float(eps), weight_decay=weight_decay,
                 maximize=maximize)  # fmt: skip
    prelude = _ascent_and_l2(name, maximize, weight_decay, weight_decay_mask)
    return _named(name, _with_mask(hyper, weight_decay_mask), lr, *prelude, core)


def rmsprop(  # noqa: PLR0917 - torch.optim's positional order, kept for callers
    lr: LearningRate = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``RMSprop``: ``eps`` is added after the square root; momentum is a trace."""
    name = "rmsprop"
    weight_decay = _nonneg(name, "weight_decay", weight_decay)
    momentum = _nonneg(name, "momentum", momentum)
    core = _scale_by_rmsprop(name, alpha, eps, centered)
    hyper = dict(lr=lr, alpha=float(alpha), eps=float(eps), weight_decay=weight_decay,
                 momentum=momentum, centered=centered, maximize=maximize)  # fmt: skip
    return _named(
        name,
        _with_mask(hyper, weight_decay_mask),
        lr,
        *_ascent_and_l2(name, maximize, weight_decay, weight_decay_mask),
        core,
        _trace(name, momentum, 0.0, False) if momentum > 0 else None,
    )


def _adam_family(
    name: str, lr: LearningRate, core: GradientTransformation, hyper: dict, decoupled: bool
) -> Optimizer:
    """Build an Adam-like optimizer: L2 decay before ``core``, or decoupled decay after it."""
    wd = _nonneg(name, "weight_decay", hyper["weight_decay"])
    mask = hyper.get("weight_decay_mask")
    before = _ascent_and_l2(name, hyper["maximize"], 0.0 if decoupled else wd, mask)
    after = _add_decayed_weights(name, wd, mask) if decoupled and wd != 0 else None
    fast = None
    if name in ("adam", "adamw") and not (hyper["maximize"] or hyper["amsgrad"]) and mask is None:

        def fast(sched: Schedule) -> Any:
            return _inplace.adam_step(
                name, sched, hyper["betas"], hyper["eps"], weight_decay=wd, decoupled=decoupled
            )

    return _named(name, {**hyper, "weight_decay": wd}, lr, *before, core, after, fast=fast)


def _adam(name: str, lr: LearningRate, betas: Any, eps: float, decoupled: bool, **hyper: Any):
    core = _scale_by_adam(name, betas, eps, hyper["amsgrad"])
    hyper = dict(lr=lr, betas=_betas(name, betas), eps=float(eps), **hyper)
    return _adam_family(name, lr, core, hyper, decoupled)


def adam(
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``Adam`` (L2 ``weight_decay`` added to the gradient)."""
    return _adam("adam", lr, betas, eps, False, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, **_with_mask({}, weight_decay_mask))  # fmt: skip


def adamw(
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``AdamW``: params shrink by ``1 - lr * weight_decay`` beside the Adam step."""
    return _adam("adamw", lr, betas, eps, True, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, **_with_mask({}, weight_decay_mask))  # fmt: skip


def adamax(
    lr: LearningRate = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``Adamax``: ``u = max(beta2 * u, |g| + eps)``."""
    name = "adamax"
    core = _scale_by_adamax(name, betas, eps)
    hyper = dict(lr=lr, betas=_betas(name, betas), eps=float(eps), weight_decay=weight_decay,
                 maximize=maximize)  # fmt: skip
    return _adam_family(name, lr, core, _with_mask(hyper, weight_decay_mask), False)


def nadam(  # noqa: PLR0917 - torch.optim's positional order, kept for callers
    lr: LearningRate = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build torch ``NAdam``: ``mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))``."""
    name = "nadam"
    core = _scale_by_nadam(name, betas, eps, momentum_decay)
    hyper = dict(lr=lr, betas=_betas(name, betas), eps=float(eps), weight_decay=weight_decay,
                 momentum_decay=float(momentum_decay),
                 decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)  # fmt: skip
    hyper = _with_mask(hyper, weight_decay_mask)
    return _adam_family(name, lr, core, hyper, decoupled_weight_decay)


def lion(
    lr: LearningRate = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0,
    maximize: bool = False,
    *,
    weight_decay_mask: Mask | None = None,
) -> Optimizer:
    """Build Lion (Chen et al. 2023): ``p -= lr * (sign(b1 m + (1 - b1) g) + wd * p)``.

    ``m = b2 m + (1 - b2) g`` afterwards; weight decay is decoupled, as in optax and
    lion-pytorch (whose defaults these are). Use a 3-10x smaller ``lr`` than for AdamW.
    """
    name = "lion"
    core = _scale_by_lion(name, betas)
    hyper = dict(lr=lr, betas=_betas(name, betas), weight_decay=weight_decay, maximize=maximize)
    return _adam_family(name, lr, core, _with_mask(hyper, weight_decay_mask), True)


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
    "lion": lion,
}


def get(name: str, **kwargs: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` (case-insensitive) with ``kwargs``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)
