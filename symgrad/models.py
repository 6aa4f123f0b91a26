"""Linear, logistic, softmax and MLP models whose objectives backpropagate through generated kernels.

Every model is a small configuration object with three pure functions of a parameter dict::

    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    params = model.init(0, n_features=X.shape[1])
    loss, grads = model.objective(params, X, y)     # what symgrad.fit minimises
    labels = model.predict(params, X)

Losses, activations and regularizers are given as a built-in name, a user's own
:class:`~symgrad.compiler.spec.Spec` (compiled on first use and cached), or a pair
``(name_or_spec, {hyper-parameter: value})``. Losses are means over samples and regularizers
are added once per weight matrix (never to biases), so the objective is
``mean loss + sum over W of R(W)``; with ``("l2", {"lam": lam})`` that is
``mean loss + lam / 2 * ||W||^2``. ``objective``, ``hessian``, ``hvp`` and ``hvp_operator`` take
``sample_weight=`` (one per sample): the mean becomes the weighted mean
``sum_i w_i l_i / sum_i w_i`` (the loss kernels' ``weight=``). Mappings to scikit-learn
(``n`` samples):

* ``Ridge(alpha)`` minimises ``||y - Xw - b||^2 + alpha ||w||^2``; divided by ``n`` that is
  ``mse + (alpha / n) ||w||^2``, so ``lam = 2 * alpha / n``.
* ``LogisticRegression(C)`` minimises ``C * sum(logloss) + 1/2 ||w||^2``; divided by ``C n``
  that is ``mean logloss + 1 / (2 C n) ||w||^2``, so ``lam = 1 / (C * n)``.

Classifiers take integer labels (one-hot encoded internally) or target rows; the output
activation is fused with the loss (``binary_cross_entropy_with_logits``,
``softmax_cross_entropy``, or :func:`symgrad.compose` for ``MLP(output=...)``), so the
gradient at the logits is ``p - y``, finite at any logit.

Second order, exact and from the emitted ``_hess``/``_hvp`` kernels: ``hessian(params, X, y)``
is the dense Hessian over :func:`flatten`'s order (closed form for the linear models, e.g.
``[X 1].T diag(p (1 - p) / n) [X 1] + lam I_W`` for logistic regression);
``hvp(params, X, y, v)`` and ``hvp_operator(params, X, y)`` give Hessian-vector products
(Pearlmutter's R-operator for the MLP). :mod:`symgrad.newton` fits with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

import symgrad.activations as _activations
from symgrad import _xp
from symgrad.kernels import KernelInfo, builtins, compiled, compiled_xp, is_spec, resolve, xp_module
from symgrad.tree import ravel as flatten
from symgrad.tree import unravel as unflatten

__all__ = [
    "MLP",
    "LinearRegression",
    "LogisticRegression",
    "ModelFacts",
    "SoftmaxRegression",
    "flatten",
    "kernel_spec",
    "unflatten",
]

Params = dict[str, np.ndarray]
HVP = Callable[[Params], Params]
#: A built-in name, a user's ``symgrad.Spec``, or either paired with hyper-parameter values.
KernelChoice = str | Any | tuple[str | Any, Mapping[str, float]]

#: Hidden activations that get He initialisation (LeCun for selu, Glorot for the rest).
_HE_INIT = frozenset({"relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "mish"})
#: Elements per block of rows when a Hessian is assembled from per-sample products (2**21
#: doubles, 16 MB), so memory stays bounded for many samples.
_ROW_BLOCK = 1 << 21
#: Elements of the row-block buffer for a weighted Gram matrix (2**19 doubles, 4 MB).
_GRAM_BLOCK = 1 << 19


class ModelFacts(NamedTuple):
    """What the solver policy (:func:`symgrad.solvers.choose`) reads from a model: its loss
    and regularizer kernels' facts, and whether its outputs are linear in its parameters
    (then the objective is convex when both kernels are)."""

    loss: KernelInfo
    regularizer: KernelInfo | None
    linear: bool


@dataclass(frozen=True)
class _Kernel:
    """Hold a resolved kernel: its facts, its functions with hyper-parameters bound, its name."""

    spec: KernelInfo
    fn: Callable[..., Any]
    grad: Callable[..., Any] | None = None
    builtin: bool = False
    hyper: dict[str, float] = field(default_factory=dict)
    #: Second derivative: ``name_hess`` (element-wise), or ``name_hvp`` for class-axis losses.
    hess: Callable[..., Any] | None = None
    #: Where the kernel comes from, to find its Array API twin: ``(role, None)`` built in,
    #: ``(role, (spec,))`` a user's spec, ``("compose", loss, act)`` a fused output + loss.
    origin: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        """Return the kernel's name."""
        return self.spec.name


def kernel_spec(role: str, choice: KernelChoice) -> tuple[KernelInfo, dict[str, float], Any]:
    """Return (kernel facts, hyper-parameters, the user's spec or None) for a kernel choice."""
    spec, _, hyper, user = resolve(role, choice)
    return spec, hyper, user


def _resolve_activation(choice: KernelChoice, *, elementwise: bool = True) -> _Kernel:
    """Resolve an activation; with ``elementwise`` reject class-axis ones (they have no f')."""
    spec, module, hyper, user = resolve("activation", choice)
    if elementwise and spec.class_axis:
        raise ValueError(
            f"activation {spec.name!r} works over the class axis; hidden layers need an "
            "element-wise activation"
        )
    grad = None if spec.class_axis else partial(getattr(module, f"{spec.name}_grad"), **hyper)
    hess = None if spec.class_axis else _optional(module, f"{spec.name}_hess", hyper)
    fn = partial(getattr(module, spec.name), **hyper)
    return _Kernel(spec, fn, grad, user is None, hyper, hess, _origin("activation", user))


def _origin(role: str, user: Any) -> tuple[Any, ...]:
    """Return a kernel's origin (see ``_Kernel.origin``): built in, or the user's spec."""
    return (role, None if user is None else (user,))


def _optional(module: ModuleType, name: str, hyper: Mapping[str, float]) -> Callable | None:
    """Return ``module.name`` with ``hyper`` bound, or None if the module does not emit it."""
    fn = getattr(module, name, None)
    return None if fn is None else partial(fn, **hyper)


def _resolve_regularizer(choice: KernelChoice | None) -> _Kernel | None:
    """Resolve a regularizer (``None`` for none)."""
    if choice is None:
        return None
    spec, module, hyper, user = resolve("regularizer", choice)
    fn = partial(getattr(module, spec.name), **hyper)
    grad = partial(getattr(module, f"{spec.name}_grad"), **hyper)
    hess = _optional(module, f"{spec.name}_hess", hyper)
    return _Kernel(spec, fn, grad, user is None, hyper, hess, _origin("regularizer", user))


def _resolve_loss(choice: KernelChoice, output: KernelChoice | None = None) -> _Kernel:
    """Resolve a loss to its ``value_and_grad``; with ``output``, fuse it via compose first."""
    spec, module, hyper, user = resolve("loss", choice)
    builtin, origin = user is None, _origin("loss", user)
    if len(spec.inputs) != 2:
        raise ValueError(
            f"loss {spec.name!r} takes {len(spec.inputs)} array input(s); "
            "a model's loss takes exactly two, (yhat, y)"
        )
    if output is not None:
        act, _, act_hyper, act_user = resolve("activation", output)
        key = ("compose", user or spec.name, act_user or act.name)
        spec, module, names = _composed(*key[1:])
        hyper |= {names[k]: v for k, v in act_hyper.items()}
        builtin, origin = False, key
    fn = partial(getattr(module, f"{spec.name}_value_and_grad"), **hyper)
    second = f"{spec.name}_hvp" if spec.class_axis else f"{spec.name}_hess"
    return _Kernel(spec, fn, None, builtin, hyper, _optional(module, second, hyper), origin)


def _compose_spec(loss: Any, act: Any) -> Any:
    """Return the spec of ``loss(act(z))`` (built-in names or specs)."""
    from symgrad.compiler.spec import compose
    from symgrad.library import activations, losses

    def spec_of(choice: Any, library: ModuleType) -> Any:
        return getattr(library, choice) if isinstance(choice, str) else choice

    return compose(spec_of(loss, losses), spec_of(act, activations))


def _composed(loss: Any, act: Any) -> tuple[KernelInfo, ModuleType, dict[str, str]]:
    """Compile ``loss(act(z))`` (built-in names or specs); map act's hyper-parameter names."""
    info, module = compiled(("compose", loss, act), partial(_compose_spec, loss, act))
    act_info = builtins("activation").get(act) if isinstance(act, str) else None
    act_names = list(act_info.hyper_defaults) if act_info else [s.name for s, _ in act.hyper]
    # compose() appends the activation's hyper-parameters, renaming those that clash
    renamed = list(info.hyper_defaults)[len(info.hyper_defaults) - len(act_names) :]
    return info, module, dict(zip(act_names, renamed, strict=True))


def _init_dtype(dtype: Any) -> np.dtype:
    """Return ``dtype`` as a numpy float dtype (float32 or float64), or raise ValueError."""
    out = np.dtype(dtype)
    if out not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {out}")
    return out


def _params_dtype(params: Any) -> np.dtype:
    """Return float32 when every parameter array is float32 (the model then computes in
    float32, see ``init(dtype=)``), else float64."""
    values = params.values() if isinstance(params, Mapping) else ()
    dtypes = {getattr(v, "dtype", None) for v in values}
    return np.dtype(np.float32) if dtypes == {np.dtype(np.float32)} else np.dtype(np.float64)


def _matrix(X: Any, n_features: int, dtype: Any = float) -> np.ndarray:
    """Return X as a 2-D float array with ``n_features`` columns, or raise ValueError."""
    X = np.asarray(X, dtype=dtype)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the parameters expect {n_features}")
    return X


def _param(params: Mapping[str, Any], key: str, shape: tuple[int, ...] | None = None) -> Any:
    """Return ``params[key]``, checking it exists (and its shape, when given)."""
    try:
        value = params[key]
    except (KeyError, TypeError):
        raise ValueError(f"params has no {key!r}; got keys {sorted(params)}") from None
    if shape is not None and np.shape(value) != shape:
        raise ValueError(f"params[{key!r}] has shape {np.shape(value)}, expected {shape}")
    return value


def _one_hot(y: Any, n: int, n_classes: int, dtype: Any = float) -> np.ndarray:
    """Return integer labels one-hot encoded, or (n, n_classes) target rows as given."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape != (n, n_classes):
            raise ValueError(f"target rows y have shape {y.shape}, expected {(n, n_classes)}")
        return y.astype(dtype, copy=False)
    if y.shape != (n,):
        raise ValueError(
            f"y must be {n} integer labels or ({n}, {n_classes}) target rows, got shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.number) and np.all(y == np.round(y))):
            raise ValueError("class labels must be integers 0 .. n_classes - 1")
        y = y.astype(np.intp)
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"class labels must lie in [0, {n_classes}), got values from {y.min()} to {y.max()}"
        )
    Y = np.zeros((n, n_classes), dtype)
    Y[np.arange(n), y] = 1.0
    return Y


def _check_shape(y: Any, shape: tuple[int, ...], dtype: Any = float) -> np.ndarray:
    """Return y as floats, raising ValueError unless it has ``shape`` (no silent broadcasting)."""
    y = np.asarray(y, dtype=dtype)
    if y.shape != shape:
        raise ValueError(f"y has shape {y.shape}, expected {shape}")
    return y


def _penalize(reg: _Kernel | None, weights: Sequence[np.ndarray], grads: Sequence[np.ndarray]):
    """Return the regularizer summed over ``weights``, adding its gradient into ``grads``."""
    if reg is None:
        return 0.0
    total = 0.0
    for W, g in zip(weights, grads, strict=True):
        total += float(reg.fn(W))
        g += reg.grad(W)
    return total


# --------------------------------------------------------------------------- Array API path
# When X or a parameter is a torch, CuPy, JAX or other Array API array (not numpy), the
# objectives run these: the same arithmetic in that array's namespace with the
# generated/*_xp.py kernels (a user's spec compiled with target="array-api"), out of place.

#: (origin, kernel name, suffix, hyper-parameters) -> the Array API function, bound.
_XP_FNS: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _xp_fn(kernel: _Kernel, suffix: str = "") -> Callable[..., Any]:
    """Return the Array API twin of ``kernel``'s function ``name + suffix``, hyper bound."""
    key = (kernel.origin, kernel.name, suffix, tuple(sorted(kernel.hyper.items())))
    fn = _XP_FNS.get(key)
    if fn is None:
        origin = kernel.origin
        if origin[0] == "compose":
            module = compiled_xp(origin, partial(_compose_spec, *origin[1:]))
        else:
            module = xp_module(origin)
        fn = _XP_FNS[key] = partial(getattr(module, kernel.name + suffix), **kernel.hyper)
    return fn


def _foreign(params: Any, X: Any) -> Any:
    """Return the first non-numpy array among ``X`` and the params (None: the numpy path)."""
    if _xp.is_foreign(X):
        return X
    return _xp.first_foreign(params.values()) if isinstance(params, Mapping) else None


class _XpPoint:
    """Hold the namespace, a reference array (device) and the dtype of an Array API call.

    The dtype follows ``_params_dtype``: float32 when every parameter is float32.
    """

    def __init__(self, ref: Any, params: Mapping[str, Any]) -> None:
        self.ref, self.xp = ref, _xp.namespace(ref)
        f32 = [v for v in params.values() if _is_float32(v)]
        self.dtype = self.xp.float32 if params and len(f32) == len(params) else self.xp.float64

    def array(self, a: Any) -> Any:
        """Return ``a`` in this namespace, on this device, in this dtype."""
        return _xp.like(a, self.ref, self.dtype)

    def matrix(self, X: Any, n_features: int) -> Any:
        """Return X as a 2-D array with ``n_features`` columns, or raise ValueError."""
        X = self.array(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
        if X.shape[1] != n_features:
            raise ValueError(f"X has {X.shape[1]} features but the parameters expect {n_features}")
        return X

    def shaped(self, y: Any, shape: tuple[int, ...]) -> Any:
        """Return y as floats, raising ValueError unless it has ``shape``."""
        y = self.array(y)
        if tuple(y.shape) != tuple(shape):
            raise ValueError(f"y has shape {tuple(y.shape)}, expected {tuple(shape)}")
        return y

    def one_hot(self, y: Any, n: int, n_classes: int) -> Any:
        """Return integer labels one-hot encoded, or (n, n_classes) target rows as given."""
        xp = self.xp
        y = _xp.like(y, self.ref)
        if y.ndim == 2:
            return self.shaped(y, (n, n_classes))
        if tuple(y.shape) != (n,):
            raise ValueError(
                f"y must be {n} integer labels or ({n}, {n_classes}) target rows, "
                f"got shape {tuple(y.shape)}"
            )
        if not xp.isdtype(y.dtype, "integral"):
            if not xp.isdtype(y.dtype, "real floating") or not bool(xp.all(y == xp.round(y))):
                raise ValueError("class labels must be integers 0 .. n_classes - 1")
            y = xp.astype(y, xp.int64)
        if n and bool(xp.any((y < 0) | (y >= n_classes))):
            raise ValueError(f"class labels must lie in [0, {n_classes})")
        classes = xp.arange(n_classes, dtype=y.dtype, device=_xp.device(y))
        return xp.astype(xp.reshape(y, (n, 1)) == xp.reshape(classes, (1, n_classes)), self.dtype)

    def weighting(self, loss: _Kernel, z: Any, sample_weight: Any, count: Any) -> dict[str, Any]:
        """Return the loss kernels' ``weight=`` and ``count=`` keywords (see ``_weighting``)."""
        kw: dict[str, Any] = {}
        if count is not None:
            wide = not (loss.spec.class_axis or z.ndim == 1)
            kw["count"] = count * int(np.prod(tuple(z.shape[1:]))) if wide else count
        if sample_weight is None:
            return kw
        w = self.array(sample_weight)
        if tuple(w.shape) != tuple(z.shape[:1]):
            raise ValueError(
                f"sample_weight has shape {tuple(w.shape)}, expected ({z.shape[0]},), one per sample"
            )
        narrow = z.ndim == 1 or loss.spec.class_axis
        return kw | {"weight": w if narrow else self.xp.reshape(w, (-1, 1))}

    def penalize(self, reg: _Kernel | None, loss: Any, weights: Mapping[str, Any], grads: dict):
        """Return ``loss`` plus the regularizer on ``weights`` (by key), adding its gradient
        into ``grads`` under the same keys (out of place)."""
        if reg is None:
            return loss
        value, grad = _xp_fn(reg), _xp_fn(reg, "_grad")
        for key, W in weights.items():
            loss = loss + value(W)
            grads[key] = grads[key] + grad(W)
        return loss


def _activate(kernel: _Kernel | str, z: Any) -> Any:
    """Apply an activation (a resolved kernel, or a built-in name) to numpy or Array API ``z``."""
    if not _xp.is_foreign(z):
        return getattr(_activations, kernel)(z) if isinstance(kernel, str) else kernel.fn(z)
    if isinstance(kernel, str):
        return getattr(xp_module(("activation", None)), kernel)(z)
    return _xp_fn(kernel)(z)


def _argmax(z: Any) -> Any:
    """Return the index of each row's largest value (numpy or Array API)."""
    return np.argmax(z, axis=1) if not _xp.is_foreign(z) else _xp.namespace(z).argmax(z, axis=1)


def _as_labels(mask: Any) -> Any:
    """Return a boolean array as integer 0/1 labels (numpy ``int``, or the library's int64)."""
    if not _xp.is_foreign(mask):
        return mask.astype(int)
    xp = _xp.namespace(mask)
    return xp.astype(mask, xp.int64)


def _is_float32(v: Any) -> bool:
    dtype = getattr(v, "dtype", None)
    if _xp.is_foreign(v):
        return dtype == _xp.namespace(v).float32
    return dtype == np.float32


def _init_like(params: Params, like: Any) -> Params:
    """Return ``params`` as arrays of ``like``'s namespace and device (numpy: unchanged)."""
    if like is None or not _xp.is_foreign(like):
        return params
    return {key: _xp.like(value, like) for key, value in params.items()}


def _like_dtype(like: Any, dtype: Any) -> Any:
    """Return ``like``'s dtype when it is float32 or float64, else ``dtype``."""
    if like is None:
        return dtype
    if _xp.is_foreign(like):
        xp = _xp.namespace(like)
        found = np.float32 if like.dtype == xp.float32 else None
        found = np.float64 if like.dtype == xp.float64 else found
    else:
        found = np.asarray(like).dtype
    return found if found in (np.float32, np.float64) else dtype


# --------------------------------------------------------------------------- second order


def _second(kernel: _Kernel) -> Callable[..., Any]:
    """Return the kernel's second-derivative function, or raise if it has none."""
    if kernel.hess is None:
        raise ValueError(f"{kernel.spec.role} {kernel.name!r} has no emitted second derivative")
    return kernel.hess


def _weighting(
    loss: _Kernel, z: np.ndarray, sample_weight: Any, count: float | None = None
) -> dict[str, Any]:
    """Return the loss kernels' ``weight=`` (per-sample weights) and ``count=`` keywords.

    The loss becomes the weighted mean ``sum_i w_i l_i / sum_i w_i`` (the kernels' ``weight=``),
    so integer weights equal repeating samples. Weights are per row of ``z``: a class-axis
    loss takes them as they are, an element-wise loss on ``(n, k)`` outputs once per column.
    ``count`` (the total number of samples, or their total weight) divides the mean instead,
    so a block of rows gives its exact share of the full mean: class-axis losses average over
    samples, element-wise ones over every output element.
    """
    kw: dict[str, Any] = {}
    if count is not None:
        wide = not (loss.spec.class_axis or z.ndim == 1)
        kw["count"] = count * int(np.prod(z.shape[1:])) if wide else count
    if sample_weight is None:
        return kw
    w = np.asarray(sample_weight, dtype=float)
    if w.shape != z.shape[:1]:
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({len(z)},), one per sample")
    return kw | {"weight": w if z.ndim == 1 or loss.spec.class_axis else w[:, None]}


def _loss_hvp(
    loss: _Kernel, z: np.ndarray, Y: np.ndarray, sample_weight: Any = None, count: Any = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``dz -> (d2 mean loss / dz2) dz`` at the outputs ``z`` (per sample, exactly)."""
    kw = _weighting(loss, z, sample_weight, count)
    if loss.spec.class_axis:
        hvp = _second(loss)
        return lambda dz: np.broadcast_to(hvp(z, Y, dz, **kw), z.shape)
    h = _second(loss)(z, Y, **kw)
    return lambda dz: h * dz


def _weighted_gram(X: np.ndarray, h: np.ndarray, intercept: bool) -> np.ndarray:
    """Return ``A.T @ diag(h) @ A`` for ``A = [X, 1]`` (``A = X`` without intercept).

    With ``h >= 0`` it is ``S.T @ S`` for ``S = sqrt(h) * X``, which numpy hands to BLAS syrk
    (half the flops of a general product, exactly symmetric). ``S`` is formed a block of rows
    at a time in one reused buffer of ``_GRAM_BLOCK`` elements, so it is written while in
    cache instead of as a fresh ``n x d`` array (about 20% faster at 2e4 x 128).
    """
    (n, d), psd = X.shape, bool(np.all(h >= 0))
    scale = np.sqrt(h) if psd else h
    rows = max(1, min(n, _GRAM_BLOCK // max(d, 1)))
    buf, part, G = np.empty((rows, d)), np.empty((d, d)), np.zeros((d, d))
    for start in range(0, n, rows):
        Xb = X[start : start + rows]
        S = np.multiply(Xb, scale[start : start + rows, None], out=buf[: len(Xb)])
        G += np.matmul(S.T, S if psd else Xb, out=part)
    if not psd:
        G = 0.5 * (G + G.T)
    if not intercept:
        return G
    H = np.empty((d + 1, d + 1))
    H[:d, :d] = G
    H[:d, d] = H[d, :d] = h @ X
    H[d, d] = np.sum(h)
    return H


def _in_order(H: np.ndarray, blocks: Sequence[tuple[str, int]], params: Mapping) -> np.ndarray:
    """Permute a Hessian laid out as ``blocks`` (key, size) into the order of ``params``' keys."""
    keys = [key for key, _ in blocks]
    order = [key for key in params if key in keys]
    if order == keys:
        return H
    start = dict(zip(keys, np.cumsum([0] + [size for _, size in blocks[:-1]]), strict=True))
    size = dict(blocks)
    idx = np.concatenate([np.arange(start[k], start[k] + size[k]) for k in order])
    return H[np.ix_(idx, idx)]


def _check_direction(v: Mapping, params: Mapping) -> None:
    """Raise ValueError unless ``v`` has every key of ``params`` with the same shape."""
    for key, value in params.items():
        _param(v, key, np.shape(value))


def _choice_repr(choice: KernelChoice | None) -> str:
    if isinstance(choice, tuple):
        return f"({_choice_repr(choice[0])}, {dict(choice[1])!r})"
    return choice.name if is_spec(choice) else repr(choice)


def _hvp(
    self: Any,
    params: Params,
    X: Any,
    y: Any,
    v: Params,
    sample_weight: Any = None,
    *,
    count: float | None = None,
    penalty: bool = True,
) -> Params:
    """Return the objective's exact Hessian at ``params`` times ``v`` (a dict like params).

    ``count`` and ``penalty`` work as in ``objective``; every model shares this through its
    ``hvp_operator``.
    """
    return self.hvp_operator(params, X, y, sample_weight, count=count, penalty=penalty)(v)


class _Linear:
    """Share init, objective and checks among the models ``X @ W + b``."""

    def __init__(self, loss: _Kernel, regularizer: KernelChoice | None, fit_intercept: bool):
        self._loss = loss
        self._reg = _resolve_regularizer(regularizer)
        self._regularizer = regularizer
        self.fit_intercept = bool(fit_intercept)

    def _out_shape(self, n_outputs: int | None) -> tuple[int, ...]:
        return () if n_outputs is None else (n_outputs,)

    def facts(self) -> ModelFacts:
        """Return the loss and regularizer facts; a linear model's outputs are linear."""
        return ModelFacts(self._loss.spec, None if self._reg is None else self._reg.spec, True)

    def init(
        self,
        seed: int = 0,
        *,
        n_features: int,
        n_outputs: int | None = None,
        dtype: Any = np.float64,
        like: Any = None,
    ) -> Params:
        """Return zero weights (and intercept) for ``n_features`` inputs.

        Linear models are convex, so they start at zero like scikit-learn; ``seed`` is
        accepted for the common ``init(seed)`` interface and does not change the result.
        ``dtype=np.float32`` gives float32 params: the model then computes in float32.
        ``like=X`` (any Array API array: torch, CuPy, JAX, ...) gives params of X's library,
        device and float dtype (``dtype`` when X is not float32/float64).
        """
        dtype = _like_dtype(like, dtype)
        if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        if n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        out = self._out_shape(n_outputs)
        params = {"W": np.zeros((int(n_features), *out), _init_dtype(dtype))}
        if self.fit_intercept:
            params["b"] = np.zeros(out, _init_dtype(dtype))
        return _init_like(params, like)

    def decision_function(self, params: Params, X: Any) -> np.ndarray:
        """Return the linear outputs ``X @ W + b`` (logits for the classifiers).

        With torch, CuPy, JAX or other Array API inputs the result is that library's array.
        """
        ref = _foreign(params, X)
        if ref is not None:
            return self._xp_decision(_XpPoint(ref, params), params, X)[1]
        W = np.asarray(_param(params, "W"))
        if W.ndim not in (1, 2):
            raise ValueError(f"params['W'] must be 1-D or 2-D, got shape {W.shape}")
        z = _matrix(X, W.shape[0], _params_dtype(params)) @ W
        if self.fit_intercept:
            z += _param(params, "b", W.shape[1:])
        return z

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _xp_targets(self, at: _XpPoint, y: Any, z: Any) -> Any:
        return at.shaped(y, tuple(z.shape))

    def _xp_decision(self, at: _XpPoint, params: Params, X: Any) -> tuple[Any, Any, Any]:
        """Return (X, z = X @ W + b, W) in the namespace of ``at``."""
        W = at.array(_param(params, "W"))
        if W.ndim not in (1, 2):
            raise ValueError(f"params['W'] must be 1-D or 2-D, got shape {tuple(W.shape)}")
        X = at.matrix(X, W.shape[0])
        z = X @ W
        if self.fit_intercept:
            z = z + at.array(_param(params, "b", tuple(W.shape[1:])))
        return X, z, W

    def _xp_objective(
        self, at: _XpPoint, params: Params, X: Any, y: Any, sample_weight: Any, kw: dict
    ) -> tuple[Any, Params]:
        """Return ``objective`` computed in the namespace of ``at`` (loss a 0-d array)."""
        X, z, W = self._xp_decision(at, params, X)
        weights = at.weighting(self._loss, z, sample_weight, kw["count"])
        loss, dz = _xp_fn(self._loss, "_value_and_grad")(z, self._xp_targets(at, y, z), **weights)
        grads = {"W": X.mT @ dz}
        if self.fit_intercept:
            grads["b"] = at.xp.sum(dz, axis=0)
        if kw["penalty"]:
            loss = at.penalize(self._reg, loss, {"W": W}, grads)
        return loss, {key: grads[key] for key in params if key in grads}

    def objective(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> tuple[float, Params]:
        """Return the mean loss plus the penalty on ``W``, and its gradients by key.

        With ``sample_weight`` (one per sample) the mean is the weighted mean. On a block of
        rows, ``count`` (the total number of samples) makes the result that block's exact
        share of the full mean, and ``penalty=False`` leaves the penalty out, so blocks add
        up (:mod:`symgrad.dask`); the same call on zero rows with ``count`` and
        ``penalty=True`` gives the penalty alone, to add once to the sum.

        When X or a parameter is a torch, CuPy, JAX or other Array API array, the same
        objective runs in that library (the ``generated/*_xp.py`` kernels) and returns its
        arrays: the loss as a 0-d array, the gradients in the params' float dtype.
        """
        ref = _foreign(params, X)
        if ref is not None:
            kw = {"count": count, "penalty": penalty}
            return self._xp_objective(_XpPoint(ref, params), params, X, y, sample_weight, kw)
        X = np.asarray(X, dtype=_params_dtype(params))
        z = self.decision_function(params, X)
        kw = _weighting(self._loss, z, sample_weight, count)
        loss, dz = self._loss.fn(z, self._targets(y, z), **kw)
        grads = {"W": X.T @ dz}
        if self.fit_intercept:
            grads["b"] = np.sum(dz, axis=0)
        if penalty:
            loss += _penalize(self._reg, [np.asarray(params["W"])], [grads["W"]])
        return loss, grads

    # ------------------------------------------------------------------- second order

    def _point(self, params: Params, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=_params_dtype(params))
        z = self.decision_function(params, X)
        return X, z, self._targets(y, z)

    def _blocks(self, W: np.ndarray) -> list[tuple[str, int]]:
        blocks = [("W", W.size)]
        if self.fit_intercept:
            blocks.append(("b", int(np.prod(W.shape[1:]))))
        return blocks

    def hvp_operator(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> HVP:
        """Return ``v -> H v``, the objective's exact Hessian at ``params`` times a direction.

        ``v`` and the result are dicts like ``params``. The loss curvature at ``X @ W + b`` is
        computed once, so each application costs two products with ``X`` (for Newton-CG).
        """
        X, z, Y = self._point(params, X, y)
        W = np.asarray(params["W"], dtype=float)
        curvature = _loss_hvp(self._loss, z, Y, sample_weight, count)
        reg_h = None if self._reg is None or not penalty else _second(self._reg)(W)
        shapes = {"W": W.shape, "b": W.shape[1:]}

        def apply(v: Params) -> Params:
            vW = np.asarray(_param(v, "W", W.shape), dtype=float)
            dz = X @ vW
            if self.fit_intercept:
                dz += _param(v, "b", shapes["b"])
            hz = curvature(dz)
            out = {"W": X.T @ hz}
            if self.fit_intercept:
                out["b"] = np.sum(hz, axis=0)
            if reg_h is not None:
                out["W"] += reg_h * vW
            return {key: out[key] for key in params if key in out}

        return apply

    hvp = _hvp

    def hessian(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> np.ndarray:
        """Return the objective's dense Hessian over ``flatten(params)`` (``W`` raveled, then ``b``).

        With the loss curvature ``h = loss_hess(X @ W + b, y)`` (element-wise, 1/n included)
        it is ``A.T @ diag(h) @ A`` for ``A = [X, 1]``: one BLAS syrk per output column (for
        logistic regression ``h = p (1 - p) / n``). The regularizer's diagonal ``R''(W)`` is
        added on the weights only. A 2-D ``W`` (``n_outputs=k``) gives a block per output.
        """
        X, z, Y = self._point(params, X, y)
        h = _second(self._loss)(z, Y, **_weighting(self._loss, z, sample_weight, count))
        W = np.asarray(params["W"], dtype=float)
        if W.ndim == 1:
            H = _weighted_gram(X, h, self.fit_intercept)
        else:
            m, k = X.shape[1] + self.fit_intercept, W.shape[1]
            H4 = np.zeros((m, k, m, k))  # rows of [W; b] by output column: C order of W, then b
            for j in range(k):
                H4[:, j, :, j] = _weighted_gram(X, h[:, j], self.fit_intercept)
            H = H4.reshape(m * k, m * k)
        return self._penalized(H, W, params, penalty)

    def _penalized(
        self, H: np.ndarray, W: np.ndarray, params: Params, penalty: bool = True
    ) -> np.ndarray:
        """Add the regularizer's diagonal on the weights and order ``H`` like ``params``."""
        if self._reg is not None and penalty:
            idx = np.arange(W.size)
            H[idx, idx] += np.ravel(_second(self._reg)(W))
        return _in_order(H, self._blocks(W), params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()})"

    def _settings(self) -> str:
        return f"regularizer={_choice_repr(self._regularizer)}"


class LinearRegression(_Linear):
    """Fit ``y ~ X @ W + b`` under an element-wise loss (mean squared error by default).

    ``init(n_features=d)`` gives ``W`` of shape ``(d,)`` for 1-D targets, or ``(d, k)`` with
    ``n_outputs=k`` for ``(n, k)`` targets. ``regularizer=("l2", {"lam": 2 * alpha / n})``
    is scikit-learn's ``Ridge(alpha)``.
    """

    def __init__(
        self,
        loss: KernelChoice = "mse",
        regularizer: KernelChoice | None = None,
        fit_intercept: bool = True,
    ) -> None:
        kernel = _resolve_loss(loss)
        if kernel.spec.class_axis:
            raise ValueError(
                f"LinearRegression needs an element-wise loss; {kernel.name!r} reduces over "
                "classes (use SoftmaxRegression or MLP)"
            )
        self._loss_choice = loss
        super().__init__(kernel, regularizer, fit_intercept)

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        return _check_shape(y, z.shape, z.dtype)

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return the predictions ``X @ W + b``."""
        return self.decision_function(params, X)

    def _settings(self) -> str:
        return (
            f"loss={_choice_repr(self._loss_choice)}, {super()._settings()}, "
            f"fit_intercept={self.fit_intercept}"
        )


class LogisticRegression(_Linear):
    """Fit binary labels (0/1, or probabilities) with a sigmoid on ``X @ w + b``.

    The loss is ``binary_cross_entropy_with_logits``; ``regularizer=("l2", {"lam": 1 / (C n)})``
    is scikit-learn's ``LogisticRegression(C=C)``.
    """

    def __init__(self, regularizer: KernelChoice | None = None, fit_intercept: bool = True):
        super().__init__(
            _resolve_loss("binary_cross_entropy_with_logits"), regularizer, fit_intercept
        )

    def init(  # type: ignore[override]
        self, seed: int = 0, *, n_features: int, dtype: Any = np.float64, like: Any = None
    ) -> Params:
        """Return zero weights ``W`` of shape ``(n_features,)`` and a zero intercept ``b``."""
        return super().init(seed, n_features=n_features, dtype=dtype, like=like)

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        y = _check_shape(y, z.shape, z.dtype)
        if np.any((y < 0) | (y > 1)):
            raise ValueError("LogisticRegression labels must be 0/1 (or probabilities in [0, 1])")
        return y

    def _xp_targets(self, at: _XpPoint, y: Any, z: Any) -> Any:
        y = at.shaped(y, tuple(z.shape))
        if bool(at.xp.any((y < 0) | (y > 1))):
            raise ValueError("LogisticRegression labels must be 0/1 (or probabilities in [0, 1])")
        return y

    def predict_proba(self, params: Params, X: Any) -> np.ndarray:
        """Return P(y = 1) for each sample, shape ``(n,)``."""
        return _activate("sigmoid", self.decision_function(params, X))

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return 0/1 labels (1 where the logit is positive)."""
        return _as_labels(self.decision_function(params, X) > 0)


class SoftmaxRegression(_Linear):
    """Fit ``n_classes`` classes with a softmax on ``X @ W + b`` (multinomial logistic).

    Labels are integers ``0 .. n_classes - 1`` or ``(n, n_classes)`` target rows.
    """

    def __init__(
        self,
        n_classes: int,
        regularizer: KernelChoice | None = None,
        fit_intercept: bool = True,
    ) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.n_classes = int(n_classes)
        super().__init__(_resolve_loss("softmax_cross_entropy"), regularizer, fit_intercept)

    def init(  # type: ignore[override]
        self, seed: int = 0, *, n_features: int, dtype: Any = np.float64, like: Any = None
    ) -> Params:
        """Return zero weights ``W`` of shape ``(n_features, n_classes)`` and zero ``b``."""
        return super().init(
            seed, n_features=n_features, n_outputs=self.n_classes, dtype=dtype, like=like
        )

    def _targets(self, y: Any, z: np.ndarray) -> np.ndarray:
        if z.shape[1:] != (self.n_classes,):
            raise ValueError(f"params['W'] must have {self.n_classes} columns, got {z.shape[1:]}")
        return _one_hot(y, len(z), self.n_classes, z.dtype)

    def _xp_targets(self, at: _XpPoint, y: Any, z: Any) -> Any:
        if tuple(z.shape[1:]) != (self.n_classes,):
            raise ValueError(
                f"params['W'] must have {self.n_classes} columns, got {tuple(z.shape[1:])}"
            )
        return at.one_hot(y, z.shape[0], self.n_classes)

    def predict_proba(self, params: Params, X: Any) -> np.ndarray:
        """Return class probabilities, shape ``(n, n_classes)``."""
        return _activate("softmax", self.decision_function(params, X))

    def hessian(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> np.ndarray:
        """Return the objective's dense Hessian over ``flatten(params)`` (``W`` raveled, then ``b``).

        Sample ``i``'s block over its logits is ``c_i / n (diag(p_i) - p_i p_i.T)`` with
        ``p_i = softmax(z_i)`` and ``c_i = sum(y_i)`` (1 for labels), the closed form of
        ``softmax_cross_entropy_hvp``. With ``A = [X, 1]``, the ``diag(p)`` part is one
        weighted Gram matrix ``A.T diag(c p_a / n) A`` per class ``a``, and the ``p p.T`` part
        ``Q.T Q`` with ``Q[i, (j, a)] = sqrt(c_i / n) A[i, j] p[i, a]``, built and multiplied
        (BLAS syrk) in blocks of rows to bound memory.
        """
        X, z, Y = self._point(params, X, y)
        W = np.asarray(params["W"], dtype=float)
        P = _activations.softmax(z)
        w = np.sum(Y, axis=1) / (len(z) if count is None else count)
        if sample_weight is not None:  # the weighted mean: c_i w_i / sum(w) in place of c_i / n
            sw = _weighting(self._loss, z, sample_weight)["weight"]
            w = np.sum(Y, axis=1) * (sw / (np.sum(sw) if count is None else count))
        (n, d), k = X.shape, self.n_classes
        m = d + self.fit_intercept
        H4 = np.zeros((m, k, m, k))
        for a in range(k):
            H4[:, a, :, a] = _weighted_gram(X, w * P[:, a], self.fit_intercept)
        H = H4.reshape(m * k, m * k)
        root = np.sqrt(np.abs(w))[:, None] * P
        sign = np.sign(w)[:, None, None]
        rows = max(1, _ROW_BLOCK // (m * k))
        for start in range(0, n, rows):
            block = slice(start, start + rows)
            R = root[block]
            Q = np.empty((len(R), m, k))
            np.multiply(X[block, :, None], R[:, None, :], out=Q[:, :d])
            if self.fit_intercept:
                Q[:, d] = R
            Q2 = Q.reshape(len(R), m * k)
            if np.all(w[block] >= 0):
                H -= Q2.T @ Q2
            else:
                H -= Q2.T @ (Q * sign[block]).reshape(len(R), m * k)
        if np.any(w < 0):
            H = 0.5 * (H + H.T)
        return self._penalized(H, W, params, penalty)

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return the most probable class of each sample."""
        return _argmax(self.decision_function(params, X))

    def _settings(self) -> str:
        return f"n_classes={self.n_classes}, {super()._settings()}"


class MLP:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` with one hidden activation.

    Params are ``W0, b0, W1, b1, ...`` (``W_l`` of shape ``(sizes[l], sizes[l + 1])``). The
    last layer is linear and ``loss`` acts on its outputs: the default
    ``softmax_cross_entropy`` makes a classifier over ``sizes[-1]`` classes (integer labels
    are one-hot encoded), ``binary_cross_entropy_with_logits`` a 0/1 classifier, and an
    element-wise loss such as ``"mse"`` a regressor. ``output`` names an output activation to
    fuse with ``loss`` through :func:`symgrad.compose` (e.g. ``output="softmax",
    loss="categorical_cross_entropy"``), differentiated as a whole.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: KernelChoice = "relu",
        loss: KernelChoice = "softmax_cross_entropy",
        regularizer: KernelChoice | None = None,
        output: KernelChoice | None = None,
    ) -> None:
        sizes = tuple(sizes)
        if len(sizes) < 2 or any(
            isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in sizes
        ):
            raise ValueError(f"sizes must be two or more positive integers, got {sizes!r}")
        self.sizes = tuple(int(s) for s in sizes)
        self._act = _resolve_activation(activation)
        self._loss = _resolve_loss(loss, output)
        self._out = None if output is None else _resolve_activation(output, elementwise=False)
        self._reg = _resolve_regularizer(regularizer)
        self._choices = (activation, loss, regularizer, output)
        base = resolve("loss", loss)[0].name
        if self._loss.spec.class_axis:
            self.task = "multiclass"
        elif (output is None and self._loss.spec.link == "sigmoid") or (
            output is not None and base == "binary_cross_entropy"
        ):
            self.task = "binary"
        else:
            self.task = "regression"
        if self.task == "multiclass" and self.sizes[-1] < 2:
            raise ValueError(f"loss {self._loss.name!r} needs sizes[-1] >= 2 classes")

    @property
    def n_layers(self) -> int:
        """Return the number of weight matrices."""
        return len(self.sizes) - 1

    def facts(self) -> ModelFacts:
        """Return the loss and regularizer facts; linear only without hidden layers."""
        reg = None if self._reg is None else self._reg.spec
        return ModelFacts(self._loss.spec, reg, self.n_layers == 1 and self._out is None)

    def init(self, seed: int = 0, *, dtype: Any = np.float64, like: Any = None) -> Params:
        """Return random weights from ``np.random.default_rng(seed)`` and zero biases.

        Hidden layers use He normal for relu-like activations, LeCun normal for selu and
        Glorot uniform otherwise; the output layer uses Glorot uniform. ``dtype=np.float32``
        gives float32 params (drawn in float64, then rounded): the model computes in float32.
        ``like=X`` (torch, CuPy, JAX, ...) gives the same values as arrays of X's library,
        device and float dtype.
        """
        dtype = _init_dtype(_like_dtype(like, dtype))
        rng = np.random.default_rng(seed)
        hidden = self._act.name if self._act.builtin else ""
        params: Params = {}
        for layer, (fan_in, fan_out) in enumerate(zip(self.sizes, self.sizes[1:], strict=False)):
            scheme = "glorot" if layer == self.n_layers - 1 else hidden
            if scheme in _HE_INIT:
                W = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
            elif scheme == "selu":
                W = rng.normal(0.0, np.sqrt(1.0 / fan_in), (fan_in, fan_out))
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                W = rng.uniform(-limit, limit, (fan_in, fan_out))
            params[f"W{layer}"] = W.astype(dtype, copy=False)
            params[f"b{layer}"] = np.zeros(fan_out, dtype)
        return _init_like(params, like)

    def _weights(self, params: Params) -> list[tuple[np.ndarray, np.ndarray]]:
        return [
            (
                _param(params, f"W{i}", (self.sizes[i], self.sizes[i + 1])),
                _param(params, f"b{i}", (self.sizes[i + 1],)),
            )
            for i in range(self.n_layers)
        ]

    def decision_function(self, params: Params, X: Any) -> np.ndarray:
        """Return the last layer's pre-activations (logits), shape ``(n, sizes[-1])``.

        With torch, CuPy, JAX or other Array API inputs the result is that library's array.
        """
        ref = _foreign(params, X)
        if ref is not None:
            at = _XpPoint(ref, params)
            layers = [(at.array(W), at.array(b)) for W, b in self._weights(params)]
            return self._xp_forward(at, layers, at.matrix(X, self.sizes[0]))[0][-1]
        layers = self._weights(params)
        a = _matrix(X, self.sizes[0], _params_dtype(params))
        for i, (W, b) in enumerate(layers):
            z = a @ W
            z += b
            a = z if i == self.n_layers - 1 else self._act.fn(z)
        return a

    def _xp_forward(self, at: _XpPoint, layers: list, X: Any) -> tuple[list, list]:
        """Return the layer inputs (the logits last) and the hidden pre-activations."""
        act = _xp_fn(self._act)
        inputs, pre = [X], []
        for i, (W, b) in enumerate(layers):
            z = inputs[-1] @ W + b
            if i < self.n_layers - 1:
                pre.append(z)
                z = act(z)
            inputs.append(z)
        return inputs, pre

    def _xp_targets(self, at: _XpPoint, y: Any, n: int) -> Any:
        k = self.sizes[-1]
        if self.task == "multiclass":
            return at.one_hot(y, n, k)
        y = at.array(y)
        if y.ndim == 1 and k == 1:
            y = at.xp.reshape(y, (n, 1))
        return at.shaped(y, (n, k))

    def _xp_objective(
        self, at: _XpPoint, params: Params, X: Any, y: Any, sample_weight: Any, kw: dict
    ) -> tuple[Any, Params]:
        """Return ``objective`` computed in the namespace of ``at`` (loss a 0-d array)."""
        layers = [(at.array(W), at.array(b)) for W, b in self._weights(params)]
        X = at.matrix(X, self.sizes[0])
        inputs, pre = self._xp_forward(at, layers, X)
        z = inputs.pop()
        weights = at.weighting(self._loss, z, sample_weight, kw["count"])
        fn = _xp_fn(self._loss, "_value_and_grad")
        loss, delta = fn(z, self._xp_targets(at, y, X.shape[0]), **weights)
        act_grad = _xp_fn(self._act, "_grad")
        grads: Params = {}
        for i in range(self.n_layers - 1, -1, -1):
            grads[f"W{i}"] = inputs[i].mT @ delta
            grads[f"b{i}"] = at.xp.sum(delta, axis=0)
            if i:
                delta = (delta @ layers[i][0].mT) * act_grad(pre[i - 1])
        if kw["penalty"]:
            weights = {f"W{i}": W for i, (W, _) in enumerate(layers)}
            loss = at.penalize(self._reg, loss, weights, grads)
        return loss, {key: grads[key] for key in params if key in grads}

    def _targets(self, y: Any, n: int, dtype: Any = float) -> np.ndarray:
        k = self.sizes[-1]
        if self.task == "multiclass":
            return _one_hot(y, n, k, dtype)
        y = np.asarray(y, dtype=dtype)
        if y.ndim == 1 and k == 1:
            y = y[:, None]
        return _check_shape(y, (n, k), dtype)

    def objective(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> tuple[float, Params]:
        """Return the (weighted) mean loss plus the penalty on every ``W``, and backprop gradients.

        ``count`` (total samples) and ``penalty=False`` give a block of rows' exact share of
        the full objective, as for the linear models (zero rows give the penalty alone).
        Torch, CuPy, JAX or other Array API inputs run in that library, as for the linear
        models (the loss a 0-d array, the gradients that library's arrays).
        """
        ref = _foreign(params, X)
        if ref is not None:
            kw = {"count": count, "penalty": penalty}
            return self._xp_objective(_XpPoint(ref, params), params, X, y, sample_weight, kw)
        layers = self._weights(params)
        X = _matrix(X, self.sizes[0], _params_dtype(params))
        Y = self._targets(y, len(X), X.dtype)
        inputs, pre = [X], []  # layer inputs a_l and hidden pre-activations z_l
        for i, (W, b) in enumerate(layers):
            z = inputs[-1] @ W
            z += b
            if i < self.n_layers - 1:
                pre.append(z)
                inputs.append(self._act.fn(z))
        loss, delta = self._loss.fn(z, Y, **_weighting(self._loss, z, sample_weight, count))
        grads: Params = {}
        for i in range(self.n_layers - 1, -1, -1):
            grads[f"W{i}"] = inputs[i].T @ delta
            grads[f"b{i}"] = np.sum(delta, axis=0)
            if i:
                delta = delta @ layers[i][0].T
                # the pre-activation is not needed again: its array takes f'(z)
                delta *= self._act.grad(pre[i - 1], out=pre[i - 1])
        grads = {key: grads[key] for key in params if key in grads}  # params' order
        if penalty:
            weights = [W for W, _ in layers]
            loss += _penalize(self._reg, weights, [grads[f"W{i}"] for i in range(self.n_layers)])
        return loss, grads

    def hvp_operator(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> HVP:
        """Return ``v -> H v``, the objective's exact Hessian at ``params`` times a direction.

        Pearlmutter's R-operator (forward-over-reverse): the forward pass and backprop run
        once; each application pushes ``v`` forward (``R(z) = R(a) W + a V + V_b``,
        ``R(a) = f'(z) R(z)``), applies the loss curvature (``loss_hess`` or ``loss_hvp``) at
        the logits, and pulls back ``R(delta) = (R(delta') W.T + delta' V.T) f'(z)
        + delta' W.T f''(z) R(z)`` with the activation's ``_grad``/``_hess`` kernels: about
        twice the matrix products of one gradient, exact (no finite differences).
        """
        layers = self._weights(params)
        X = _matrix(X, self.sizes[0], _params_dtype(params))
        Y = self._targets(y, len(X), X.dtype)
        inputs, slopes, bends = [X], [], []  # a_l, f'(z_l), f''(z_l) of the hidden layers
        for i, (W, b) in enumerate(layers):
            z = inputs[-1] @ W
            z += b
            if i < self.n_layers - 1:
                inputs.append(self._act.fn(z))
                slopes.append(self._act.grad(z))
                bends.append(_second(self._act)(z))
        delta = self._loss.fn(z, Y, **_weighting(self._loss, z, sample_weight, count))[1]
        curvature = _loss_hvp(self._loss, z, Y, sample_weight, count)
        deltas = [delta]  # dL/dz_l from the last layer down
        for i in range(self.n_layers - 1, 0, -1):
            deltas.append((deltas[-1] @ layers[i][0].T) * slopes[i - 1])
        deltas.reverse()
        skip = self._reg is None or not penalty
        reg_h = [None if skip else _second(self._reg)(W) for W, _ in layers]

        def apply(v: Params) -> Params:
            V = [
                (
                    np.asarray(_param(v, f"W{i}", W.shape), dtype=float),
                    np.asarray(_param(v, f"b{i}", b.shape), dtype=float),
                )
                for i, (W, b) in enumerate(layers)
            ]
            r_inputs, r_pre = [None], []  # R(a_l) (R(X) = 0) and R(z_l)
            for i, ((W, _), (VW, Vb)) in enumerate(zip(layers, V, strict=True)):
                rz = inputs[i] @ VW
                rz += Vb
                if r_inputs[i] is not None:
                    rz += r_inputs[i] @ W
                r_pre.append(rz)
                if i < self.n_layers - 1:
                    r_inputs.append(slopes[i] * rz)
            r_delta = curvature(r_pre[-1])
            out: Params = {}
            for i in range(self.n_layers - 1, -1, -1):
                W, VW = layers[i][0], V[i][0]
                rgW = inputs[i].T @ r_delta
                if r_inputs[i] is not None:
                    rgW += r_inputs[i].T @ deltas[i]
                if reg_h[i] is not None:
                    rgW += reg_h[i] * VW
                out[f"W{i}"], out[f"b{i}"] = rgW, np.sum(r_delta, axis=0)
                if i:
                    back = r_delta @ W.T
                    back += deltas[i] @ VW.T
                    back *= slopes[i - 1]
                    back += (deltas[i] @ W.T) * bends[i - 1] * r_pre[i - 1]
                    r_delta = back
            return {key: out[key] for key in params if key in out}

        return apply

    hvp = _hvp

    def hessian(
        self,
        params: Params,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        count: float | None = None,
        penalty: bool = True,
    ) -> np.ndarray:
        """Return the dense Hessian over ``flatten(params)`` (``W0, b0, W1, ...``, C order).

        Column ``j`` is ``hvp`` of the ``j``-th basis vector (one R-operator pass each, after
        a single forward/backward pass), symmetrized; meant for small networks.
        """
        apply = self.hvp_operator(params, X, y, sample_weight, count=count, penalty=penalty)
        base = {key: params[key] for key in params if key in self._keys()}
        size = sum(np.size(v) for v in base.values())
        H = np.empty((size, size))
        e = np.zeros(size)
        for j in range(size):
            e[j] = 1.0
            H[:, j] = flatten(apply(unflatten(e, base)))
            e[j] = 0.0
        return 0.5 * (H + H.T)

    def _keys(self) -> list[str]:
        return [f"{p}{i}" for i in range(self.n_layers) for p in ("W", "b")]

    def predict_proba(self, params: Params, X: Any) -> np.ndarray:
        """Return class probabilities: ``(n, classes)`` for multiclass, P(y = 1) for binary."""
        if self.task == "regression":
            raise ValueError(f"predict_proba needs a classification loss, not {self._loss.name!r}")
        z = self.decision_function(params, X)
        if self._out is not None:
            p = _activate(self._out, z)
        elif self.task == "multiclass":
            p = _activate("softmax", z)
        else:
            p = _activate("sigmoid", z)
        return p[:, 0] if self.task == "binary" and p.shape[1] == 1 else p

    def predict(self, params: Params, X: Any) -> np.ndarray:
        """Return class labels (classifiers) or outputs (regression; 1-D if one output)."""
        if self.task == "multiclass":
            scores = self.decision_function(params, X)
            return _argmax(scores if self._out is None else _activate(self._out, scores))
        if self.task == "binary":
            return _as_labels(self.predict_proba(params, X) > 0.5)
        out = self.decision_function(params, X)
        if self._out is not None:
            out = _activate(self._out, out)
        return out[:, 0] if out.shape[1] == 1 else out

    def __repr__(self) -> str:
        names = ("activation", "loss", "regularizer", "output")
        args = ", ".join(
            f"{n}={_choice_repr(c)}" for n, c in zip(names, self._choices, strict=True)
        )
        return f"MLP(sizes={self.sizes}, {args})"
