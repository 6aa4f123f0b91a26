"""Load training data from a CSV or .npz file or a scikit-learn bundled dataset, checked."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symgrad.errors import DataError

#: scikit-learn datasets that ship inside the package (no download).
BUNDLED = ("breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine")


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` (n, d), targets ``y`` (n,) or (n, k), and where they came from."""

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_index(target: str | None, header: list[str] | None, width: int, name: str) -> int:
    if target is None:
        return width - 1
    if header is not None and target in header:
        return header.index(target)
    try:
        index = int(target)
    except ValueError:
        cols = ", ".join(header) if header else f"0 .. {width - 1}"
        raise DataError(f"{name}: no column {target!r} (columns: {cols})") from None
    if not -width <= index < width:
        raise DataError(f"{name}: column index {index} out of range for {width} columns")
    return index % width


def _read_rows(path: Path, name: str) -> list[tuple[int, list[str]]]:
    """Return the CSV's non-blank rows with their 1-based line numbers."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [
                (i, r) for i, r in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in r)
            ]
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"{name}: not a valid CSV file ({exc})") from None


def _cell_value(cell: str, where: str, label: str) -> float:
    """Parse one CSV cell as a finite number; ``where`` and ``label`` place it in errors."""
    text = cell.strip()
    if not text:
        raise DataError(f"{where}, column {label!r} is empty (missing value)")
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            f"{where}, column {label!r}: {text!r} is not a number "
            "(encode categories as numbers first)"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{where}, column {label!r} is {text} (not finite)")
    return value


def load_csv(path: Path, target: str | None = None) -> Dataset:
    """Read a numeric CSV (an optional header row); ``target`` names the label column (last)."""
    name = path.as_posix()
    rows = _read_rows(path, name)
    if not rows:
        raise DataError(f"{name}: the file is empty")
    header = None
    if not all(_is_number(c) for c in rows[0][1]):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{name}: has a header but no data rows")
    width = len(header) if header else len(rows[0][1])
    if width < 2:
        raise DataError(f"{name}: needs at least two columns (features and a label)")
    col = _column_index(target, header, width, name)
    values = np.empty((len(rows), width))
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise DataError(f"{name}: line {line} has {len(cells)} fields, expected {width}")
        for c, cell in enumerate(cells):
            values[r, c] = _cell_value(
                cell, f"{name}: line {line}", header[c] if header else str(c)
            )
    names = header or [f"x{i}" for i in range(width)]
    features = [i for i in range(width) if i != col]
    return Dataset(name, values[:, features], values[:, col], tuple(names[i] for i in features))


def load_npz(path: Path, x_key: str = "X", y_key: str = "y") -> Dataset:
    """Read arrays ``X`` and ``y`` (names configurable) from an .npz file."""
    name = path.as_posix()
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (x_key, y_key) if k not in data.files]
            if missing:
                have = ", ".join(data.files) or "none"
                raise DataError(f"{name}: has no array {missing[0]!r} (arrays: {have})")
            X, y = data[x_key], data[y_key]
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{name}: not a readable .npz file ({exc})") from None
    for key, arr in ((x_key, X), (y_key, y)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DataError(f"{name}: array {key!r} is not numeric (dtype {arr.dtype})")
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"{name}: {x_key!r} must be 2-D (samples, features), got shape {X.shape}")
    return Dataset(name, X, np.asarray(y, dtype=float), tuple(f"x{i}" for i in range(X.shape[1])))


def load_bundled(name: str) -> Dataset:
    """Load one of scikit-learn's bundled datasets by name (``iris``, ``diabetes``, ...)."""
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"{name}: loading bundled datasets needs scikit-learn installed") from None
    bunch = getattr(datasets, f"load_{name}")()
    feature_names = tuple(str(f) for f in getattr(bunch, "feature_names", ()))
    X = np.asarray(bunch.data, dtype=float)
    return Dataset(name, X, np.asarray(bunch.target, dtype=float), feature_names)


def check(data: Dataset) -> Dataset:
    """Raise DataError on mismatched lengths, NaN or inf, or no samples; return ``data``."""
    X, y = data.X, data.y
    if len(X) == 0:
        raise DataError(f"{data.name}: no samples")
    if len(y) != len(X):
        raise DataError(f"{data.name}: X has {len(X)} rows but y has {len(y)} labels")
    for label, arr in (("X", X), ("y", y)):
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            where = ", ".join(str(int(i)) for i in bad[0])
            raise DataError(
                f"{data.name}: {label} has a non-finite value (NaN or inf) at [{where}]"
            )
    return data


def load(source: str, target: str | None = None) -> Dataset:
    """Load ``source``: a .csv or .npz path, or the name of a scikit-learn bundled dataset."""
    path = Path(source)
    key = source.lower().replace("-", "_")
    if path.suffix.lower() not in (".csv", ".npz") and not path.exists():
        if key in BUNDLED:
            return check(load_bundled(key))
        raise DataError(f"{source}: no such file, and not a bundled dataset ({', '.join(BUNDLED)})")
    if path.is_dir():
        raise DataError(f"{source}: is a directory, expected a .csv or .npz file")
    if not path.is_file():
        raise DataError(f"{source}: no such file")
    if path.suffix.lower() == ".npz":
        return check(load_npz(path))
    return check(load_csv(path, target))
