"""Tabular data for training: loading (CSV, parquet, .npz, bundled datasets), the hold-out split,
standardization and the metrics a fit is judged by.

CSV and parquet are read by pandas and pyarrow when they are installed; the standard library's
``csv`` module is the fallback, and the reference for every error message: when the fast reader
refuses a file, or the frame it parsed holds a missing or non-finite value, the file is read
again by the stdlib reader, which names the line and column (or accepts the file).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symgrad.errors import DataError

#: scikit-learn datasets that ship inside the package (no download).
BUNDLED = ("breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine")
#: Integer labels with at most this many distinct values are class labels.
MAX_CLASSES = 20
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = (".csv", ".npz", *PARQUET_SUFFIXES)


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` (n, d), targets ``y`` (n,) or (n, k), and where they came from."""

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    label_name: str = "y"
    #: False when the names are made up (x0, x1, ...: no header row): columns match by position
    named: bool = True


# --------------------------------------------------------------------------- CSV


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


def _rows(path: Path, name: str, first_only: bool = False) -> list[tuple[int, list[str]]]:
    """Return the CSV's non-blank rows (or just the first) with their 1-based line numbers."""
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for i, row in enumerate(csv.reader(fh), start=1):
                if any(c.strip() for c in row):
                    rows.append((i, row))
                    if first_only:
                        break
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"{name}: not a valid CSV file ({exc})") from None
    return rows


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


def _header(first: list[str]) -> list[str] | None:
    """Return the header row's names, or None when the first row is data (all numbers)."""
    return None if all(_is_number(c) for c in first) else [c.strip() for c in first]


def _parse_stdlib(path: Path, name: str) -> tuple[list[str] | None, np.ndarray]:
    """Read the whole CSV with the ``csv`` module, checking every cell; return header, values."""
    rows = _rows(path, name)
    if not rows:
        raise DataError(f"{name}: the file is empty")
    header = _header(rows[0][1])
    if header is not None:
        rows = rows[1:]
    if not rows:
        raise DataError(f"{name}: has a header but no data rows")
    width = len(header) if header else len(rows[0][1])
    values = np.empty((len(rows), width))
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise DataError(f"{name}: line {line} has {len(cells)} fields, expected {width}")
        for c, cell in enumerate(cells):
            values[r, c] = _cell_value(
                cell, f"{name}: line {line}", header[c] if header else str(c)
            )
    return header, values


def _exact_floats(pd: Any) -> dict[str, str]:
    """Return the read_csv option that parses the same floats as Python's ``float()``, bit for
    bit: pandas 3 always does (and deprecates the option), pandas 2 needs ``round_trip``."""
    return {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _parse_pandas(path: Path, name: str) -> tuple[list[str] | None, np.ndarray] | None:
    """Read the CSV with pandas; return None (read it with the stdlib) when pandas is missing,
    refuses the file, or parses a missing or non-finite value (the stdlib says where)."""
    try:
        import pandas as pd
    except ImportError:
        return None
    first = _rows(path, name, first_only=True)
    if not first:
        raise DataError(f"{name}: the file is empty")
    header = _header(first[0][1])
    try:
        frame = pd.read_csv(
            path, header=None if header is None else 0, index_col=False, **_exact_floats(pd)
        )
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if frame.shape[0] == 0 or not all(d.kind in "iuf" for d in frame.dtypes):
        return None  # text in a column: the stdlib reader names the cell
    values = frame.to_numpy(dtype=np.float64, copy=False)
    if not np.isfinite(values).all():
        return None
    if header is not None and len(header) != values.shape[1]:
        return None
    return header, values


@dataclass(frozen=True)
class Table:
    """A checked numeric table: finite float64 ``values`` and its column names (None when the
    file had no header row)."""

    name: str
    header: list[str] | None
    values: np.ndarray

    @property
    def columns(self) -> list[str]:
        """Return the column names: the header's, else ``x0, x1, ...``."""
        return self.header or [f"x{i}" for i in range(self.values.shape[1])]


def read_csv(path: Path, fast: bool = True) -> Table:
    """Read a numeric CSV with an optional header row: through pandas when installed and
    ``fast``, else (or where pandas finds a problem) through the stdlib reader."""
    name = path.as_posix()
    parsed = (_parse_pandas(path, name) if fast else None) or _parse_stdlib(path, name)
    return Table(name, *parsed)


def load_csv(path: Path, target: str | None = None) -> Dataset:
    """Read a numeric CSV (an optional header row); ``target`` names the label column (last)."""
    return _labelled(read_csv(path), target)


def _labelled(table: Table, target: str | None) -> Dataset:
    """Split a table into features and the label column named or numbered ``target`` (last)."""
    name, header, values = table.name, table.header, table.values
    width = values.shape[1]
    if width < 2:
        raise DataError(f"{name}: needs at least two columns (features and a label)")
    col = _column_index(target, header, width, name)
    names = table.columns
    features = [i for i in range(width) if i != col]
    # the label at either end leaves the features a view; elsewhere they are copied out
    X = values[:, features[0] : features[-1] + 1] if col in (0, width - 1) else values[:, features]
    feature_names = tuple(names[i] for i in features)
    return Dataset(name, X, values[:, col].copy(), feature_names, names[col], header is not None)


# --------------------------------------------------------------------------- parquet


def _parquet_column(column: Any, name: str, label: str) -> np.ndarray:
    """Return one parquet column as float64, or raise DataError naming the first bad row."""
    import pyarrow as pa

    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(
            f"{name}: column {label!r} holds {kind}, not numbers "
            "(encode categories as numbers first)"
        )
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{name}: row {row + 1}, column {label!r} is empty (missing value)")
    values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"{name}: row {bad[0] + 1}, column {label!r} is {values[bad[0]]} (not finite)"
        )
    return values


def read_parquet(path: Path) -> Table:
    """Read a parquet file whose columns are all numeric, with no missing value (pyarrow)."""
    name = path.as_posix()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{name}: reading parquet needs pyarrow (pip install 'symgrad[train]')"
        ) from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{name}: not a readable parquet file ({exc})") from None
    if table.num_rows == 0:
        raise DataError(f"{name}: no samples")
    header = [str(c) for c in table.column_names]
    values = np.empty((table.num_rows, len(header)))
    for i, label in enumerate(header):
        values[:, i] = _parquet_column(table.column(i), name, label)
    return Table(name, header, values)


def load_parquet(path: Path, target: str | None = None) -> Dataset:
    """Read a parquet file of numeric columns; ``target`` names the label column (last)."""
    return _labelled(read_parquet(path), target)


# --------------------------------------------------------------------------- npz and bundled


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
    features = tuple(f"x{i}" for i in range(X.shape[1]))
    return Dataset(name, X, np.asarray(y, dtype=float), features, y_key, named=False)


def load_bundled(name: str) -> Dataset:
    """Load one of scikit-learn's bundled datasets by name (``iris``, ``diabetes``, ...)."""
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"{name}: loading bundled datasets needs scikit-learn installed") from None
    bunch = getattr(datasets, f"load_{name}")()
    feature_names = tuple(str(f) for f in getattr(bunch, "feature_names", ()))
    X = np.asarray(bunch.data, dtype=float)
    return Dataset(name, X, np.asarray(bunch.target, dtype=float), feature_names, "target")


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


def check_file(source: str) -> Path:
    """Return ``source`` as an existing regular file's path, or raise DataError."""
    path = Path(source)
    if path.is_dir():
        raise DataError(f"{source}: is a directory, expected a {'/'.join(SUFFIXES)} file")
    if not path.is_file():
        raise DataError(f"{source}: no such file")
    return path


def read_table(source: str) -> Table:
    """Read a .csv or .parquet file of numbers, or an .npz file's array ``X``, as a Table."""
    path = check_file(source)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return read_parquet(path)
    if suffix == ".npz":
        data = check(load_npz(path, y_key="X"))
        return Table(data.name, None, data.X)
    return read_csv(path)


def load(source: str, target: str | None = None) -> Dataset:
    """Load ``source``: a .csv, .parquet or .npz path, or a scikit-learn bundled dataset's name."""
    path = Path(source)
    key = source.lower().replace("-", "_")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES and not path.exists():
        if key in BUNDLED:
            return check(load_bundled(key))
        raise DataError(f"{source}: no such file, and not a bundled dataset ({', '.join(BUNDLED)})")
    path = check_file(source)
    if suffix == ".npz":
        return check(load_npz(path))
    if suffix in PARQUET_SUFFIXES:
        return check(load_parquet(path, target))
    return check(load_csv(path, target))


# --------------------------------------------------------------------------- split and scaling


def label_classes(y: np.ndarray, max_classes: int = MAX_CLASSES) -> np.ndarray | None:
    """Return the sorted class values of integer labels with 2 to ``max_classes`` classes, else
    None (a regression target)."""
    if y.ndim == 1 and np.all(y == np.round(y)):
        classes = np.unique(y)
        if 2 <= len(classes) <= max_classes:
            return classes
    return None


@dataclass(frozen=True)
class Scaling:
    """An affine map to zero mean and unit variance per column; the default is the identity."""

    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def fitted(cls, a: np.ndarray) -> Scaling:
        """Return the map that standardizes ``a`` (per column; constant columns keep scale 1)."""
        return cls.from_moments(a.mean(axis=0), a.std(axis=0))

    @classmethod
    def from_moments(cls, mean: Any, std: Any) -> Scaling:
        """Return the map to zero mean and unit variance from columns' means and standard
        deviations (computed elsewhere, e.g. on a cluster); a constant column keeps scale 1."""
        std = np.asarray(std, dtype=float)
        return cls(np.asarray(mean, dtype=float), np.where(std > 0, std, 1.0))

    @property
    def scaled(self) -> bool:
        """Return True unless this is the identity."""
        return self.scale is not None

    def forward(self, a: np.ndarray) -> np.ndarray:
        """Return ``a`` standardized."""
        return a if self.scale is None else (a - self.mean) / self.scale

    def inverse(self, a: np.ndarray) -> np.ndarray:
        """Return standardized values in the original units."""
        return a if self.scale is None else a * self.scale + self.mean


def scales_targets(model: Any, standardize: bool) -> bool:
    """Tell whether a fit of ``model`` learns standardized targets: the one policy of the
    in-memory and the Dask fits. An MLP regressor does when the features are standardized
    (its hidden units then see unit-scale signals on both sides, and the predictions and
    metrics go back to the targets' units); linear models and classifiers keep theirs."""
    return bool(standardize) and getattr(model, "task", None) == "regression"


@dataclass
class Split:
    """Standardized train and validation arrays and the feature scaling that made them."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    scaling: Scaling

    @property
    def mean(self) -> np.ndarray:
        """Return the feature means subtracted (zeros without standardization)."""
        return self.scaling.mean if self.scaling.scaled else np.zeros(self.X.shape[1])

    @property
    def scale(self) -> np.ndarray:
        """Return the feature scales divided by (ones without standardization)."""
        return self.scaling.scale if self.scaling.scaled else np.ones(self.X.shape[1])


def _stratified(
    y: np.ndarray, n_val: int, rng: np.random.Generator, classes: np.ndarray
) -> np.ndarray:
    """Return ``n_val`` row indices drawn from each class in proportion to its size (largest
    remainders first; every class keeps a training row)."""
    members = [np.flatnonzero(y == c) for c in classes]
    exact = np.array([len(m) for m in members]) * n_val / len(y)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n_val - take.sum()]:
        take[i] += 1
    take = np.minimum(take, [len(m) - 1 for m in members])
    return np.concatenate([rng.permutation(m)[:k] for m, k in zip(members, take, strict=True)])


def split(
    X: np.ndarray,
    y: np.ndarray,
    fraction: float,
    seed: int,
    standardize: bool,
    classes: np.ndarray | None = None,
) -> Split:
    """Hold out ``fraction`` of the rows for validation (stratified by ``classes`` when given),
    and standardize both parts on the training part's statistics."""
    if not 0 <= fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), got {fraction}")
    n_val = int(round(fraction * len(X)))
    if len(X) - n_val < 1:
        raise DataError(f"{len(X)} samples leave none for training")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    val = order[:n_val] if classes is None else _stratified(y, n_val, rng, classes)
    held = np.zeros(len(X), dtype=bool)
    held[val] = True
    train, val = order[~held[order]], order[held[order]]
    scaling = Scaling.fitted(X[train]) if standardize else Scaling()
    if len(val) == 0:
        return Split(scaling.forward(X[train]), y[train], None, None, scaling)
    return Split(scaling.forward(X[train]), y[train], scaling.forward(X[val]), y[val], scaling)


# --------------------------------------------------------------------------- metrics


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Return R^2 per output, averaged uniformly (scikit-learn's ``r2_score`` default)."""
    y2, p2 = y.reshape(len(y), -1), pred.reshape(len(y), -1)
    ss_res = np.sum((y2 - p2) ** 2, axis=0)
    ss_tot = np.sum((y2 - y2.mean(axis=0)) ** 2, axis=0)
    if np.any(ss_tot == 0):
        return float("nan")
    return float(np.mean(1 - ss_res / ss_tot))


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Return RMSE, R^2, mean and median absolute error of ``pred`` against ``y`` (same shape).

    MAE and the median absolute error show a robust loss's win that RMSE hides when the data
    has outliers. With several outputs each error is averaged over them, as scikit-learn does.
    """
    err = (pred - y).reshape(len(y), -1)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": r2_score(y, pred),
        "mae": float(np.mean(np.abs(err))),
        "median_ae": float(np.mean(np.median(np.abs(err), axis=0))),
    }


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Return the mean negative log-likelihood of class indices ``y`` under ``proba``.

    ``proba`` is P(class 1) for two classes (1-D) or ``(n, classes)``; probabilities are
    clipped to [eps, 1 - eps] as scikit-learn's ``log_loss`` does.
    """
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    eps = np.finfo(p.dtype).eps
    picked = np.clip(p[np.arange(len(y)), np.asarray(y, dtype=np.intp)], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def classification_metrics(
    y: np.ndarray, labels: np.ndarray, proba: np.ndarray | None
) -> dict[str, float]:
    """Return accuracy of ``labels`` and, given probabilities, the log-loss (``y``: indices)."""
    out = {"accuracy": float(np.mean(labels == y))}
    if proba is not None:
        out["log_loss"] = log_loss(y, proba)
    return out
