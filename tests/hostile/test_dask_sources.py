"""Dask data sources fed as a careless user or an attacker would (issue 19, items 10-11):
shards whose columns come in another order are matched by name, shards with other columns
are refused naming the files, and no data file ever runs code (npy-stack ``info`` pickles,
pickled zarr chunks). Each runs the real readers and the real command line."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
da = pytest.importorskip("dask.array")
sgd = pytest.importorskip("symgrad.dask")

from symgrad.cli.app import main  # noqa: E402
from symgrad.cli.saved import load as load_model  # noqa: E402
from symgrad.errors import DataError  # noqa: E402
from symgrad.models import LogisticRegression, flatten  # noqa: E402
from symgrad.solvers import ModelProblem, minimize  # noqa: E402

#: an address nothing listens on: a command that fails before connecting never notices
NOWHERE = ["--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"]


def _table(n=600, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=list("abc"))
    frame["label"] = (X @ np.r_[1.0, -2.0, 0.5] + rng.logistic(size=n) > 0).astype(int)
    return frame


def test_csv_shards_in_another_column_order_are_matched_by_name(tmp_path, monkeypatch, capsys):
    frame = _table()
    (tmp_path / "swap").mkdir()
    frame[:300].to_csv(tmp_path / "swap" / "p0.csv", index=False)
    frame[300:][["label", "c", "b", "a"]].to_csv(tmp_path / "swap" / "p1.csv", index=False)
    X, y, names = sgd.read_table(str(tmp_path / "swap" / "*.csv"))
    assert names == ["a", "b", "c"]
    assert np.array_equal(X.compute(), frame[["a", "b", "c"]].to_numpy())
    assert np.array_equal(y.compute(), frame["label"].to_numpy())
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", "swap/*.csv", "--scheduler", "local", "--val-fraction", "0"]
    args += ["--no-standardize", "--solver", "newton", "--regularizer", "l2", "--lam", "1e-3"]
    assert main([*args, "-o", "p.npz"]) == 0
    assert "2 classes" in capsys.readouterr().err  # the label stayed the label
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    Xn, yn = frame[["a", "b", "c"]].to_numpy(), frame["label"].to_numpy()
    p0 = model.init(n_features=3)
    local = minimize(ModelProblem(model, Xn, yn, p0), flatten(p0), p0, tol=1e-10)
    saved = load_model(Path("p.npz"))  # the model file names the features it was fitted on
    assert saved.features == ["a", "b", "c"]
    W, b = saved.params["W"], saved.params["b"]
    assert np.allclose(np.r_[W, b], local.x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_shards_with_other_columns_are_refused_naming_the_files(tmp_path, capsys, suffix):
    frame = _table(40)
    write = {"csv": lambda f, p: f.to_csv(p, index=False), "parquet": lambda f, p: f.to_parquet(p)}
    write[suffix](frame, tmp_path / f"p0.{suffix}")
    write[suffix](frame.rename(columns={"c": "d"}), tmp_path / f"p1.{suffix}")
    with pytest.raises(DataError, match=rf"p1\.{suffix} has a, b, d, label, .*p0\.{suffix} has"):
        sgd.read_table(str(tmp_path / f"*.{suffix}"))
    assert main(["train", "--data", str(tmp_path / f"*.{suffix}"), *NOWHERE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "columns differ" in err[0]  # refused before any connection


def test_a_glob_is_expanded_as_python_does_before_the_cluster(tmp_path, capsys):
    frame = _table(90)
    for i in range(3):
        frame[i * 30 : (i + 1) * 30].to_parquet(tmp_path / f"part00{i}.parquet")
    X, _, _ = sgd.read_table(str(tmp_path / "part00[01].parquet"))
    assert np.array_equal(X.compute(), frame[["a", "b", "c"]].to_numpy()[:60])
    assert main(["train", "--data", str(tmp_path / "part00[89].parquet"), *NOWHERE]) == 2
    assert "no file matches" in capsys.readouterr().err  # not "cannot reach the scheduler"


class _Payload:
    """Unpickling this creates a file: what a crafted ``info`` would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_npy_stack_info_file_is_never_unpickled(tmp_path, capsys):
    table = np.arange(60.0).reshape(15, 4)
    stack, marker = tmp_path / "stack", tmp_path / "pwned"
    da.to_npy_stack(str(stack), da.from_array(table, chunks=(4, -1)))
    X, y, _ = sgd.read_table(str(stack))  # the genuine stack reads, in order
    assert np.array_equal(X.compute(), table[:, :3]) and np.array_equal(y.compute(), table[:, 3])
    # a payload beside the real header: read from the files alone, nothing runs
    info = {"chunks": ((4, 4, 4, 3), (4,)), "dtype": table.dtype, "axis": 0, "x": _Payload(marker)}
    (stack / "info").write_bytes(pickle.dumps(info))
    X, _, _ = sgd.read_table(str(stack))
    assert np.array_equal(X.compute(), table[:, :3]) and not marker.exists()
    # a payload alone: refused, nothing runs
    (stack / "info").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(DataError, match="only npy stacks along axis 0"):
        sgd.read_table(str(stack))
    assert main(["train", "--data", str(stack), *NOWHERE]) == 2
    assert "only npy stacks along axis 0" in capsys.readouterr().err
    assert not marker.exists()


def test_a_zarr_array_of_pickled_objects_is_refused(tmp_path):
    zarr = pytest.importorskip("zarr")
    where = tmp_path / "objects.zarr"
    da.from_array(np.arange(12.0).reshape(6, 2), chunks=(3, 2)).to_zarr(str(where))
    meta = next(p for p in (where / "zarr.json", where / ".zarray") if p.exists())
    text = meta.read_text().replace('"float64"', '"object"').replace('"<f8"', '"|O"')
    meta.write_text(text)  # what an object array (chunks pickled) declares
    with pytest.raises(DataError, match="symgrad never unpickles data"):
        sgd.read_table(str(where))
    assert zarr is not None
