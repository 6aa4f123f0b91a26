"""`symgrad train` -> model file -> `symgrad predict`, and predict fed bad input: missing or
reordered columns, NaN, existing outputs, foreign and tampered model files, user specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from symgrad.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
USER_SPECS = """\
import sympy as sp
import symgrad as sg


@sg.loss
def cauchy(yhat, y, c=1.0):
    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)


@sg.activation
def softsign(x):
    return x / (1 + sp.Abs(x))
"""


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str, text: str) -> None:
    assert code == 2, err
    assert err.splitlines() == [err.strip()] and err.startswith("error: "), err
    assert text in err, err


@pytest.fixture
def regression(tmp_path: Path, monkeypatch) -> Path:
    """A folder holding data.csv (a, b, c, target) with outliers in the target."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, -2.0, 0.5] + 3.0 + 0.1 * rng.normal(size=300)
    y[::25] += 40.0  # outliers: a robust loss wins on MAE, not on RMSE
    np.savetxt(tmp_path / "data.csv", np.c_[X, y], delimiter=",", fmt="%.17g",
               header="a,b,c,target", comments="")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    return tmp_path


def read_predictions(path: Path) -> tuple[list[str], np.ndarray]:
    header = path.read_text().splitlines()[0].split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def test_regression_model_round_trip_by_column_name(regression: Path, capsys):
    code, out, err = cli(capsys, "train", "--data", "data.csv", "--label", "target",
                         "--loss", "huber", "--no-plot", "--no-progress")  # fmt: skip
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert {"rmse", "r2", "mae", "median_ae"} <= set(rows)  # beside today's metrics
    assert float(rows["median_ae"][1]) < float(rows["mae"][1]) < float(rows["rmse"][1])
    with np.load("model.npz", allow_pickle=False) as f:
        meta = json.loads(str(f["metadata"]))
        W, b, mean, scale = f["W"], f["b"], f["x_mean"], f["x_scale"]
    assert meta["model"] == {"kind": "linear", "task": "regress", "n_outputs": None}
    assert meta["features"] == ["a", "b", "c"] and meta["label"] == "target"
    assert meta["kernels"]["loss"] == {"name": "huber", "hyper": {}}
    assert meta["kernels"]["regularizer"] is None and meta["symgrad_version"]
    assert meta["metrics"]["validation"]["mae"] == pytest.approx(float(rows["mae"][1]), 1e-5)
    # the columns in another order, with an extra one: matched by name
    data = np.loadtxt("data.csv", delimiter=",", skiprows=1)
    shuffled = np.column_stack([data[:, 2], np.ones(len(data)), data[:, 0], data[:, 1]])
    np.savetxt("new.csv", shuffled, delimiter=",", header="c,extra,a,b", comments="", fmt="%.17g")
    code, _, err = cli(
        capsys, "predict", "--model", "model.npz", "--data", "new.csv", "-o", "p.csv"
    )
    assert code == 0, err
    header, pred = read_predictions(regression / "p.csv")
    assert header == ["prediction"]
    expected = (data[:, :3] - mean) / scale @ W + b
    np.testing.assert_allclose(pred[:, 0], expected, rtol=1e-12)
    # never overwrite unless --force
    code, _, err = cli(
        capsys, "predict", "--model", "model.npz", "--data", "new.csv", "-o", "p.csv"
    )
    one_error(code, err, "p.csv: already exists; pass --force to replace it")
    code, _, err = cli(capsys, "train", "--data", "data.csv", "--label", "target", "--no-plot")
    one_error(code, err, "model.npz: already exists; pass --force")
    argv = ["predict", "--model", "model.npz", "--data", "new.csv", "-o", "p.csv", "--force"]
    assert cli(capsys, *argv)[0] == 0


def test_classifier_writes_labels_and_probabilities(tmp_path: Path, capsys, monkeypatch):
    from sklearn.datasets import load_wine
    from sklearn.metrics import log_loss

    monkeypatch.chdir(tmp_path)
    wine = load_wine()
    code, out, err = cli(capsys, "train", "--data", "wine", "--no-plot", "--no-progress")
    assert code == 0, err
    val_log_loss = float(next(r for r in out.splitlines() if r.startswith("log_loss")).split()[2])
    names = [str(n) for n in wine.feature_names]
    labels = wine.target + 10  # label values, not indices, come back
    frame = np.column_stack([wine.data[:, ::-1], labels])
    np.savetxt("wine.csv", frame, delimiter=",", header=",".join([*names[::-1], "y"]),
               comments="", fmt="%.17g")  # fmt: skip
    code, _, err = cli(
        capsys, "predict", "--model", "model.npz", "--data", "wine.csv", "-o", "p.csv"
    )
    assert code == 0, err
    header, pred = read_predictions(tmp_path / "p.csv")
    assert header == ["prediction", "p_0", "p_1", "p_2"]
    np.testing.assert_allclose(pred[:, 1:].sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(pred[:, 0], np.argmax(pred[:, 1:], axis=1))
    assert np.mean(pred[:, 0] == wine.target) > 0.97
    assert log_loss(wine.target, pred[:, 1:]) < 3 * val_log_loss + 0.05


BAD_INPUT = {
    "missing column": ("a,b,y\n1,2,0\n", "data.csv: has no column 'c' (the model needs 1 more: c"),
    "NaN": ("a,b,c\n1,2,3\n4,nan,6\n", "data.csv: line 3, column 'b' is nan (not finite)"),
    "text": ("a,b,c\n1,2,3\n4,red,6\n", "'red' is not a number (encode categories as numbers"),
    "no header, too few": ("1,2\n3,4\n", "data.csv: has 2 columns, the model expects 3 features"),
    "doubled": ("a,b,c,a\n1,2,3,4\n", "data.csv: column 'a' appears twice"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_data_for_predict_is_one_line(regression: Path, capsys, case: str):
    assert main(["train", "--data", "data.csv", "--label", "target", "--no-plot"]) == 0
    capsys.readouterr()
    text, message = BAD_INPUT[case]
    (regression / "data.csv").write_text(text)
    code, _, err = cli(
        capsys, "predict", "--model", "model.npz", "--data", "data.csv", "-o", "p.csv"
    )
    one_error(code, err, message)
    assert not (regression / "p.csv").exists()


def _rewrite(path: Path, change) -> None:
    """Rewrite the model file's entries through ``change(dict of name -> bytes)``."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    change(entries)
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)


def test_foreign_and_tampered_model_files_are_refused(regression: Path, capsys):
    from symgrad.cli import saved

    assert main(["train", "--data", "data.csv", "--label", "target", "--no-plot"]) == 0
    capsys.readouterr()
    good = (regression / "model.npz").read_bytes()
    np.savez(regression / "foreign.npz", W=np.ones(3), b=np.zeros(1))
    pickled = {"metadata": np.array([{"a": 1}], dtype=object), "checksum": np.array("0")}
    np.savez(regression / "pickled.npz", **pickled)
    (regression / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")

    def edit_meta(entries):  # change the kind, keep the stored checksum
        text = np.load(regression / "model.npz")["metadata"]
        meta = json.loads(str(text))
        meta["model"]["kind"] = "mlp"
        path = regression / "meta.npy"
        np.save(path, np.array(json.dumps(meta)))
        entries["metadata.npy"] = path.read_bytes()

    def flip_weight(entries):
        entries["W.npy"] = entries["W.npy"][:-8] + np.float64(1e3).tobytes()

    cases = {
        "foreign.npz": "not a symgrad model file (no 'metadata' entry",
        "pickled.npz": "not a readable model file",
        "junk.npz": "not a readable model file",
        "data.csv": "not a readable model file",
    }
    for change, name in ((edit_meta, "meta.npz"), (flip_weight, "weight.npz")):
        (regression / name).write_bytes(good)
        _rewrite(regression / name, change)
        cases[name] = "checksum mismatch: the file was changed after symgrad wrote it"
    for name, message in cases.items():
        code, _, err = cli(capsys, "predict", "--model", name, "--data", "data.csv", "-o", "p.csv")
        one_error(code, err, message)
    # a consistent file (checksum recomputed) that names code as its kind is still only data
    meta = json.loads(str(np.load(regression / "model.npz")["metadata"]))
    meta["model"]["kind"] = "__import__('os').system('touch PWNED')"
    with np.load(regression / "model.npz") as f:
        params = {k: f[k] for k in ("W", "b")}
        arrays = {k: f[k] for k in ("x_mean", "x_scale")}
    blob = saved.encode(
        {k: v for k, v in meta.items() if not k.startswith("format")}, params, arrays
    )
    (regression / "evil.npz").write_bytes(blob)
    code, _, err = cli(
        capsys, "predict", "--model", "evil.npz", "--data", "data.csv", "-o", "p.csv"
    )
    one_error(code, err, "evil.npz: unknown model kind")
    meta["model"] = {"kind": "mlp", "task": "regress", "output": "regression"}
    meta["model"]["sizes"] = [3, 10**9, 1]  # would allocate 8 GB if believed
    blob = saved.encode(
        {k: v for k, v in meta.items() if not k.startswith("format")}, params, arrays
    )
    (regression / "huge.npz").write_bytes(blob)
    code, _, err = cli(
        capsys, "predict", "--model", "huge.npz", "--data", "data.csv", "-o", "p.csv"
    )
    one_error(code, err, "huge.npz: its layer sizes do not match its weights")
    assert not (regression / "PWNED").exists() and not (regression / "p.csv").exists()


def test_user_specs_in_a_model_file_are_never_run(regression: Path, capsys):
    """A user loss needs nothing at predict time (no compiler is even imported); a user
    activation must be given again, and must be the same spec (its hash)."""
    (regression / "mine.py").write_text(USER_SPECS)
    code, _, err = cli(capsys, "train", "--data", "data.csv", "--label", "target",
                       "--loss", "mine.py:cauchy", "--param", "loss.c=2", "--no-plot", "-o", "lin.npz")  # fmt: skip
    assert code == 0, err
    meta = json.loads(str(np.load(regression / "lin.npz")["metadata"]))
    loss = meta["kernels"]["loss"]
    assert loss["name"] == "cauchy" and loss["hyper"] == {"c": 2.0}
    assert len(loss["spec"]["sha256"]) == 64 and "log" in loss["spec"]["expression"]
    probe = (
        "import sys; from symgrad.cli.app import main; "
        "code = main(['predict', '--model', 'lin.npz', '--data', 'data.csv', '-o', 'p.csv']); "
        "print(code, 'sympy' in sys.modules, 'symgrad.compiler' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=regression, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.stdout.split() == ["0", "False", "False"], proc.stderr

    code, _, err = cli(capsys, "train", "--data", "data.csv", "--label", "target", "--model",
                       "mlp", "--hidden", "4", "--activation", "mine.py:softsign", "--epochs",
                       "3", "--no-plot", "-o", "mlp.npz")  # fmt: skip
    assert code == 0, err
    argv = ["predict", "--model", "mlp.npz", "--data", "data.csv", "-o", "p2.csv"]
    code, _, err = cli(capsys, *argv)
    one_error(code, err, "its activation 'softsign' is your own spec")
    code, _, err = cli(capsys, *argv, "--activation", "mine.py:softsign")
    assert code == 0, err
    (regression / "other.py").write_text(USER_SPECS.replace("1 + sp.Abs(x)", "2 + sp.Abs(x)"))
    code, _, err = cli(capsys, *argv, "--force", "--activation", "other.py:softsign")
    one_error(code, err, "spec 'softsign' differs from the one the model was trained with")


def test_a_cluster_fit_writes_a_model_file_predict_reads(tmp_path: Path, capsys, monkeypatch):
    """--scheduler local: a LocalCluster whose dashboard takes a free port, not 8787."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("distributed")
    import socket

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(400, 2)), columns=["u", "v"])
    frame["label"] = (frame["u"] + frame["v"] > 0).astype("int64")
    frame.to_parquet(tmp_path / "part0.parquet")
    with socket.socket() as busy, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # hold the default dashboard port, as a user's own Dask cluster would
            busy.bind(("", 8787))
        except OSError:
            pass  # something holds it already: the same situation
        code, _, err = cli(capsys, "train", "--data", "part*.parquet", "--label", "label",
                           "--scheduler", "local", "--no-progress", "-o", "dask.npz")  # fmt: skip
    assert not [w for w in caught if "8787" in str(w.message)]
    assert code == 0, err
    assert "8787" not in err and "dashboard" not in err.lower()
    meta = json.loads(str(np.load("dask.npz")["metadata"]))
    assert meta["features"] == ["u", "v"] and meta["model"]["kind"] == "logistic"
    frame[["v", "u"]].to_csv("new.csv", index=False)
    code, _, err = cli(capsys, "predict", "--model", "dask.npz", "--data", "new.csv", "-o", "p.csv")
    assert code == 0, err
    _, pred = read_predictions(tmp_path / "p.csv")
    assert np.mean(pred[:, 0] == frame["label"]) > 0.95
