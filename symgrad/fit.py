"""Training loop for any ``(loss, grads)`` objective, so generated gradients can be fitted directly.

:func:`fit` drives an :class:`symgrad.optim.Optimizer` (or any chain of gradient transformations)
over full batches or seeded mini-batches and stops on an epoch budget, a tolerance, validation
early stopping, a callback, or a non-finite loss/gradient (see :class:`NonFiniteError`). The
loop is an epoch runner (:func:`_run_epoch`), a table of stop rules (:data:`_STOP_RULES`) and
a :class:`FitHistory`. Conventions:

* ``epoch`` and ``step`` are 0-based everywhere (``history`` rows, callbacks, errors);
  ``step`` counts optimizer updates, which is also what learning-rate schedules see.
* The epoch ``loss`` is the mean of the mini-batch losses weighted by batch size, each taken
  at the parameters *before* that batch's update (for full batch: the loss at the start of
  the epoch).
* The epoch ``grad_norm`` is the L2 norm, over all leaves, of the batch-size-weighted mean of
  the epoch's gradients: exactly the full-batch gradient for full-batch training.
* ``lr`` is the learning rate of the epoch's last update (NaN if the optimizer has no
  ``learning_rate`` schedule).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from symgrad import _inplace, _xp, optim, tree
from symgrad.errors import NonFiniteError

__all__ = ["FitHistory", "FitResult", "NonFiniteError", "fit"]

Objective = Callable[[Any, Any, Any], tuple[float, Any]]
Callback = Callable[[int, "FitResult"], bool | None]

TOL_MODES = ("grad_norm", "rel_loss")


@dataclass
class FitHistory:
    """Hold one entry per completed epoch in parallel lists (see :meth:`as_arrays`)."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    n_steps: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epoch)

    def append(self, **row: float) -> None:
        """Add one epoch's values; every field must be given."""
        for name in self.__dataclass_fields__:
            getattr(self, name).append(row[name])

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Return every field as a numpy array, keyed by field name."""
        return {name: np.asarray(getattr(self, name)) for name in self.__dataclass_fields__}

    def rows(self) -> list[dict[str, float]]:
        """Return the history as a list of per-epoch dicts."""
        names = list(self.__dataclass_fields__)
        return [dict(zip(names, vals, strict=True)) for vals in zip(*self._columns(), strict=True)]

    def _columns(self) -> list[list]:
        return [getattr(self, name) for name in self.__dataclass_fields__]


@dataclass
class FitResult:
    """Hold fitted params, per-epoch history and why and when training stopped.

    ``stop_reason`` is one of ``"epochs"``, ``"tol"``, ``"early_stopping"``, ``"callback"``,
    ``"non_finite"`` (``"running"`` in the snapshots given to callbacks); the full-batch
    solvers of :mod:`symgrad.solvers` add ``"line_search"`` (no step decreased the objective
    from the start) and ``"stalled"`` (no step decreased it after progress: round-off).
    ``message`` says the same in words, including the tolerance mode.

    The solvers also fill ``objective`` and ``grad_norm`` (largest gradient entry) at the
    returned params, ``n_passes`` (passes over the data), ``method`` and ``warnings``: each
    a reason the result may not be a minimum (a non-finite value met, a failed line search),
    which the estimators raise as ``ConvergenceWarning``.
    """

    params: Any
    history: FitHistory
    stop_reason: str
    n_steps: int
    n_epochs: int
    message: str = ""
    tol_mode: str | None = None
    best_epoch: int | None = None
    opt_state: Any = None
    objective: float = math.nan
    grad_norm: float = math.nan
    n_passes: int = 0
    method: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def converged(self) -> bool:
        """Tell whether the run met its tolerance (``stop_reason == "tol"``)."""
        return self.stop_reason == "tol"

    @property
    def n_iter(self) -> int:
        """Return the iterations (optimizer steps) taken: ``n_steps``."""
        return self.n_steps

    @property
    def x(self) -> np.ndarray:
        """Return the params as one flat vector (:func:`symgrad.tree.ravel` order)."""
        return tree.ravel(self.params)


class _NonFinite(Exception):
    def __init__(self, where: str, detail: str):
        super().__init__(where)
        self.where = where
        self.detail = detail


def _check_args(
    *,
    epochs: int,
    batch_size: int | None,
    tol: float | None,
    tol_mode: str,
    patience: int | None,
    validation: Any,
    on_non_finite: str,
) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 0:
        raise ValueError(f"fit: epochs must be an integer >= 0, got {epochs!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise ValueError(f"fit: batch_size must be None or an integer >= 1, got {batch_size!r}")
    if tol is not None and not (isinstance(tol, int | float) and tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"fit: tol must be None or a finite number >= 0, got {tol!r}")
    if tol_mode not in TOL_MODES:
        raise ValueError(f"fit: tol_mode must be one of {TOL_MODES}, got {tol_mode!r}")
    if patience is not None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"fit: patience must be None or an integer >= 1, got {patience!r}")
        if validation is None:
            raise ValueError("fit: patience needs validation=(X_val, y_val)")
    if validation is not None and (
        not isinstance(validation, tuple | list) or len(validation) != 2
    ):
        raise ValueError("fit: validation must be a pair (X_val, y_val)")
    if on_non_finite not in ("raise", "stop"):
        raise ValueError(f"fit: on_non_finite must be 'raise' or 'stop', got {on_non_finite!r}")


def _check_inputs(objective: Any, optimizer: Any, X: Any, y: Any) -> Objective:
    """Raise one clear TypeError for an unusable objective, optimizer or data; return the
    objective wrapped so that a result other than a ``(loss, grads)`` pair is one too."""
    if not callable(objective):
        raise TypeError(f"fit: objective must be callable, got {type(objective).__name__}")
    if not isinstance(optimizer, str) and not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "fit: optimizer must be a symgrad Optimizer, a gradient transformation or a "
            "registry name such as 'adam', "
            f"got {type(optimizer).__name__}"
        )
    for name, data in (("X", X), ("y", y)):
        if data is None and name == "y":
            continue
        if (
            isinstance(data, dict | str | bytes | set)
            or not (hasattr(data, "__len__") or _xp.is_foreign(data))
            or not hasattr(data, "__getitem__")
        ):
            raise TypeError(
                f"fit: {name} must be an array indexed along axis 0 (a numpy array), "
                f"got {type(data).__name__}"
            )

    def checked(params: Any, Xb: Any, yb: Any, grads: Any = None) -> tuple[Any, Any]:
        out = objective(params, Xb, yb) if grads is None else objective(params, Xb, yb, out=grads)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise TypeError(
                f"fit: objective must return a pair (loss, grads), got {type(out).__name__}"
            )
        return out[0], out[1]

    return checked


def _interactive() -> bool:
    """Tell whether a person watches: stderr is a terminal, or this is a Jupyter kernel."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(progress: bool | None, epochs: int) -> Any:
    """Return a tqdm bar over ``epochs`` (a notebook widget in Jupyter, via ``tqdm.auto``), or
    None when ``progress`` is False, or None and nobody watches."""
    explicit = progress is not None
    if progress is None:
        progress = _interactive()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if explicit:
            warnings.warn("fit: progress=True but tqdm is not installed; no bar", stacklevel=3)
        return None
    return tqdm(total=epochs, desc="fit", unit="epoch", file=sys.stderr)


def _batches(
    n: int, batch_size: int | None, shuffle: bool, rng: np.random.Generator
) -> Iterator[slice | np.ndarray | None]:
    if batch_size is None:
        yield None
        return
    order = rng.permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        yield (
            slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        )


def _take(data: Any, idx: slice | np.ndarray | None) -> Any:
    if idx is None or data is None:
        return data
    if _xp.is_foreign(data):  # torch, CuPy, JAX, ...: a slice, or xp.take of the indices
        return _xp.take_rows(data, idx)
    return data[idx]


def _nonfinite_leaves(leaves: Sequence[Any]) -> int | None:
    """Return the index of the first leaf holding a NaN or inf, or None; leaves laid out
    by :func:`symgrad.optim.join` are checked in one call over their flat array."""
    if leaves and type(leaves[0]) is np.ndarray:
        flat = _inplace.joined(list(leaves))
        if flat is not None and np.all(np.isfinite(flat)):
            return None
    for i, leaf in enumerate(leaves):
        if not (np.all(np.isfinite(leaf)) if type(leaf) is np.ndarray else _xp.all_finite(leaf)):
            return i
    return None


class _Squares:
    """``sum(g * g)`` of each leaf as Python floats, through preallocated scratch arrays (the
    same numbers as ``np.sum(g * g)``: the same values, shape and layout). Leaves laid out
    by :func:`symgrad.optim.join` are squared in one call over their flat array."""

    def __init__(self) -> None:
        self._scratch: dict[np.dtype, np.ndarray] = {}
        #: (a joined flat array, its scratch, views of the scratch shaped like its leaves)
        self._joined: tuple = (None, None, [])

    def __call__(self, g: Any) -> float:
        if _xp.is_foreign(g):
            return float(_xp.namespace(g).sum(g * g))
        if not g.flags.c_contiguous:  # g * g keeps g's layout, and the sum follows it
            return float(np.sum(g * g))
        flat = self._scratch.get(g.dtype)
        if flat is None or flat.size < g.size:
            flat = self._scratch[g.dtype] = np.empty(g.size, g.dtype)
        return float(np.add.reduce(np.multiply(g, g, out=flat[: g.size].reshape(g.shape)), None))

    def finite(self, leaves: list) -> tuple[list[float], int | None]:
        """Return each leaf's sum of squares and the index of the first leaf holding a NaN
        or inf (None if none): a finite sum of squares proves its leaf finite, and only a
        leaf whose sum is not (a NaN or inf, or squares past the largest float) is
        searched."""
        flat = _inplace.joined(leaves) if leaves and type(leaves[0]) is np.ndarray else None
        if flat is None:
            squares = [self(g) for g in leaves]
        else:
            if self._joined[0] is not flat:
                scratch = np.empty_like(flat)
                self._joined = (flat, scratch, _inplace.views(scratch, leaves))
            _, scratch, views = self._joined
            np.multiply(flat, flat, out=scratch)
            squares = [float(np.add.reduce(v, None)) for v in views]
        for i, sq in enumerate(squares):
            if not math.isfinite(sq) and _nonfinite_leaves([leaves[i]]) is not None:
                return squares, i
        return squares, None


class _Settings(NamedTuple):
    """Hold fit's validated arguments, read by the epoch runner and the stop rules."""

    objective: Objective
    opt: optim.Optimizer
    X: Any
    y: Any
    n: int
    batch_size: int | None
    shuffle: bool
    validation: tuple[Any, Any] | None
    tol: float | None
    tol_mode: str
    patience: int | None
    callbacks: Sequence[Callback]
    #: the gradient arrays an objective taking ``out=`` writes into (views of one flat
    #: array, as the params), or None
    grads_out: Any = None


@dataclass
class _Loop:
    """Hold what changes while fitting: params, optimizer state, counters, history, best epoch."""

    cfg: _Settings
    treedef: tree.TreeDef
    params: Any
    state: Any
    history: FitHistory = field(default_factory=FitHistory)
    step: int = 0
    epoch: int = 0
    best_val: float = math.inf
    best_params: Any = None
    best_epoch: int | None = None
    since_best: int = 0
    #: True once an optimizer's in-place step has run: params and state are then live
    #: buffers, so snapshots copy them
    in_place: bool = False
    backup: list = field(default_factory=list)
    squares: _Squares = field(default_factory=_Squares)
    #: the leaves of ``params`` (an in-place step keeps them)
    leaves: list = field(default_factory=list)

    def result(self, reason: str, message: str, final_params: Any = None) -> FitResult:
        """Snapshot the run as a FitResult (``final_params`` replaces the current params)."""
        params = self.params if final_params is None else final_params
        return FitResult(
            params=_frozen(params) if self.in_place else params,
            history=self.history,
            stop_reason=reason,
            n_steps=self.step,
            n_epochs=len(self.history),
            message=message,
            tol_mode=self.cfg.tol_mode if self.cfg.tol is not None else None,
            best_epoch=self.best_epoch,
            opt_state=_frozen(self.state) if self.in_place else self.state,
        )

    def update(self, grads: Any) -> tuple[Any, Any]:
        """Return the optimizer's new params and state: in place, after saving what it
        overwrites (so a non-finite step can be undone), when it has a fast path."""
        opt = self.cfg.opt
        fast = getattr(opt, "step", None)
        if fast is not None and not _xp.is_foreign(self.params):
            arrays = _arrays(self.params) + _arrays(self.state)
            if len(self.backup) != len(arrays) or any(
                b.shape != a.shape or b.dtype != a.dtype
                for b, a in zip(self.backup, arrays, strict=True)
            ):
                self.backup = [np.empty_like(a) for a in arrays]
            for b, a in zip(self.backup, arrays, strict=True):
                np.copyto(b, a)
            state = fast(grads, self.state, self.params)
            if state is not None:
                self.in_place = True
                return self.params, state
        return opt.update(grads, self.state, self.params)

    def undo(self) -> None:
        """Restore what the last in-place step overwrote."""
        arrays = _arrays(self.params) + _arrays(self.state)
        for b, a in zip(self.backup, arrays, strict=True):
            np.copyto(a, b)


def _arrays(node: Any) -> list[np.ndarray]:
    """Return every numpy array in a tree of dicts, lists and tuples (NamedTuples too); the
    values of a dict laid out by :func:`symgrad.optim.join` as their one flat array."""
    if type(node) is np.ndarray:
        return [node]
    if isinstance(node, dict):
        values = list(node.values())
        if values and all(type(v) is np.ndarray for v in values):
            flat = _inplace.joined(values)
            if flat is not None:
                return [flat]
        return [a for value in values for a in _arrays(value)]
    if isinstance(node, list | tuple):
        return [a for value in node for a in _arrays(value)]
    return []


def _frozen(node: Any) -> Any:
    """Return a copy of a tree with its numpy arrays copied (a snapshot of live buffers)."""
    if type(node) is np.ndarray:
        return node.copy()
    if isinstance(node, dict):
        return {key: _frozen(value) for key, value in node.items()}
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*(_frozen(value) for value in node))
    if isinstance(node, list | tuple):
        return type(node)(_frozen(value) for value in node)
    return node


class _EpochSums:
    """Accumulate an epoch's batch losses and batch-size-weighted gradient sums."""

    def __init__(self, n: int, squares: _Squares) -> None:
        self.n = n
        self.losses: list[float] = []
        self.sizes: list[int] = []
        self.grad_sum: list[Any] | None = None
        self.full: list[float] = []  # a full batch's sums of squares, by leaf
        self.squares = squares
        self.lr = math.nan

    def add(self, loss: float, nb: int, g_leaves: list[Any], squares: list[float]) -> None:
        """Record one batch of ``nb`` rows, its gradient leaves and their sums of squares."""
        self.losses.append(loss)
        self.sizes.append(nb)
        if nb == self.n:  # the whole epoch: its gradient is this one, whose squares we have
            self.full = squares
        elif self.grad_sum is None:
            self.grad_sum = [g * nb for g in g_leaves]
        else:
            self.grad_sum = [
                _accumulate(a, g, nb) for a, g in zip(self.grad_sum, g_leaves, strict=True)
            ]

    def loss_and_grad_norm(self) -> tuple[float, float]:
        """Return the epoch loss and the norm of the epoch's mean gradient."""
        if len(self.losses) == 1:  # full batch: no weighting round-off
            return self.losses[0], math.sqrt(sum(self.full))
        pairs = zip(self.losses, self.sizes, strict=True)
        epoch_loss = math.fsum(lo * nb for lo, nb in pairs) / self.n
        grad_mean = [a / self.n for a in self.grad_sum]
        return epoch_loss, math.sqrt(sum(self.squares(g) for g in grad_mean))


def _accumulate(a: Any, g: Any, nb: int) -> Any:
    """Return ``a + g * nb``: into ``a`` itself (an array of the sum's own) for numpy."""
    if type(a) is np.ndarray and type(g) is np.ndarray and a.shape == g.shape:
        a += g * nb  # the same two roundings, one new array fewer
        return a
    return a + g * nb


def _step(loop: _Loop, idx: slice | np.ndarray | None, sums: _EpochSums) -> None:
    """Take one optimizer step on the batch ``idx``; raise _NonFinite before a bad update."""
    cfg, paths = loop.cfg, lambda i: tree.leaf_paths(loop.treedef)[i]
    Xb, yb = _take(cfg.X, idx), _take(cfg.y, idx)
    loss, grads = cfg.objective(loop.params, Xb, yb, cfg.grads_out)
    loss = float(loss)
    if not math.isfinite(loss):
        raise _NonFinite("loss", f"loss is {loss}")
    g_leaves = [
        g if type(g) is np.ndarray and g.dtype.kind in "fc" else tree.as_float_array(g)
        for g in tree.flatten_as(loop.treedef, grads, "grads")
    ]
    nb = cfg.n if idx is None else _xp.rows(Xb)
    if nb == cfg.n:  # the epoch's gradient: its squares give the norm and prove it finite
        squares, bad = loop.squares.finite(g_leaves)
    else:
        squares, bad = [], _nonfinite_leaves(g_leaves)
    if bad is not None:
        raise _NonFinite(f"gradient leaf grads{paths(bad)}", "")
    lr_fn = getattr(cfg.opt, "learning_rate", None)
    if lr_fn is not None:
        sums.lr = float(lr_fn(loop.step))
    new_params, new_state = loop.update(grads)
    same = new_params is loop.params and len(loop.leaves) == len(g_leaves)
    new_leaves = loop.leaves if same else tree.flatten_as(loop.treedef, new_params)
    if not (same and loop.in_place):  # an in-place step's leaves are numpy arrays
        new_leaves = [p if _xp.is_foreign(p) else np.asarray(p) for p in new_leaves]
    bad = _nonfinite_leaves(new_leaves)
    if bad is not None:
        if new_params is loop.params:  # an in-place step: put back the params before it
            loop.undo()
        raise _NonFinite(f"parameter leaf params{paths(bad)} after the update", "")
    loop.params, loop.state, loop.leaves = new_params, new_state, new_leaves
    loop.step += 1
    sums.add(loss, nb, g_leaves, squares)


def _run_epoch(loop: _Loop, rng: np.random.Generator) -> float:
    """Run one pass over the data, record its history row and the best epoch; return its loss."""
    cfg, t0 = loop.cfg, time.perf_counter()
    sums = _EpochSums(cfg.n, loop.squares)
    for idx in _batches(cfg.n, cfg.batch_size, cfg.shuffle, rng):
        _step(loop, idx, sums)
    epoch_loss, grad_norm = sums.loss_and_grad_norm()
    val_loss = math.nan
    if cfg.validation is not None:
        val_loss = float(cfg.objective(loop.params, *cfg.validation)[0])
        if not math.isfinite(val_loss):
            raise _NonFinite("validation loss", f"validation loss is {val_loss}")
    loop.history.append(
        epoch=loop.epoch,
        loss=epoch_loss,
        val_loss=val_loss,
        grad_norm=grad_norm,
        lr=sums.lr,
        seconds=time.perf_counter() - t0,
        n_steps=loop.step,
    )
    if cfg.validation is not None and val_loss < loop.best_val:
        best = _frozen(loop.params) if loop.in_place else loop.params
        loop.best_val, loop.best_params, loop.best_epoch = val_loss, best, loop.epoch
        loop.since_best = 0
    else:
        loop.since_best += 1
    return epoch_loss


# --------------------------------------------------------------------------- stop rules

Stop = tuple[str, str] | None  # (stop_reason, message), or None to go on


def _stop_by_callback(loop: _Loop) -> Stop:
    """Run every callback on a snapshot; stop if any returned a truthy value."""
    if not loop.cfg.callbacks:
        return None  # no snapshot: it copies every live buffer
    epoch = loop.epoch
    snapshot = loop.result("running", f"after epoch {epoch}")
    answers = [cb(epoch, snapshot) for cb in loop.cfg.callbacks]  # all run, even after a stop
    if any(a is not None and bool(a) for a in answers):
        return "callback", f"a callback asked to stop after epoch {epoch}"
    return None


def _stop_by_tol(loop: _Loop) -> Stop:
    """Stop when the gradient norm, or the relative loss change, falls below ``tol``."""
    tol, mode, h = loop.cfg.tol, loop.cfg.tol_mode, loop.history
    if tol is None:
        return None
    if mode == "grad_norm" and h.grad_norm[-1] < tol:
        return "tol", f"tol_mode='grad_norm': gradient norm {h.grad_norm[-1]:.3g} < tol={tol:g}"
    if mode == "rel_loss" and len(h) >= 2:
        prev = h.loss[-2]
        rel = abs(h.loss[-1] - prev) / max(abs(prev), np.finfo(float).tiny)
        if rel < tol:
            return "tol", f"tol_mode='rel_loss': relative loss change {rel:.3g} < tol={tol:g}"
    return None


def _stop_by_patience(loop: _Loop) -> Stop:
    """Stop after ``patience`` epochs without a strictly lower validation loss."""
    patience = loop.cfg.patience
    if patience is not None and loop.since_best >= patience:
        return "early_stopping", (
            f"validation loss did not improve for {patience} epochs; "
            f"restored params of epoch {loop.best_epoch}"
        )
    return None


# checked after each epoch, in this order; the first rule that answers stops the run
_STOP_RULES: tuple[Callable[[_Loop], Stop], ...] = (
    _stop_by_callback,
    _stop_by_tol,
    _stop_by_patience,
)


def _first_stop(loop: _Loop) -> Stop:
    for rule in _STOP_RULES:
        stop = rule(loop)
        if stop is not None:
            return stop
    return None


# --------------------------------------------------------------------------- fit


def _as_optimizer(optimizer: Any) -> optim.Optimizer:
    if isinstance(optimizer, str):
        return optim.get(optimizer)
    if isinstance(optimizer, optim.GradientTransformation):
        return optim.as_optimizer(optimizer)
    return optimizer


def _start(params: Any, X: Any) -> tuple[Any, tree.TreeDef]:
    """Return a float copy of ``params`` and its structure, checking every leaf is finite.

    When ``X`` is another library's array (torch, CuPy, JAX, ...), numpy leaves are copied
    into X's library and device, keeping their dtype.
    """
    leaves, treedef = tree.flatten(params)
    ref = X if _xp.is_foreign(X) else None
    leaves = [_float_copy(p, ref) for p in leaves]
    bad = _nonfinite_leaves(leaves)
    if bad is not None:
        raise ValueError(f"fit: initial params{tree.leaf_paths(treedef)[bad]} is not finite")
    return optim.join(tree.unflatten(treedef, leaves)), treedef


def _gradient_buffer(objective: Any, opt: Any, params: Any, treedef: tree.TreeDef) -> Any:
    """Return gradient arrays shaped like ``params``, views of one flat array, for an
    objective that takes ``out=`` (as :meth:`symgrad.models.MLP.objective`) to write into
    at every step; None unless the params are joined and ``opt`` steps in place (its state
    then never holds the gradient arrays, which the next step overwrites)."""
    leaves = tree.leaves(params)
    if getattr(opt, "step", None) is None or not takes_out(objective):
        return None
    if not leaves or type(leaves[0]) is not np.ndarray or _inplace.joined(leaves) is None:
        return None
    return optim.join(tree.unflatten(treedef, [np.zeros_like(p) for p in leaves]))


def takes_out(objective: Any) -> bool:
    """Tell whether ``objective`` has a parameter named ``out`` that can be passed by keyword."""
    try:
        found = inspect.signature(objective).parameters.get("out")
    except (TypeError, ValueError):  # no signature to read (some builtins and extensions)
        return False
    return found is not None and found.kind in (found.POSITIONAL_OR_KEYWORD, found.KEYWORD_ONLY)


def _float_copy(p: Any, ref: Any) -> Any:
    """Return a float copy of one leaf: numpy, or in ``ref``'s library when ``ref`` is given
    (or when the leaf already is another library's array)."""
    p = tree.as_float_array(p)
    if ref is not None and not _xp.is_foreign(p):
        p = _xp.like(p, ref)
    if _xp.is_foreign(p):
        return _xp.namespace(p).asarray(p, copy=True)
    return np.array(p, copy=True)


#: Optimizers that solve with numpy/scipy linear algebra (symgrad.newton): numpy data only.
_NUMPY_ONLY = frozenset({"newton", "damped_newton", "newton_cg"})


def _check_data(X: Any, y: Any, params: Any, opt: Any) -> int:
    n = _xp.rows(X)
    if n == 0:
        raise ValueError("fit: X is empty")
    if y is not None and _xp.rows(y) != n:
        raise ValueError(f"fit: len(X)={n} but len(y)={_xp.rows(y)}")
    foreign = _xp.first_foreign([X, y, *tree.leaves(params)])
    if foreign is not None and getattr(opt, "name", None) in _NUMPY_ONLY:
        raise TypeError(
            f"fit: optimizer {opt.name!r} solves with numpy linear algebra and takes numpy "
            f"arrays, got {type(foreign).__module__}.{type(foreign).__name__}; convert them "
            "(e.g. np.asarray(X) or X.cpu().numpy()) or use a first-order optimizer (adam, sgd)"
        )
    return n


def _non_finite(loop: _Loop, exc: _NonFinite, on_non_finite: str) -> FitResult:
    """Return (or raise, in a NonFiniteError) the result of a run stopped by a NaN or inf."""
    msg = (
        f"non-finite {exc.where} at epoch {loop.epoch}, step {loop.step} (0-based)"
        + (f": {exc.detail}" if exc.detail else "")
        + "; result.params holds the last finite parameters"
    )
    res = dataclasses.replace(loop.result("non_finite", msg), warnings=(msg,))
    if on_non_finite == "raise":
        raise NonFiniteError(
            msg, result=res, epoch=loop.epoch, step=loop.step, where=exc.where
        ) from None
    return res


def fit(
    objective: Objective,
    params: Any,
    X: Any,
    y: Any,
    *,
    optimizer: optim.Optimizer | optim.GradientTransformation | str,
    epochs: int,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = 0,
    validation: tuple[Any, Any] | None = None,
    tol: float | None = None,
    tol_mode: str = "grad_norm",
    patience: int | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
    on_non_finite: str = "raise",
) -> FitResult:
    """Minimise ``objective(params, X, y) -> (loss, grads)`` with ``optimizer``; return a FitResult.

    Args:
        objective: any callable returning the scalar loss and a gradient pytree shaped like
            ``params`` (e.g. generated symgrad code). One that takes an ``out`` keyword (as
            :meth:`symgrad.models.MLP.objective`) is given, with an optimizer that steps in
            place, gradient arrays shaped like ``params`` (views of one flat array) to
            write into and return; the same arrays at every step.
        params: initial parameter pytree; it is never modified. fit works on a copy whose
            numpy leaves are views of one flat array (:func:`symgrad.optim.join`), so that
            the in-place steps run one ufunc call per operation over all of them.
        X, y: data indexed along axis 0 for mini-batches (``y`` may be ``None``). torch,
            CuPy, JAX or other Array API arrays keep the run in that library: params are
            copied into X's library, the optimizer updates them there out of place (the
            ``symgrad.newton`` optimizers take numpy only and raise TypeError), and
            ``result.params`` come back as its arrays; the history holds Python floats.
        optimizer: an :class:`symgrad.optim.Optimizer`, a gradient transformation such as
            ``optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))``, or a registry
            name (default settings). The named ``sgd``, ``adam`` and ``adamw`` take their
            in-place fast path on numpy params (the same numbers as ``update``; what a
            step overwrites is saved, so a non-finite step is undone).
        epochs: maximum number of passes over the data.
        batch_size: ``None`` for one full-batch update per epoch; otherwise mini-batches of
            this size (the last may be smaller), reshuffled every epoch when ``shuffle``.
        seed: seeds ``np.random.default_rng`` for shuffling: same seed, bit-identical run.
        validation: ``(X_val, y_val)``; its loss is recorded after every epoch.
        tol: stop (reason ``"tol"``) when ``tol_mode="grad_norm"`` and the epoch gradient norm
            is below ``tol``, or when ``tol_mode="rel_loss"`` and
            ``|loss - prev_loss| / |prev_loss| < tol`` between consecutive epochs.
        patience: with ``validation``, stop (reason ``"early_stopping"``) after this many
            epochs without a strictly lower validation loss. Whenever ``patience`` is set, the
            returned params are those of the best validation epoch (``best_epoch``).
        callbacks: ``cb(epoch, info)`` called after each epoch with a :class:`FitResult`
            snapshot (``stop_reason="running"``; treat it as read-only). Returning ``True``
            (any truthy value) stops training after every callback of that epoch has run
            (reason ``"callback"``); ``None``/``False`` continues.
        progress: tqdm bar over epochs if ``True``, or if ``None`` and stderr is a TTY;
            silent otherwise (and silently without tqdm installed when ``None``).
        on_non_finite: a non-finite loss, gradient leaf, updated parameter or validation loss
            raises :class:`NonFiniteError` (``"raise"``) or returns its ``.result``
            (``"stop"``): params before the failing step, reason ``"non_finite"``.

    After each epoch the checks run in this order: callbacks, tol, early stopping, epochs.
    """
    _check_args(
        epochs=epochs,
        batch_size=batch_size,
        tol=tol,
        tol_mode=tol_mode,
        patience=patience,
        validation=validation,
        on_non_finite=on_non_finite,
    )
    checked = _check_inputs(objective, optimizer, X, y)
    opt = _as_optimizer(optimizer)
    n = _check_data(X, y, params, opt)
    params, treedef = _start(params, X)
    cfg = _Settings(checked, opt, X, y, n, batch_size, shuffle, validation, tol, tol_mode,
                    patience, tuple(callbacks),
                    _gradient_buffer(objective, opt, params, treedef))  # fmt: skip
    loop = _Loop(cfg, treedef, params, opt.init(params), best_params=params,
                 leaves=tree.leaves(params))  # fmt: skip
    rng = np.random.default_rng(seed)
    bar = progress_bar(progress, epochs)
    stop: Stop = None
    try:
        for loop.epoch in range(epochs):
            epoch_loss = _run_epoch(loop, rng)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{epoch_loss:.4g}", refresh=False)
            stop = _first_stop(loop)
            if stop is not None:
                break
    except _NonFinite as exc:
        return _non_finite(loop, exc, on_non_finite)
    finally:
        if bar is not None:
            bar.close()
    reason, message = stop or ("epochs", f"completed epochs={epochs}")
    final = loop.best_params if patience is not None and loop.best_epoch is not None else None
    return loop.result(reason, message, final)
