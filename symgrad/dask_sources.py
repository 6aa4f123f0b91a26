"""Where Dask users keep training data: parquet or CSV globs (``dask.dataframe``), zarr
arrays, npy stacks and globs of ``.npy`` files, read as dask arrays of known chunk sizes
whose blocks are read on the workers. dask is imported only when used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from symgrad.errors import DataError

#: Rows of an ``.npy`` file read per block: about this many bytes.
NPY_BLOCK_BYTES = 32 * 2**20


def as_dask_array(X: Any, what: str) -> Any:
    """Return ``X`` as a dask array, checking dtypes (a DataFrame's columns by name)."""
    import dask.array as da

    if hasattr(X, "to_dask_array"):  # dask DataFrame / Series
        dtypes = X.dtypes  # a DataFrame's per column, a Series' one
        pairs = dtypes.items() if hasattr(dtypes, "items") else [(X.name, dtypes)]
        bad = [f"{name!r} ({dtype})" for name, dtype in pairs if dtype.kind not in "biuf"]
        if bad:
            raise DataError(f"{what}: non-numeric column(s) {', '.join(map(str, bad))}")
        X = X.to_dask_array(lengths=True)
    elif not isinstance(X, da.Array):
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise DataError(f"{what} has dtype {X.dtype}; symgrad needs numbers")
        X = da.from_array(X, chunks=(X.shape[0] or 1,) + X.shape[1:])
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what} has dtype {X.dtype}; symgrad needs numbers")
    if any(math.isnan(c) for dim in X.chunks for c in dim):
        raise DataError(
            f"{what} has unknown chunk sizes; call .compute_chunk_sizes() on it, or "
            "to_dask_array(lengths=True) on a DataFrame"
        )
    return X


def read_table(source: str, label: str | None = None) -> tuple[Any, Any, list[str]]:
    """Return (X, y, feature names) as dask arrays from a parquet or CSV glob (or folder),
    a zarr array, an npy stack (``da.to_npy_stack``'s folder) or a glob of ``.npy`` files.

    ``label`` names the target column (a column index for arrays; default: the last).
    Partitions are read lazily; only their row counts are computed, so the arrays have known
    chunk sizes.
    """
    import glob

    if _is_array_source(source):
        return _read_array(source, label)
    import dask.dataframe as dd

    stem = source.rstrip("/").lower()
    reader = dd.read_csv if stem.endswith((".csv", ".csv.gz", ".txt")) else dd.read_parquet
    if not glob.glob(source) and "://" not in source:
        raise DataError(f"{source}: no file matches")
    try:
        frame = reader(source)
    except (OSError, ValueError) as exc:
        raise DataError(f"{source}: cannot read ({exc})") from None
    columns = list(frame.columns)
    target = columns[-1] if label is None else label
    if target not in columns:
        raise DataError(
            f"{source}: no column {target!r}; columns are {', '.join(map(str, columns))}"
        )
    table = as_dask_array(frame, source)  # every column checked; one set of row counts
    keep = [i for i, c in enumerate(columns) if c != target]
    return table[:, keep], table[:, columns.index(target)], [str(columns[i]) for i in keep]


def _is_array_source(source: str) -> bool:
    from pathlib import Path

    path = Path(source.rstrip("/"))
    markers = ("info", ".zarray", "zarr.json")  # npy stack, zarr v2, zarr v3
    return source.lower().rstrip("/").endswith((".npy", ".zarr")) or any(
        (path / m).is_file() for m in markers
    )


def _read_array(source: str, label: str | None) -> tuple[Any, Any, list[str]]:
    """(X, y, names) from a 2-D zarr array, npy stack or ``.npy`` glob: y is one column."""
    table = _open_array(source)
    if table.ndim != 2 or table.shape[1] < 2:
        raise DataError(f"{source}: expected a 2-D table of columns, got shape {table.shape}")
    width = table.shape[1]
    try:
        col = width - 1 if label is None else int(label)
    except ValueError:
        raise DataError(f"{source}: an array's label is a column index, got {label!r}") from None
    if not -width <= col < width:
        raise DataError(f"{source}: no column {col}; the array has {width} columns")
    col %= width
    keep = [i for i in range(width) if i != col]
    table = as_dask_array(table, source)
    return table[:, keep], table[:, col], [f"x{i}" for i in keep]


def _npy_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    head = np.load(path, mmap_mode="r")  # reads the header; maps, but touches no rows
    return head.shape, head.dtype


def _npy_rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of an .npy file, read through a memory map (runs on a worker)."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def _open_array(source: str) -> Any:
    import glob
    import re
    from pathlib import Path

    import dask
    import dask.array as da

    path = Path(source.rstrip("/"))
    try:
        if (path / "info").is_file():
            return da.from_npy_stack(str(path))
        if not source.lower().endswith(".npy"):
            return da.from_zarr(str(path))
        files = sorted(
            glob.glob(source),
            key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f)],
        )
        if not files:
            raise DataError(f"{source}: no file matches")
        parts = []
        for f in files:  # shapes from the headers; the rows are read on the workers
            shape, dtype = _npy_header(f)
            step = max(1, NPY_BLOCK_BYTES // max(1, dtype.itemsize * math.prod(shape[1:])))
            for start in range(0, shape[0], step):
                rows = (min(shape[0], start + step) - start, *shape[1:])
                load = dask.delayed(_npy_rows, pure=True)(f, start, start + rows[0])
                parts.append(da.from_delayed(load, shape=rows, dtype=dtype))
        return da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    except ImportError as exc:
        raise DataError(f"{source}: reading it needs {exc.name}: pip install {exc.name}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{source}: cannot read ({exc})") from None
