"""The multi-layer perceptron, with exact Hessians by the R-operator."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgrad.kernels import resolve
from symgrad.models._arrays import (
    _check_shape,
    _init_dtype,
    _matrix,
    _one_hot,
    _param,
    _params_dtype,
    _penalize,
)
from symgrad.models._kernels import _resolve_activation, _resolve_loss, _resolve_regularizer
from symgrad.models._protocol import HVP, KernelChoice, ModelFacts, Params
from symgrad.models._second_order import _choice_repr, _hvp, _loss_hvp, _second, _weighting
from symgrad.models._xp_point import (
    _activate,
    _argmax,
    _as_labels,
    _foreign,
    _init_like,
    _like_dtype,
    _xp_fn,
    _XpPoint,
)
from symgrad.tree import ravel as flatten
from symgrad.tree import unravel as unflatten

#: Hidden activations that get He initialisation (LeCun for selu, Glorot for the rest).
_HE_INIT = frozenset({"relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "mish"})
#: The most bytes of layer buffers ``MLP.objective`` keeps per thread and batch shape; larger
#: batches allocate per call (their matrix products dwarf the allocation).
WORKSPACE_BYTES = 64 * 2**20
#: How many batch shapes' buffers a thread keeps (full batches and a short last one).
WORKSPACE_SHAPES = 2


class _Workspace:
    """The arrays one ``MLP.objective`` call writes for ``n`` rows: each layer's
    pre-activations ``z``, the hidden activations ``a``, the loss gradient at the logits and
    the back-propagated hidden deltas."""

    def __init__(self, sizes: tuple[int, ...], n: int, dtype: np.dtype) -> None:
        widths = sizes[1:]
        self.z = [np.empty((n, w), dtype) for w in widths]
        self.a = [np.empty((n, w), dtype) for w in widths[:-1]]
        self.delta = np.empty((n, widths[-1]), dtype)
        self.back = [np.empty((n, w), dtype) for w in widths[:-1]]

    @staticmethod
    def nbytes(sizes: tuple[int, ...], n: int, dtype: np.dtype) -> int:
        """Return the bytes a workspace for ``n`` rows takes."""
        hidden = sum(sizes[1:-1])
        return n * (3 * hidden + 2 * sizes[-1]) * np.dtype(dtype).itemsize


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

    def init_for(self, X: Any, y: Any, seed: int = 0) -> Params:
        """Return seeded parameters (``sizes`` fixes their shapes; ``X, y`` are not read)."""
        return self.init(seed)

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
        out: Params | None = None,
    ) -> tuple[float, Params]:
        """Return the (weighted) mean loss plus the penalty on every ``W``, and backprop gradients.

        ``count`` (total samples) and ``penalty=False`` give a block of rows' exact share of
        the full objective, as for the linear models (zero rows give the penalty alone).
        Torch, CuPy, JAX or other Array API inputs run in that library, as for the linear
        models (the loss a 0-d array, the gradients that library's arrays).

        On numpy, the matrix products write into preallocated arrays, and the bias and the
        activation are applied in place through the emitted kernels' ``out=``: the layer
        buffers are allocated once per batch shape and thread and reused by later calls
        (up to ``WORKSPACE_BYTES``). ``out`` (a dict of arrays shaped like the params, e.g.
        ``symgrad.optim.join(grads)``) receives the gradients, which are returned: then a
        call allocates no array at all. The numbers are the same either way.
        """
        ref = _foreign(params, X)
        if ref is not None:
            kw = {"count": count, "penalty": penalty}
            return self._xp_objective(_XpPoint(ref, params), params, X, y, sample_weight, kw)
        layers = self._weights(params)
        X = _matrix(X, self.sizes[0], _params_dtype(params))
        Y = self._targets(y, len(X), X.dtype)
        grads = self._grads_out(out, params, X.dtype)
        ws = self._workspace(len(X), X.dtype)
        inputs = [X]  # the layer inputs a_l; ws.z[l] holds the pre-activations z_l
        for i, (W, b) in enumerate(layers):
            z = np.matmul(inputs[-1], W, out=ws.z[i])
            z += b
            if i < self.n_layers - 1:
                inputs.append(self._act.fn(z, out=ws.a[i]))
        kw = _weighting(self._loss, z, sample_weight, count)
        loss, delta = self._loss.fn(z, Y, **kw, out=ws.delta)
        for i in range(self.n_layers - 1, -1, -1):
            gW, gb = grads.get(f"W{i}"), grads.get(f"b{i}")
            grads[f"W{i}"] = np.matmul(inputs[i].T, delta, out=gW)
            grads[f"b{i}"] = np.sum(delta, axis=0, out=gb)
            if i:
                delta = np.matmul(delta, layers[i][0].T, out=ws.back[i - 1])
                # the layer's input a = f(z) is not needed again: its array takes f'(z)
                delta *= self._act.grad(ws.z[i - 1], out=ws.a[i - 1])
        grads = {key: grads[key] for key in params if key in grads}  # params' order
        if penalty:
            weights = [W for W, _ in layers]
            loss += _penalize(self._reg, weights, [grads[f"W{i}"] for i in range(self.n_layers)])
        return loss, grads

    def _grads_out(self, out: Params | None, params: Params, dtype: np.dtype) -> dict:
        """Return the arrays the gradients go into: ``out``'s, checked, or none (new ones)."""
        if out is None:
            return {}
        if not isinstance(out, dict):
            raise TypeError(f"out must be a dict of gradient arrays, got {type(out).__name__}")
        for key in self._keys():
            shape = np.shape(params[key])
            got = out.get(key)
            if (
                type(got) is not np.ndarray
                or got.shape != shape
                or got.dtype != dtype
                or not got.flags.writeable
            ):
                what = "missing" if got is None else f"{type(got).__name__} {np.shape(got)}"
                raise ValueError(
                    f"out[{key!r}] must be a writeable {np.dtype(dtype)} array of shape "
                    f"{shape}, got {what}"
                )
        return {key: out[key] for key in self._keys()}

    def _workspace(self, n: int, dtype: np.dtype) -> _Workspace:
        """Return this thread's buffers for ``n`` rows, allocated at the first call with that
        batch shape and reused after (at most ``WORKSPACE_SHAPES`` shapes and
        ``WORKSPACE_BYTES`` each are kept)."""
        if _Workspace.nbytes(self.sizes, n, dtype) > WORKSPACE_BYTES:
            return _Workspace(self.sizes, n, dtype)
        local = self.__dict__.get("_local") or self.__dict__.setdefault("_local", threading.local())
        kept = getattr(local, "kept", None)
        if kept is None:
            kept = local.kept = {}
        key = (n, np.dtype(dtype).str)
        ws = kept.pop(key, None)
        if ws is None:
            ws = _Workspace(self.sizes, n, dtype)
            while len(kept) >= WORKSPACE_SHAPES:
                kept.pop(next(iter(kept)))
        kept[key] = ws  # the most recent last
        return ws

    def __getstate__(self) -> dict:
        """Return the model's state without its per-thread buffers (not picklable)."""
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

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
