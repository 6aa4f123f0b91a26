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


def _natural(name: str) -> list:
    """Sort key that puts ``part10`` after ``part9``."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _is_csv(source: str) -> bool:
    return source.rstrip("/").lower().endswith((".csv", ".csv.gz", ".txt"))


def _table_files(source: str) -> dict[str, tuple[str, ...]]:
    """Return each file of a parquet or CSV glob (or folder) with its columns, in file order.

    The glob is expanded here (Python's rules), and dask is given the list: a pattern such as
    ``part00[01].parquet`` would otherwise mean something else to dask's file system layer.
    """
    import glob
    from pathlib import Path

    if "://" in source:  # a remote store: dask's file system layer expands it
        return {source: ()}
    if Path(source).is_dir():
        return {source: ()}  # a parquet dataset folder: pyarrow matches columns by name
    files = sorted(glob.glob(source), key=_natural)
    if not files:
        raise DataError(f"{source}: no file matches")
    out = {}
    for name in files:
        try:
            out[name] = _columns(name)
        except (OSError, ValueError) as exc:
            raise DataError(f"{name}: cannot read its columns ({exc})") from None
    return out


def _columns(name: str) -> tuple[str, ...]:
    """Return a CSV file's header or a parquet file's column names (no rows are read)."""
    if _is_csv(name):
        import pandas as pd

        return tuple(str(c) for c in pd.read_csv(name, nrows=0).columns)
    import pyarrow.parquet as pq

    return tuple(pq.read_schema(name).names)


def check_source(source: str) -> None:
    """Raise DataError, before any cluster starts, for a source :func:`read_table` cannot read:
    no file matches, a file without readable columns, shards whose columns differ (named),
    or an array whose headers cannot be read."""
    if _is_array_source(source):
        _open_array(source)  # headers and metadata only
    else:
        _aligned_columns(source, _table_files(source))


def _aligned_columns(source: str, files: dict[str, tuple[str, ...]]) -> list[str]:
    """Return the columns every file holds, in the first file's order, or raise DataError
    naming the files whose set of columns differs (shards are matched by name)."""
    first, columns = next(iter(files.items()))
    for name, cols in files.items():
        if cols and set(cols) != set(columns):
            extra, missing = sorted(set(cols) - set(columns)), sorted(set(columns) - set(cols))
            raise DataError(
                f"{source}: the files' columns differ: {name} has {', '.join(cols)}, "
                f"{first} has {', '.join(columns)}"
                + (f" (extra: {', '.join(extra)})" if extra else "")
                + (f" (missing: {', '.join(missing)})" if missing else "")
            )
    return list(columns)


def _read_frame(files: dict[str, tuple[str, ...]], columns: list[str]) -> Any:
    """Return one dask DataFrame of all files, every file's columns picked BY NAME in
    ``columns``' order (files listing them in another order are read apart and reordered)."""
    import dask.dataframe as dd

    groups: dict[tuple, list[str]] = {}
    for name, cols in files.items():
        groups.setdefault(cols, []).append(name)
    frames = []
    for cols, names in groups.items():
        if _is_csv(names[0]):
            frame = dd.read_csv(names if len(names) > 1 else names[0])
            frame = frame[columns] if cols else frame
        else:
            frame = dd.read_parquet(names, columns=columns or None)
        frames.append(frame)
    return frames[0] if len(frames) == 1 else dd.concat(frames, ignore_index=True)


def read_table(source: str, label: str | None = None) -> tuple[Any, Any, list[str]]:
    """Return (X, y, feature names) as dask arrays from a parquet or CSV glob (or folder),
    a zarr array, an npy stack (``da.to_npy_stack``'s folder) or a glob of ``.npy`` files.

    ``label`` names the target column (a column index for arrays; default: the last).
    Shards are matched by column name, in the first file's order; files whose columns differ
    are refused, named. Partitions are read lazily; only their row counts are computed, so
    the arrays have known chunk sizes.
    """
    if _is_array_source(source):
        return _read_array(source, label)
    files = _table_files(source)
    columns = _aligned_columns(source, files)
    try:
        frame = _read_frame(files, columns)
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


def _npy_stack_files(path: Any) -> list[str]:
    """Return the ``.npy`` files of a ``da.to_npy_stack`` folder, in order, without
    unpickling its ``info`` file: its stacking axis is read from the pickle's opcodes
    (``pickletools``, which runs nothing), and the shapes come from the files' headers."""
    import pickletools

    try:
        memo = ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME")  # bookkeeping only
        ops = [
            (op.name, arg)
            for op, arg, _ in pickletools.genops(path.joinpath("info").read_bytes())
            if op.name not in memo
        ]
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"{path}: its info file is not a dask npy-stack header ({exc})") from None
    axis = next((ops[i + 1][1] for i, (_, arg) in enumerate(ops[:-1]) if arg == "axis"), None)
    if axis != 0:
        raise DataError(
            f"{path}: only npy stacks along axis 0 (rows) can be read; its info file gives "
            f"{'no axis' if axis is None else f'axis {axis!r}'}"
        )
    numbered = sorted((int(p.stem), p) for p in path.glob("*.npy") if p.stem.isdigit())
    if [i for i, _ in numbered] != list(range(len(numbered))):
        raise DataError(
            f"{path}: the stack's files are not numbered 0.npy, 1.npy, ... without gaps"
        )
    return [str(p) for _, p in numbered]


def _refuse_pickled_zarr(path: Any) -> None:
    """Raise DataError for a zarr array whose chunks would be unpickled (object dtype, or a
    pickle codec): a data file must never run code."""
    import json

    for meta in ("zarr.json", ".zarray"):
        where = path / meta
        if where.is_file():
            text = where.read_text()
            try:
                info = json.loads(text)
            except ValueError as exc:
                raise DataError(f"{path}: {meta} is not JSON ({exc})") from None
            if "pickle" in text.lower() or str(info.get("data_type", info.get("dtype"))) in (
                "|O",
                "object",
            ):
                raise DataError(
                    f"{path}: holds Python objects (a pickle codec); symgrad never unpickles data"
                )


def _open_array(source: str) -> Any:
    import glob
    from pathlib import Path

    import dask
    import dask.array as da

    path = Path(source.rstrip("/"))
    try:
        if (path / "info").is_file():
            files = _npy_stack_files(path)
        elif not source.lower().endswith(".npy"):
            _refuse_pickled_zarr(path)
            return da.from_zarr(str(path))
        else:
            files = sorted(glob.glob(source), key=_natural)
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
