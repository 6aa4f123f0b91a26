"""``symgrad predict``: apply a model file from ``symgrad train`` to new data, writing a CSV of
predictions (and class probabilities for classifiers). Columns are matched by name."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from symgrad import data
from symgrad.cli import saved
from symgrad.cli.files import check_output, write_atomic
from symgrad.cli.report import EXIT_OK, error, say
from symgrad.errors import DataError, OutputError, SymgradError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``predict`` flags to ``parser``."""
    parser.add_argument(
        "--model", required=True, metavar="FILE.npz", help="a model file from symgrad train"
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="a .csv (with a header row naming the features) or .parquet file, or an .npz "
        "file with an array X; columns are matched to the model's features by name, in any "
        "order, and other columns (the label) are ignored",
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE.csv", help="where to write predictions"
    )
    parser.add_argument(
        "--activation",
        metavar="FILE.py:NAME",
        help="the spec of a model whose activation is your own (checked against its hash)",
    )
    parser.add_argument("--force", action="store_true", help="replace -o if it exists")


def features(table: data.Table, model: saved.SavedModel) -> np.ndarray:
    """Return the table's columns in the model's feature order (by name when both have
    names, else by position), or raise DataError naming what is missing."""
    names, width = model.features, table.values.shape[1]
    if table.header is not None and model.meta.get("named_features", True):
        missing = [n for n in names if n not in table.header]
        if missing:
            raise DataError(
                f"{table.name}: has no column {missing[0]!r} (the model needs "
                f"{len(missing)} more: {', '.join(missing)}; columns: {', '.join(table.header)})"
            )
        doubled = [n for n in names if table.header.count(n) > 1]
        if doubled:
            raise DataError(f"{table.name}: column {doubled[0]!r} appears twice")
        return table.values[:, [table.header.index(n) for n in names]]
    if width != len(names):
        raise DataError(
            f"{table.name}: has {width} columns, the model expects {len(names)} features "
            f"({', '.join(names)}); give the file a header row naming them"
        )
    if model.meta.get("named_features", True):
        say(f"note   {table.name} has no header row: columns taken in the model's order")
    return table.values


def _label(value: float) -> str:
    return f"{value:g}"


def to_csv(pred: np.ndarray, proba: np.ndarray | None, classes: np.ndarray | None) -> bytes:
    """Return predictions (and one ``p_LABEL`` column per class) as CSV text with a header."""
    columns = pred.reshape(len(pred), -1)
    names = (
        ["prediction"]
        if columns.shape[1] == 1
        else [f"prediction_{i}" for i in range(columns.shape[1])]
    )
    if proba is not None and classes is not None:
        columns = np.column_stack([columns, proba])
        names += [f"p_{_label(c)}" for c in classes]
    buf = io.StringIO()
    np.savetxt(buf, columns, fmt="%.17g", delimiter=",", header=",".join(names), comments="")
    return buf.getvalue().encode()


def run(args: argparse.Namespace) -> int:
    """Run ``symgrad predict`` and return its exit code."""
    try:
        out = check_output(args.output, "-o", args.force)
        model = saved.load(data.check_file(args.model))
        user = None
        if args.activation:
            from symgrad.cli.build import load_spec  # the user's own file, as they asked

            user = load_spec("activation", args.activation)
        fitted = saved.rebuild(model, user)
        X = features(data.read_table(args.data), model)
        with np.errstate(all="ignore"):
            pred, proba = saved.predict(model, fitted, X)
        if not np.all(np.isfinite(pred)):
            raise DataError(f"{args.data}: a prediction is not finite (features out of range?)")
        text = to_csv(pred, proba, model.classes)
        write_atomic(Path(out), lambda fh: fh.write(text))
    except (SymgradError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            return error(f"{exc.filename or args.output}: cannot write: {exc.strerror or exc}")
        return error(str(exc))
    kind = model.meta["model"]["kind"]
    say(f"wrote {out.as_posix()}: {len(pred)} predictions of a {kind} model")
    return EXIT_OK
