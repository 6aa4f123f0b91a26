"""Built-in losses: the checked-in generated/losses.py, exposed as symgrad.losses.

The class-axis cross-entropies also take integer class labels for ``y``, as torch's
``cross_entropy`` and optax's ``..._with_integer_labels`` do: the face one-hot encodes them and
calls the emitted kernel, so the maths lives only in generated/losses.py.
"""

from functools import wraps as _wraps

import numpy as _np

from symgrad.resources import load_generated as _load

_module = _load("losses", public=__name__)
__all__ = list(_module.__all__)  # the emitted kernels; one_hot is a helper beside them
# every name, helpers included: the functions name this module (so they pickle), and
# inspect.getmodule(fn) must then hold what their bodies use
globals().update({_k: _v for _k, _v in vars(_module).items() if not _k.startswith("__")})
#: What each kernel is (role, inputs, hyper-parameters, domains, emitted functions).
KERNELS = _module.KERNELS

#: Losses whose ``y`` may be integer class labels of shape ``yhat.shape[:-1]`` as well as
#: one-hot (or probability) rows of ``yhat``'s shape.
LABEL_LOSSES = ("categorical_cross_entropy", "softmax_cross_entropy")

_LABELS_NOTE = """
    Integer class labels: ``y`` may also be labels in [0, C) of shape ``yhat.shape[:-1]`` (an
    integer array, or whole floats where ``y`` cannot be read as target rows); the result is
    the one-hot result, as torch's ``cross_entropy`` with class indices.
"""


def _with_note(doc: str) -> str:
    """Return ``doc`` with the integer-labels note after its first paragraph, so the formula
    and the 'As plain numpy' block stay where readers (and the docstring's own test) find
    them."""
    summary, sep, rest = doc.partition("\n\n")
    return summary + "\n" + _LABELS_NOTE + (sep[1:] + rest if sep else "")


def one_hot(labels, n_classes, *, dtype=_np.float64, name="one_hot"):
    """Return integer class ``labels`` (any shape) as one-hot rows on a new last axis of
    ``n_classes``; whole floats are accepted, anything else is a ValueError naming ``name``."""
    y = _np.asarray(labels)
    if y.dtype.kind == "f":
        if not _np.all(_np.isfinite(y)) or _np.any(y != _np.round(y)):
            bad = y[~_np.isfinite(y) | (y != _np.round(y))].flat[0]
            raise ValueError(
                f"{name}: class labels must be whole numbers in [0, {n_classes}), got {float(bad)!r}; "
                "pass one-hot (or probability) rows for soft labels"
            )
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{name}: class labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{name}: class labels must lie in [0, {n_classes}) for {n_classes} classes, got "
            f"values from {y.min():g} to {y.max():g}"
        )
    out = _np.zeros((*y.shape, n_classes), dtype)
    _np.put_along_axis(out, y.astype(_np.intp)[..., None], 1, axis=-1)
    return out


def _targets(name, yhat, y):
    """Return ``y`` as the kernel ``name`` takes it: one-hot rows when ``y`` holds class labels
    of shape ``yhat.shape[:-1]``, else as given (target rows, or rows that broadcast)."""
    try:
        shape, given = _np.shape(yhat), _np.shape(y)
    except (TypeError, ValueError):  # not arrays of numbers: the kernel says so, naming which
        return y
    if given == shape or not shape:  # target rows (the models' call) or no class axis
        return y
    y = _np.asarray(y)
    if y.dtype.kind not in "biuf":
        return y
    try:
        _np.broadcast_shapes(given, shape)
        rows = True
    except ValueError:
        rows = False
    if given == shape[:-1] and (y.dtype.kind in "iu" or (y.dtype.kind == "f" and not rows)):
        yhat = _np.asarray(yhat)
        dtype = yhat.dtype if yhat.dtype in (_np.float32, _np.float64) else _np.float64
        return one_hot(y, shape[-1], dtype=dtype, name=name)
    if not rows:
        raise ValueError(
            f"{name}: y of shape {given} is neither one-hot (or probability) rows of yhat's "
            f"shape {shape} nor integer class labels of shape {shape[:-1]}"
        )
    return y


def _labelled(kernel):
    """Return ``kernel`` with its ``y`` argument passed through :func:`_targets`."""

    @_wraps(kernel)
    def face(yhat, y, *args, **kwargs):
        return kernel(yhat, _targets(kernel.__name__, yhat, y), *args, **kwargs)

    face.__doc__ = _with_note(kernel.__doc__ or "")
    return face


globals().update(
    {fn: _labelled(globals()[fn]) for loss in LABEL_LOSSES for fn in KERNELS[loss]["functions"]}
)
