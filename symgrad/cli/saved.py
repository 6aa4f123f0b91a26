"""The model file ``symgrad train`` writes and ``symgrad predict`` reads: an .npz of plain arrays
(parameters, standardization, class labels) and one JSON metadata entry (model kind, kernels,
feature and label names, metrics, symgrad version), with a checksum over both.

Nothing in it is pickled or evaluated: it is read with ``allow_pickle=False`` and
``json.loads``. A kernel that was the user's own spec is recorded by name, expression and a
hash of the spec; the file never carries code, so predicting with a model whose activation is
a user spec needs that spec again (``--activation FILE.py:NAME``), checked against the hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symgrad.errors import DataError

FORMAT = "symgrad-model"
FORMAT_VERSION = 1
META, CHECKSUM = "metadata", "checksum"
#: the arrays beside the parameters (which keep their own names: W, b, W0, b0 ...)
ARRAYS = ("x_mean", "x_scale", "y_mean", "y_scale", "classes")
KINDS = ("linear", "logistic", "softmax", "mlp")
#: what an MLP needs of its loss to predict: the task (the loss itself only shapes training)
STAND_IN_LOSS = {
    "regression": "mse",
    "binary": "binary_cross_entropy_with_logits",
    "multiclass": "softmax_cross_entropy",
}


def spec_hash(spec: Any) -> str:
    """Return a SHA-256 of what defines a spec: name, role, inputs, hyper-parameters and
    expression (``sympy.srepr``), so an edited spec no longer matches."""
    import sympy as sp

    fields = [
        spec.name,
        spec.role,
        [str(s) for s in spec.inputs],
        [[str(s), float(v)] for s, v in spec.hyper],
        sp.srepr(spec.expr),
    ]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def describe(choice: Any) -> dict[str, Any] | None:
    """Return a kernel choice (a name or Spec, optionally with hyper-parameters) as JSON data."""
    kernel, hyper = choice if isinstance(choice, tuple) else (choice, {})
    if kernel is None:
        return None
    out: dict[str, Any] = {"hyper": {k: float(v) for k, v in hyper.items()}}
    if isinstance(kernel, str):
        return {"name": kernel, **out}
    spec = {"origin": kernel.origin, "expression": str(kernel.expr), "sha256": spec_hash(kernel)}
    return {"name": kernel.name, **out, "spec": spec}


def describe_model(built: Any, n_outputs: int | None = None) -> dict[str, Any]:
    """Return the metadata that says what ``built`` (a ``cli.build.Built``) is: the model's
    kind, task and shape, and its kernels; ``n_outputs`` of a linear model's 2-D target."""
    from symgrad import __version__

    info: dict[str, Any] = {"kind": built.kind, "task": built.task}
    if built.kind == "mlp":
        info |= {"sizes": list(built.model.sizes), "output": built.model.task}
    elif built.kind == "linear":
        info["n_outputs"] = n_outputs
    kernels = {role: describe(choice) for role, choice in built.choices.items()}
    return {"symgrad_version": __version__, "model": info, "kernels": kernels}


def _checksum(meta_text: str, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(meta_text.encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def encode(meta: dict[str, Any], params: dict[str, Any], arrays: dict[str, Any]) -> bytes:
    """Return the model file's bytes: ``params`` and ``arrays`` (x_mean, x_scale, classes …)
    as float64 arrays, ``meta`` as JSON, and their checksum."""
    clash = sorted(set(params) & {*ARRAYS, META, CHECKSUM})
    if clash:
        raise ValueError(f"parameter name {clash[0]!r} is reserved in model files")
    out = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    out |= {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if v is not None}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    buf = io.BytesIO()
    np.savez(buf, **out, **{META: np.array(text), CHECKSUM: np.array(_checksum(text, out))})
    return buf.getvalue()


@dataclass(frozen=True)
class SavedModel:
    """A model file read back and checked: its metadata, parameters and other arrays."""

    name: str
    meta: dict[str, Any]
    params: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]

    @property
    def features(self) -> list[str]:
        """Return the feature names, in the order the model was trained on."""
        return self.meta["features"]

    @property
    def classes(self) -> np.ndarray | None:
        """Return the class label values (None for a regressor)."""
        return self.arrays.get("classes")


def _read(path: Path, name: str) -> tuple[str, str, dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DataError(f"{name}: not a symgrad model file (an .npy array, not an .npz)")
            if META not in data.files or CHECKSUM not in data.files:
                raise DataError(
                    f"{name}: not a symgrad model file (no {META!r} entry; "
                    "`symgrad train -o FILE.npz` writes one)"
                )
            arrays = {k: data[k] for k in data.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{name}: not a readable model file ({exc})") from None
    meta, check = arrays.pop(META), arrays.pop(CHECKSUM)
    if meta.shape != () or meta.dtype.kind != "U" or check.shape != () or check.dtype.kind != "U":
        raise DataError(f"{name}: not a symgrad model file (its {META!r} entry is not text)")
    return str(meta), str(check), arrays


def _parse(name: str, text: str) -> dict[str, Any]:
    def constant(value: str) -> float:
        raise ValueError(f"{value} is not allowed")

    try:
        meta = json.loads(text, parse_constant=constant)
    except ValueError as exc:
        raise DataError(f"{name}: its metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{name}: not a symgrad model file (format is not {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(
            f"{name}: model format version {version!r} is newer than this symgrad reads "
            f"({FORMAT_VERSION}); upgrade symgrad"
        )
    return meta


def _field(meta: dict, name: str, key: str, kind: type | tuple[type, ...]) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind):
        raise DataError(f"{name}: its metadata has no valid {key!r}")
    return value


def load(path: Path) -> SavedModel:
    """Read and check a model file; raise DataError naming what is wrong with it."""
    name = path.as_posix()
    text, check, arrays = _read(path, name)
    if _checksum(text, arrays) != check:
        raise DataError(f"{name}: checksum mismatch: the file was changed after symgrad wrote it")
    meta = _parse(name, text)
    model = _field(meta, name, "model", dict)
    if model.get("kind") not in KINDS:
        raise DataError(f"{name}: unknown model kind {model.get('kind')!r}")
    features = _field(meta, name, "features", list)
    if not features or not all(isinstance(f, str) for f in features):
        raise DataError(f"{name}: its metadata has no valid 'features'")
    for key, a in arrays.items():
        if a.dtype != np.float64 or not np.all(np.isfinite(a)):
            raise DataError(f"{name}: array {key!r} is not finite float64 numbers")
    params = {k: a for k, a in arrays.items() if k not in ARRAYS}
    rest = {k: a for k, a in arrays.items() if k in ARRAYS}
    for key in ("x_mean", "x_scale"):
        if rest.get(key, np.empty(0)).shape != (len(features),):
            raise DataError(f"{name}: {key!r} does not match its {len(features)} features")
    return SavedModel(name, meta, params, rest)


# --------------------------------------------------------------------------- predicting


def _activation(saved: SavedModel, user: Any) -> Any:
    """Return the MLP activation choice: the built-in recorded, or ``user``'s spec if its
    hash matches the one recorded."""
    info = _field(saved.meta.get("kernels", {}), saved.name, "activation", dict)
    hyper = info.get("hyper") or {}
    recorded = info.get("spec")
    if recorded is None:
        if user is not None:
            raise DataError(f"--activation: {saved.name} uses the built-in {info.get('name')!r}")
        return (info.get("name"), hyper) if hyper else info.get("name")
    if user is None:
        raise DataError(
            f"{saved.name}: its activation {info.get('name')!r} is your own spec "
            f"({recorded.get('origin') or 'no origin'}); pass --activation FILE.py:NAME"
        )
    if spec_hash(user) != recorded.get("sha256"):
        raise DataError(
            f"--activation: spec {user.name!r} differs from the one the model was trained with"
        )
    return (user, hyper) if hyper else user


def _check_sizes(saved: SavedModel, sizes: Any) -> None:
    """Raise DataError unless an MLP's recorded ``sizes`` are its weights' shapes (checked
    before the model allocates anything)."""
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise DataError(f"{saved.name}: its model description has no valid layer sizes")
    shapes = [saved.params.get(f"W{i}", np.empty(0)).shape for i in range(len(sizes) - 1)]
    if shapes != list(zip(sizes[:-1], sizes[1:], strict=True)):
        raise DataError(f"{saved.name}: its layer sizes do not match its weights")


def rebuild(saved: SavedModel, activation: Any = None) -> Any:
    """Return a model object that predicts with the saved parameters (their shapes checked).

    Prediction needs no loss beyond its task and no regularizer, so a model trained with a
    user's loss or regularizer predicts without either.
    """
    from symgrad import models

    info, d = saved.meta["model"], len(saved.features)
    kind, classes = info["kind"], saved.classes
    try:
        if kind == "linear":
            model = models.LinearRegression()
            init = model.init(0, n_features=d, n_outputs=info.get("n_outputs"))
        elif kind == "logistic":
            model = models.LogisticRegression()
            init = model.init(0, n_features=d)
        elif kind == "softmax":
            model = models.SoftmaxRegression(0 if classes is None else len(classes))
            init = model.init(0, n_features=d)
        else:
            output = STAND_IN_LOSS[info.get("output")]
            _check_sizes(saved, info.get("sizes"))
            model = models.MLP(info["sizes"], _activation(saved, activation), output)
            init = model.init(0)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{saved.name}: its model description is not valid ({exc})") from None
    shapes = {k: np.shape(v) for k, v in init.items()}
    if shapes != {k: v.shape for k, v in saved.params.items()}:
        raise DataError(f"{saved.name}: its parameters do not fit a {kind} model on {d} features")
    return model


def predict(saved: SavedModel, model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return predictions for raw features ``X`` (columns in the model's feature order): label
    values and class probabilities ``(n, classes)`` for classifiers, values and None otherwise."""
    arrays = saved.arrays
    Xs = (X - arrays["x_mean"]) / arrays["x_scale"]
    classes = saved.classes
    if classes is None:
        out = np.asarray(model.predict(saved.params, Xs), dtype=float)
        if "y_scale" in arrays:
            out = out * arrays["y_scale"] + arrays["y_mean"]
        return out, None
    proba = np.asarray(model.predict_proba(saved.params, Xs), dtype=float)
    if proba.ndim == 1:
        proba = np.column_stack([1 - proba, proba])
    return classes[np.asarray(model.predict(saved.params, Xs), dtype=np.intp)], proba


def finite_metrics(values: dict[str, float]) -> dict[str, float]:
    """Return the metrics JSON can hold (finite ones; R^2 of a constant target is NaN)."""
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}
