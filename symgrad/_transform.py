"""Gradient transformations (optax style) that :mod:`symgrad.optim` composes into optimizers.

A :class:`GradientTransformation` is a pair of pure functions: ``init(params) -> state`` and
``update(updates, state, params) -> (updates, new_state)``. It returns *updates*, not params;
:func:`apply_updates` adds them. States are NamedTuples, so they can be inspected, pickled
and resumed. Pieces compose with :func:`chain`; the public names are re-exported by
:mod:`symgrad.optim`. The per-leaf rules keep torch.optim's rounding (``lerp`` included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any, NamedTuple

import numpy as np

from symgrad import _xp, tree
from symgrad.schedules import Schedule, as_schedule

PyTree = Any
LearningRate = float | Callable[[int], float]
Mask = PyTree | Callable[[PyTree], PyTree]


class GradientTransformation(NamedTuple):
    """Hold a transformation's pure ``init(params)`` and ``update(updates, state, params)``."""

    init: Callable[[PyTree], Any]
    update: Callable[..., tuple[PyTree, Any]]


# --------------------------------------------------------------------------- states


class EmptyState(NamedTuple):
    """Hold nothing: the state of a transformation without memory."""


class ScaleByScheduleState(NamedTuple):
    """Hold the number of updates scaled so far: the step the schedule is evaluated at."""

    count: int


class TraceState(NamedTuple):
    """Hold the update count and the momentum buffers of :func:`trace`."""

    count: int
    momentum_buffer: PyTree


class AdagradState(NamedTuple):
    """Hold Adagrad's update count and running sums of squared gradients."""

    count: int
    sum: PyTree


class AdadeltaState(NamedTuple):
    """Hold Adadelta's update count, squared-gradient and squared-delta averages."""

    count: int
    square_avg: PyTree
    acc_delta: PyTree


class RMSpropState(NamedTuple):
    """Hold RMSprop's count, square average and gradient average (``None`` unless centered)."""

    count: int
    square_avg: PyTree
    grad_avg: PyTree


class AdamState(NamedTuple):
    """Hold Adam's count, first and second moments and their running max (amsgrad)."""

    count: int
    exp_avg: PyTree
    exp_avg_sq: PyTree
    max_exp_avg_sq: PyTree  # None unless amsgrad


class AdamaxState(NamedTuple):
    """Hold Adamax's count, first moment and exponentially weighted infinity norm."""

    count: int
    exp_avg: PyTree
    exp_inf: PyTree


class NAdamState(NamedTuple):
    """Hold NAdam's count, running product of momentum coefficients, and both moments."""

    count: int
    mu_product: float
    exp_avg: PyTree
    exp_avg_sq: PyTree


class LionState(NamedTuple):
    """Hold Lion's update count and momentum."""

    count: int
    exp_avg: PyTree


class EmaParamsState(NamedTuple):
    """Hold the update count and ``ema``, the exponential moving average of the params."""

    count: int
    ema: PyTree


# --------------------------------------------------------------------------- validation


def _fail(where: str, name: str, value: Any, rule: str) -> None:
    raise ValueError(f"{where}: invalid {name}={value!r}; {rule}")


def _real(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        _fail(where, name, value, "must be a finite real number")
    return float(value)


def _nonneg(where: str, name: str, value: Any) -> float:
    v = _real(where, name, value)
    if v < 0:
        _fail(where, name, value, "must be >= 0")
    return v


def _unit(where: str, name: str, value: Any, *, closed: bool) -> float:
    v = _real(where, name, value)
    if not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        _fail(where, name, value, "must be in [0, 1]" if closed else "must be in [0, 1)")
    return v


def _betas(where: str, betas: Any) -> tuple[float, float]:
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        _fail(where, "betas", betas, "must be a pair (beta1, beta2)")
    return (
        _unit(where, "betas[0]", betas[0], closed=False),
        _unit(where, "betas[1]", betas[1], closed=False),
    )


def _lr_schedule(where: str, lr: LearningRate) -> Schedule:
    if callable(lr):
        return as_schedule(lr)
    return as_schedule(_nonneg(where, "lr", lr))


def _need_params(where: str, params: PyTree) -> None:
    if params is None:
        raise ValueError(f"{where}: update needs params (call update(updates, state, params))")


# --------------------------------------------------------------------------- leaf helpers


def _full_like(params: PyTree, fill: float) -> PyTree:
    return tree.map(lambda p: _m(p).full_like(tree.as_float_array(p), fill), params)


def _m(x: Any) -> Any:
    """Return the array module of a leaf: numpy, or the Array API namespace of a torch,
    CuPy, JAX, ... array, so every rule below runs in the params' library, out of place."""
    return _xp.module_of(x)


def _copy(x: Any) -> Any:
    """Return a copy of a leaf (numpy or another library's array)."""
    return np.array(x, copy=True) if _m(x) is np else _m(x).asarray(x, copy=True)


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """Compute ``start + weight * (end - start)`` the way torch's CPU ``lerp_`` rounds it.

    One new array: the later operations round exactly as the written expression and work in
    place (augmented assignment rebinds a 0-d leaf's scalar instead)."""
    out = end - start
    if weight < 0.5:
        out *= weight
        out += start
        return out
    out *= 1.0 - weight
    return end - out


def _leafwise(fn: Callable[..., tuple], n_out: int, updates: PyTree, *buffers: PyTree) -> tuple:
    """Run ``fn(u, *buffer_leaves) -> n_out values`` per leaf; return one tree per output.

    A ``None`` buffer gives ``None`` leaves to ``fn``; an output that is ``None`` at every
    leaf comes back as ``None`` (a buffer an option does not use).
    """
    ups, treedef = tree.flatten(updates)
    cols = [
        [None] * len(ups) if b is None else tree.flatten_as(treedef, b, "optimizer state buffer")
        for b in buffers
    ]
    rows = [fn(*xs) for xs in zip(ups, *cols, strict=True)]
    outs = [[row[i] for row in rows] for i in range(n_out)]
    return tuple(
        None if col and all(x is None for x in col) else tree.unflatten(treedef, col)
        for col in outs
    )


# --------------------------------------------------------------------------- stateless pieces


def _stateless(fn: Callable[[PyTree, PyTree], PyTree]) -> GradientTransformation:
    """Build a memoryless transformation from ``fn(updates, params) -> updates``."""

    def update(updates: PyTree, state: EmptyState, params: PyTree = None):
        return fn(updates, params), state

    return GradientTransformation(lambda params: EmptyState(), update)


def identity() -> GradientTransformation:
    """Pass updates through unchanged (a neutral element for :func:`chain`)."""
    return _stateless(lambda updates, params: updates)


def scale(factor: float) -> GradientTransformation:
    """Multiply every update by ``factor`` (``scale(-1.0)`` turns descent into ascent)."""
    factor = _real("scale", "factor", factor)
    return _stateless(lambda updates, params: tree.map(lambda u: factor * u, updates))


def clip(max_delta: float) -> GradientTransformation:
    """Clip every update element to ``[-max_delta, max_delta]`` (clipping by value)."""
    max_delta = _nonneg("clip", "max_delta", max_delta)
    return _stateless(
        lambda updates, params: tree.map(lambda u: _m(u).clip(u, -max_delta, max_delta), updates)
    )


def global_norm(updates: PyTree) -> float:
    """Return the L2 norm of all leaves of ``updates`` taken together."""
    return math.sqrt(math.fsum(float(_m(u).sum(_m(u).square(u))) for u in tree.leaves(updates)))


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescale all updates together so that their global L2 norm is at most ``max_norm``."""
    max_norm = _nonneg("clip_by_global_norm", "max_norm", max_norm)

    def fn(updates: PyTree, params: PyTree) -> PyTree:
        norm = global_norm(updates)
        if norm <= max_norm:
            return updates
        factor = max_norm / norm
        return tree.map(lambda u: u * factor, updates)

    return _stateless(fn)


def _mask_flags(where: str, mask: Mask | None, params: PyTree) -> list[bool]:
    """Return one bool per leaf of ``params``: the mask's leaves (or all True without a mask)."""
    leaves, treedef = tree.flatten(params)
    if mask is None:
        return [True] * len(leaves)
    chosen = mask(params) if callable(mask) else mask
    return [bool(m) for m in tree.flatten_as(treedef, chosen, f"{where} mask")]


def _add_decayed_weights(where: str, weight_decay: float, mask: Mask | None):
    wd = _nonneg(where, "weight_decay", weight_decay)

    def fn(updates: PyTree, params: PyTree) -> PyTree:
        _need_params(where, params)
        ups, treedef = tree.flatten(updates)
        ps = tree.flatten_as(treedef, params, "params")
        flags = _mask_flags(where, mask, params)
        out = [u + wd * p if f else u for u, p, f in zip(ups, ps, flags, strict=True)]
        return tree.unflatten(treedef, out)

    return _stateless(fn)


def add_decayed_weights(weight_decay: float, mask: Mask | None = None) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates where ``mask`` is True.

    ``mask`` is a pytree of bools shaped like params, or a callable ``params -> mask``
    (e.g. ``lambda p: tree.map(lambda x: x.ndim > 1, p)`` to leave biases undecayed).
    Before the scale-by step it is L2 regularisation (torch's ``weight_decay``); after it,
    before :func:`scale_by_learning_rate`, it is AdamW's decoupled decay.
    """
    return _add_decayed_weights("add_decayed_weights", weight_decay, mask)


# --------------------------------------------------------------------------- learning rate


def _scale_by_lr(where: str, schedule: Schedule) -> GradientTransformation:
    def update(updates: PyTree, state: ScaleByScheduleState, params: PyTree = None):
        lr = schedule(state.count)
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(
                f"{where}: learning-rate schedule gave lr={lr!r} at step {state.count}; "
                "must be finite and >= 0"
            )
        return tree.map(lambda u: -lr * u, updates), ScaleByScheduleState(state.count + 1)

    return GradientTransformation(lambda params: ScaleByScheduleState(0), update)


def scale_by_learning_rate(learning_rate: LearningRate) -> GradientTransformation:
    """Multiply updates by ``-lr``, ``lr`` a number or a schedule ``step -> lr`` (0-based)."""
    where = "scale_by_learning_rate"
    return _scale_by_lr(where, _lr_schedule(where, learning_rate))


# --------------------------------------------------------------------------- stateful pieces


def _buffered(
    make_state: Callable[..., Any],
    fills: tuple[float | None, ...],
    leaf: Callable[..., tuple],
    coefs: Callable[[int, Any], tuple[tuple, tuple]] = lambda step, state: ((), ()),
    scalars: tuple = (),
) -> GradientTransformation:
    """Build a transformation whose state is ``(count, *scalars, *buffers)``.

    ``fills`` gives each buffer's initial value (``None``: buffer unused). Each update calls
    ``coefs(step, state) -> (leaf_args, new_scalars)`` once, with ``step = count + 1``, then
    ``leaf(u, *buffer_leaves, *leaf_args) -> (new_u, *new_buffer_leaves)`` per leaf.
    """

    def init(params: PyTree) -> Any:
        bufs = (None if f is None else _full_like(params, f) for f in fills)
        return make_state(0, *scalars, *bufs)

    def update(updates: PyTree, state: Any, params: PyTree = None):
        step = state.count + 1
        args, new_scalars = coefs(step, state)
        old = state[len(state) - len(fills) :]
        out, *bufs = _leafwise(lambda u, *xs: leaf(u, *xs, *args), 1 + len(fills), updates, *old)
        return out, make_state(step, *new_scalars, *bufs)

    return GradientTransformation(init, update)


def _trace(where: str, decay: float, dampening: float, nesterov: bool) -> GradientTransformation:
    decay = _nonneg(where, "momentum", decay)
    dampening = _real(where, "dampening", dampening)

    def leaf(g: np.ndarray, buf: np.ndarray, first: bool) -> tuple:
        buf = _copy(g) if first else decay * buf + (1 - dampening) * g
        return (g + decay * buf if nesterov else buf), buf

    return _buffered(TraceState, (0.0,), leaf, lambda step, state: ((step == 1,), ()))


def trace(decay: float, dampening: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """Keep torch's momentum buffer ``b = decay * b + (1 - dampening) * g`` (``b = g`` at first).

    Returns ``b``, or ``g + decay * b`` with ``nesterov``.
    """
    return _trace("trace", decay, dampening, nesterov)


def _scale_by_adagrad(where: str, lr_decay: float, initial: float, eps: float):
    lr_decay = _nonneg(where, "lr_decay", lr_decay)
    initial = _nonneg(where, "initial_accumulator_value", initial)
    eps = _nonneg(where, "eps", eps)

    def leaf(g: np.ndarray, s: np.ndarray, decay: float) -> tuple:
        s = s + g * g
        return g / (_m(s).sqrt(s) + eps) / decay, s

    def coefs(step: int, state: AdagradState) -> tuple:
        return (1 + (step - 1) * lr_decay,), ()

    return _buffered(AdagradState, (initial,), leaf, coefs)


def scale_by_adagrad(
    lr_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> GradientTransformation:
    """Scale by torch Adagrad's ``g / (sqrt(sum g^2) + eps) / (1 + (t - 1) * lr_decay)``."""
    return _scale_by_adagrad("scale_by_adagrad", lr_decay, initial_accumulator_value, eps)


def _scale_by_adadelta(where: str, rho: float, eps: float) -> GradientTransformation:
    rho = _unit(where, "rho", rho, closed=True)
    eps = _nonneg(where, "eps", eps)

    def leaf(g: np.ndarray, sq: np.ndarray, acc: np.ndarray) -> tuple:
        sq = rho * sq + (1 - rho) * (g * g)
        sqrt = _m(g).sqrt
        delta = sqrt(acc + eps) / sqrt(sq + eps) * g
        return delta, sq, rho * acc + (1 - rho) * (delta * delta)

    return _buffered(AdadeltaState, (0.0, 0.0), leaf)


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Scale by torch Adadelta's ``sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g``."""
    return _scale_by_adadelta("scale_by_adadelta", rho, eps)


def _scale_by_rmsprop(where: str, alpha: float, eps: float, centered: bool):
    alpha = _unit(where, "alpha", alpha, closed=True)
    eps = _nonneg(where, "eps", eps)

    def leaf(g: np.ndarray, sq: np.ndarray, ga: np.ndarray | None) -> tuple:
        sq = alpha * sq + (1 - alpha) * (g * g)
        if centered:
            ga = _lerp(ga, g, 1 - alpha)
            return g / (_m(sq).sqrt(sq - ga * ga) + eps), sq, ga
        return g / (_m(sq).sqrt(sq) + eps), sq, None

    return _buffered(RMSpropState, (0.0, 0.0 if centered else None), leaf)


def scale_by_rmsprop(
    alpha: float = 0.99, eps: float = 1e-8, centered: bool = False
) -> GradientTransformation:
    """Scale by torch RMSprop's ``g / (sqrt(square_avg [- grad_avg^2]) + eps)``."""
    return _scale_by_rmsprop("scale_by_rmsprop", alpha, eps, centered)


def _scale_by_adam(where: str, betas: Any, eps: float, amsgrad: bool) -> GradientTransformation:
    b1, b2 = _betas(where, betas)
    eps = _nonneg(where, "eps", eps)

    def leaf(g: np.ndarray, m: np.ndarray, v: np.ndarray, vmax: Any, bc1: float, bc2: float):
        m = _lerp(m, g, 1 - b1)
        # b2 v + (1 - b2) g^2 and the bias-corrected step, rounded as written, in few arrays
        square = g * g
        square *= 1 - b2
        v = b2 * v
        v += square
        xp = _m(v)
        if amsgrad:
            vmax = xp.maximum(vmax, v)
        denom = xp.sqrt(vmax if amsgrad else v)
        denom /= bc2
        denom += eps
        step = m / denom
        step /= bc1
        return step, m, v, vmax

    def coefs(step: int, state: AdamState) -> tuple:
        return (1 - b1**step, (1 - b2**step) ** 0.5), ()

    return _buffered(AdamState, (0.0, 0.0, 0.0 if amsgrad else None), leaf, coefs)


def scale_by_adam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, amsgrad: bool = False
) -> GradientTransformation:
    """Scale by torch Adam's bias-corrected ``m_hat / (sqrt(v_hat) + eps)`` (no lr)."""
    return _scale_by_adam("scale_by_adam", betas, eps, amsgrad)


def _scale_by_adamax(where: str, betas: Any, eps: float) -> GradientTransformation:
    b1, b2 = _betas(where, betas)
    eps = _nonneg(where, "eps", eps)

    def leaf(g: np.ndarray, m: np.ndarray, u: np.ndarray, bc1: float) -> tuple:
        m = _lerp(m, g, 1 - b1)
        u = _m(g).maximum(b2 * u, _m(g).abs(g) + eps)
        return (m / u) / bc1, m, u

    return _buffered(AdamaxState, (0.0, 0.0), leaf, lambda step, state: ((1 - b1**step,), ()))


def scale_by_adamax(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> GradientTransformation:
    """Scale by torch Adamax's ``m / u / (1 - beta1^t)`` with ``u = max(beta2 u, |g| + eps)``."""
    return _scale_by_adamax("scale_by_adamax", betas, eps)


def _scale_by_nadam(where: str, betas: Any, eps: float, momentum_decay: float):
    b1, b2 = _betas(where, betas)
    eps = _nonneg(where, "eps", eps)
    psi = _nonneg(where, "momentum_decay", momentum_decay)

    def leaf(g: np.ndarray, m: np.ndarray, v: np.ndarray, bc2: float, cg: float, cm: float):
        m = _lerp(m, g, 1 - b1)
        v = b2 * v + (1 - b2) * (g * g)
        denom = _m(v).sqrt(v / bc2) + eps
        return cg * (g / denom) + cm * (m / denom), m, v

    def coefs(step: int, state: NAdamState) -> tuple:
        mu = b1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = b1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        product = state.mu_product * mu
        cg = (1.0 - mu) / (1.0 - product)
        cm = mu_next / (1.0 - product * mu_next)
        return (1 - b2**step, cg, cm), (product,)

    return _buffered(NAdamState, (0.0, 0.0), leaf, coefs, scalars=(1.0,))


def scale_by_nadam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, momentum_decay: float = 4e-3
) -> GradientTransformation:
    """Scale by torch NAdam's momentum-decayed Nesterov moments (no lr)."""
    return _scale_by_nadam("scale_by_nadam", betas, eps, momentum_decay)


def _scale_by_lion(where: str, betas: Any) -> GradientTransformation:
    b1, b2 = _betas(where, betas)

    def leaf(g: np.ndarray, m: np.ndarray) -> tuple:
        return _m(g).sign(b1 * m + (1 - b1) * g), b2 * m + (1 - b2) * g

    return _buffered(LionState, (0.0,), leaf)


def scale_by_lion(betas: tuple[float, float] = (0.9, 0.99)) -> GradientTransformation:
    """Scale by Lion's ``sign(beta1 * m + (1 - beta1) * g)``; then ``m = beta2 m + (1 - beta2) g``."""
    return _scale_by_lion("scale_by_lion", betas)


def ema_params(decay: float) -> GradientTransformation:
    """Track ``ema = decay * ema + (1 - decay) * new_params`` (``ema`` starts at the params).

    Put it last in a chain: it sees the final updates and passes them on unchanged. Read the
    average with ``find_state(state, EmaParamsState).ema``.
    """
    decay = _unit("ema_params", "decay", decay, closed=True)

    def update(updates: PyTree, state: EmaParamsState, params: PyTree = None):
        _need_params("ema_params", params)
        new = apply_updates(params, updates)
        ema = tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema, new)
        return updates, EmaParamsState(state.count + 1, ema)

    def init(params: PyTree) -> EmaParamsState:
        return EmaParamsState(0, tree.map(lambda p: _copy(tree.as_float_array(p)), params))

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------- combining


def chain(*transforms: Any) -> GradientTransformation:
    """Compose transformations left to right; the state is the tuple of their states.

    Each argument is a :class:`GradientTransformation` or a named optimizer (its
    ``transform`` is used), so ``chain(clip_by_global_norm(1.0), adam(1e-3))`` clips the
    gradients Adam sees.
    """
    parts = tuple(as_transform(t) for t in transforms)

    def init(params: PyTree) -> tuple:
        return tuple(t.init(params) for t in parts)

    def update(updates: PyTree, state: tuple, params: PyTree = None):
        new_state = []
        for t, s in zip(parts, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def as_transform(obj: Any) -> GradientTransformation:
    """Return ``obj`` as a GradientTransformation (a named optimizer gives its ``transform``)."""
    if isinstance(obj, GradientTransformation):
        return obj
    inner = getattr(obj, "transform", None)
    if isinstance(inner, GradientTransformation):
        return inner
    name = getattr(obj, "name", type(obj).__name__)
    raise TypeError(f"chain: {name!r} is not a gradient transformation and cannot be chained")


def apply_updates(params: PyTree, updates: PyTree) -> PyTree:
    """Return ``params + updates`` leaf by leaf, keeping each float param's dtype."""

    def add(p: Any, u: Any) -> np.ndarray:
        p = tree.as_float_array(p)
        if _xp.is_foreign(p):  # another library's array: the sum, cast back out of place
            out = p + u
            return out if out.dtype == p.dtype else _m(p).astype(out, p.dtype)
        return np.asarray(p + u, dtype=p.dtype)

    return tree.map(add, params, updates)


def find_state(state: Any, kind: type) -> Any:
    """Return the first sub-state of type ``kind`` inside a (chained) optimizer state."""
    if isinstance(state, kind):
        return state
    if isinstance(state, tuple):
        for child in state:
            try:
                return find_state(child, kind)
            except LookupError:
                continue
    raise LookupError(f"no {kind.__name__} in this optimizer state")
