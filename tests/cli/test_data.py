"""symgrad.data: the pandas and stdlib CSV readers agree, parquet reads and trains, the split is
stratified for classifiers, and the metrics equal scikit-learn's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symgrad import data
from symgrad.errors import DataError

CSV_CASES = {
    "header": "a,b,y\n1,2.5,0\n-3e2,  4 ,1\n",
    "no header": "1,2,0\n3,4,1\n",
    "blank lines": "\na,b,y\n\n1,2,0\n\n3,4,1\n\n",
    "quoted and BOM": '\ufeff"a","b","y"\n"1","2",0\n3,4,1\n',
    "commas only row": "a,b,y\n1,2,0\n,,\n3,4,1\n",
    "exact digits": "a,y\n0.1,0.30000000000000004\n1e-320,2.2250738585072014e-308\n",
    "big integers": "a,y\n9007199254740993,18446744073709551615\n1,123456789012345678901234\n",
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_pandas_and_stdlib_readers_give_the_same_table(tmp_path: Path, case: str):
    path = tmp_path / "d.csv"
    path.write_text(CSV_CASES[case], encoding="utf-8")
    fast, slow = data.read_csv(path), data.read_csv(path, fast=False)
    assert fast.header == slow.header
    assert fast.values.dtype == slow.values.dtype == np.float64
    assert np.array_equal(fast.values, slow.values)  # bit for bit: the same float parsing


BAD_CSV = {
    "a,b,y\n1,2,0\n3,red,1\n": "d.csv: line 3, column 'b': 'red' is not a number (encode categories as numbers first)",
    "a,b,y\n1,2,0\n\n3,,1\n": "d.csv: line 4, column 'b' is empty (missing value)",
    "a,b,y\n1,2,0\n3,inf,1\n": "d.csv: line 3, column 'b' is inf (not finite)",
    "a,b,y\n1,2,0\n3,1,2,5\n": "d.csv: line 3 has 4 fields, expected 3",
    "1,2,0\n3,1\n": "d.csv: line 2 has 2 fields, expected 3",
    "": "d.csv: the file is empty",
    "a,b,y\n": "d.csv: has a header but no data rows",
    "a,b,y\n1,True,0\n": "d.csv: line 2, column 'b': 'True' is not a number (encode categories as numbers first)",
    "a,b,y\n1,NA,0\n": "d.csv: line 2, column 'b': 'NA' is not a number (encode categories as numbers first)",
}  # fmt: skip


@pytest.mark.parametrize("text", sorted(BAD_CSV))
@pytest.mark.parametrize("fast", [True, False])
def test_bad_csv_messages_name_line_and_column_either_way(tmp_path: Path, text: str, fast: bool):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        data.read_csv(path, fast=fast)
    assert str(err.value) == BAD_CSV[text].replace("d.csv", path.as_posix())


def test_parquet_reads_checks_and_trains_without_a_scheduler(tmp_path: Path, capsys, monkeypatch):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from symgrad.cli.app import main

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["label"] = (frame["a"] - frame["b"] > 0).astype("int64")
    frame.to_parquet(tmp_path / "x.parquet")
    loaded = data.load(str(tmp_path / "x.parquet"), "label")
    assert loaded.feature_names == ("a", "b", "c") and loaded.label_name == "label"
    assert np.array_equal(loaded.X, frame[["a", "b", "c"]].to_numpy())
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data", "x.parquet", "--label", "label", "--no-plot", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "LogisticRegression" in err and "accuracy" in out

    bad = frame.assign(b=frame["b"].astype(str))
    bad.to_parquet(tmp_path / "text.parquet")
    with pytest.raises(
        DataError, match="column 'b' holds (large_)?string, not numbers .encode categories"
    ):
        data.load(str(tmp_path / "text.parquet"))
    frame.loc[4, "c"] = None
    frame.to_parquet(tmp_path / "missing.parquet")
    with pytest.raises(DataError, match="missing.parquet: row 5, column 'c' is empty"):
        data.load(str(tmp_path / "missing.parquet"))


def test_classifier_split_is_stratified_and_regression_split_unchanged():
    y = np.repeat([0.0, 1.0, 2.0], [90, 45, 15])
    X = np.arange(len(y), dtype=float)[:, None]
    classes = data.label_classes(y)
    for seed in range(5):
        parts = data.split(X, y, 0.2, seed, False, classes)
        assert [int(np.sum(parts.y_val == c)) for c in classes] == [18, 9, 3]
        assert sorted(np.r_[parts.X[:, 0], parts.X_val[:, 0]]) == list(X[:, 0])
    # without classes: a plain shuffled hold-out, the same rows as before stratification
    order = np.random.default_rng(7).permutation(len(y))
    parts = data.split(X, y, 0.2, 7, False)
    assert np.array_equal(parts.X_val[:, 0], X[order[:30], 0])
    assert np.array_equal(parts.X[:, 0], X[order[30:], 0])
    # a class with one sample keeps it for training
    y1 = np.r_[np.zeros(20), 1.0]
    parts = data.split(np.zeros((21, 1)), y1, 0.5, 0, False, data.label_classes(y1))
    assert 1.0 in parts.y


def test_metrics_equal_sklearn():
    from sklearn import metrics as sk

    rng = np.random.default_rng(1)
    y, pred = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    ours = data.regression_metrics(y, pred)
    assert ours["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), rel=1e-12)
    assert ours["median_ae"] == pytest.approx(sk.median_absolute_error(y, pred), rel=1e-12)
    assert ours["r2"] == pytest.approx(sk.r2_score(y, pred), rel=1e-12)
    assert ours["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), rel=1e-12)
    labels = rng.integers(0, 3, size=40)
    proba = rng.dirichlet(np.ones(3), size=40)
    assert data.log_loss(labels, proba) == pytest.approx(sk.log_loss(labels, proba), rel=1e-12)
    p1 = rng.uniform(size=40)
    binary = labels % 2
    assert data.log_loss(binary, p1) == pytest.approx(sk.log_loss(binary, p1), rel=1e-12)
