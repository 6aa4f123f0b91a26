"""Training loop for any ``(loss, grads)`` objective, so generated gradients can be fitted directly.

:func:`fit` drives an :class:`symgrad.optim.Optimizer` over full batches or seeded mini-batches
and stops on an epoch budget, a tolerance, validation early stopping, a callback, or a
non-finite loss/gradient (see :class:`NonFiniteError`). Conventions:

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

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgrad import optim
from symgrad.errors import NonFiniteError
from symgrad.tree import as_float_array as _as_float_array
from symgrad.tree import flatten as _flatten
from symgrad.tree import flatten_as as _flatten_as
from symgrad.tree import leaf_paths as _leaf_paths
from symgrad.tree import unflatten as _unflatten

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
    ``"non_finite"`` (``"running"`` in the snapshots given to callbacks); ``message`` says the
    same in words, including the tolerance mode.
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


class _NonFinite(Exception):
    def __init__(self, where: str, detail: str):
        super().__init__(where)
        self.where = where
        self.detail = detail


def _check_args(
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


def _progress_bar(progress: bool | None, epochs: int) -> Any:
    explicit = progress is not None
    if progress is None:
        try:
            progress = sys.stderr.isatty()
        except (AttributeError, ValueError):
            progress = False
    if not progress:
        return None
    try:
        from tqdm import tqdm
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
    return data[idx]


def _nonfinite_leaves(leaves: Sequence[np.ndarray]) -> int | None:
    for i, leaf in enumerate(leaves):
        if not np.all(np.isfinite(leaf)):
            return i
    return None


def fit(
    objective: Objective,
    params: Any,
    X: Any,
    y: Any,
    *,
    optimizer: optim.Optimizer | str,
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
            ``params`` (e.g. generated symgrad code).
        params: initial parameter pytree; it is never modified.
        X, y: data indexed along axis 0 for mini-batches (``y`` may be ``None``).
        optimizer: an :class:`symgrad.optim.Optimizer` or a registry name (default settings).
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
    _check_args(epochs, batch_size, tol, tol_mode, patience, validation, on_non_finite)
    opt = optim.get(optimizer) if isinstance(optimizer, str) else optimizer
    n = len(X)
    if n == 0:
        raise ValueError("fit: X is empty")
    if y is not None and len(y) != n:
        raise ValueError(f"fit: len(X)={n} but len(y)={len(y)}")

    p_leaves, treedef = _flatten(params)
    p_leaves = [np.array(_as_float_array(p), copy=True) for p in p_leaves]
    bad = _nonfinite_leaves(p_leaves)
    if bad is not None:
        raise ValueError(f"fit: initial params{_leaf_paths(treedef)[bad]} is not finite")
    params = _unflatten(treedef, p_leaves)
    state = opt.init(params)
    lr_fn = getattr(opt, "learning_rate", None)
    rng = np.random.default_rng(seed)
    history = FitHistory()
    step = 0
    best_val, best_params, best_epoch = math.inf, params, None
    since_best = 0

    def result(reason: str, message: str, final_params: Any = None) -> FitResult:
        return FitResult(
            params=params if final_params is None else final_params,
            history=history,
            stop_reason=reason,
            n_steps=step,
            n_epochs=len(history),
            message=message,
            tol_mode=tol_mode if tol is not None else None,
            best_epoch=best_epoch,
            opt_state=state,
        )

    bar = _progress_bar(progress, epochs)
    reason, message = "epochs", f"completed epochs={epochs}"
    epoch = 0
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            losses, sizes, grad_sum, lr_used = [], [], None, math.nan
            for idx in _batches(n, batch_size, shuffle, rng):
                Xb, yb = _take(X, idx), _take(y, idx)
                nb = n if idx is None else len(Xb)
                loss, grads = objective(params, Xb, yb)
                loss = float(loss)
                if not math.isfinite(loss):
                    raise _NonFinite("loss", f"loss is {loss}")
                g_leaves = [_as_float_array(g) for g in _flatten_as(treedef, grads, "grads")]
                bad = _nonfinite_leaves(g_leaves)
                if bad is not None:
                    raise _NonFinite(f"gradient leaf grads{_leaf_paths(treedef)[bad]}", "")
                if lr_fn is not None:
                    lr_used = float(lr_fn(step))
                new_params, new_state = opt.update(grads, state, params)
                bad = _nonfinite_leaves([np.asarray(p) for p in _flatten_as(treedef, new_params)])
                if bad is not None:
                    raise _NonFinite(
                        f"parameter leaf params{_leaf_paths(treedef)[bad]} after the update", ""
                    )
                params, state = new_params, new_state
                step += 1
                losses.append(loss)
                sizes.append(nb)
                if grad_sum is None:
                    grad_sum = g_leaves if nb == n else [g * nb for g in g_leaves]
                else:
                    grad_sum = [a + g * nb for a, g in zip(grad_sum, g_leaves, strict=True)]

            if len(losses) == 1:  # full batch: no weighting round-off
                epoch_loss, grad_mean = losses[0], grad_sum
            else:
                epoch_loss = math.fsum(lo * nb for lo, nb in zip(losses, sizes, strict=True)) / n
                grad_mean = [a / n for a in grad_sum]
            grad_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grad_mean))
            val_loss = math.nan
            if validation is not None:
                val_loss = float(objective(params, validation[0], validation[1])[0])
                if not math.isfinite(val_loss):
                    raise _NonFinite("validation loss", f"validation loss is {val_loss}")
            history.append(
                epoch=epoch,
                loss=epoch_loss,
                val_loss=val_loss,
                grad_norm=grad_norm,
                lr=lr_used,
                seconds=time.perf_counter() - t0,
                n_steps=step,
            )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{epoch_loss:.4g}", refresh=False)
            if validation is not None and val_loss < best_val:
                best_val, best_params, best_epoch, since_best = val_loss, params, epoch, 0
            else:
                since_best += 1

            snapshot = result("running", f"after epoch {epoch}")
            answers = [cb(epoch, snapshot) for cb in callbacks]  # all run, even after a stop
            if any(a is not None and bool(a) for a in answers):
                reason, message = "callback", f"a callback asked to stop after epoch {epoch}"
                break
            if tol is not None:
                if tol_mode == "grad_norm" and grad_norm < tol:
                    reason = "tol"
                    message = f"tol_mode='grad_norm': gradient norm {grad_norm:.3g} < tol={tol:g}"
                    break
                if tol_mode == "rel_loss" and len(history) >= 2:
                    prev = history.loss[-2]
                    rel = abs(epoch_loss - prev) / max(abs(prev), np.finfo(float).tiny)
                    if rel < tol:
                        reason = "tol"
                        message = (
                            f"tol_mode='rel_loss': relative loss change {rel:.3g} < tol={tol:g}"
                        )
                        break
            if patience is not None and since_best >= patience:
                reason = "early_stopping"
                message = (
                    f"validation loss did not improve for {patience} epochs; "
                    f"restored params of epoch {best_epoch}"
                )
                break
    except _NonFinite as exc:
        msg = (
            f"non-finite {exc.where} at epoch {epoch}, step {step} (0-based)"
            + (f": {exc.detail}" if exc.detail else "")
            + "; result.params holds the last finite parameters"
        )
        res = result("non_finite", msg)
        if on_non_finite == "raise":
            raise NonFiniteError(msg, result=res, epoch=epoch, step=step, where=exc.where) from None
        return res
    finally:
        if bar is not None:
            bar.close()

    final = best_params if patience is not None and best_epoch is not None else None
    return result(reason, message, final)
