"""`symgrad train` through real processes: datasets, flags, outputs, and one-line errors on bad data."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m symgrad train ARGS`` in ``cwd`` with the checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "symgrad", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def metrics(stdout: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("loss", "accuracy", "rmse", "r2"):
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows


def test_train_bundled_dataset_writes_params_and_curve(tmp_path: Path):
    proc = run("--data", "iris", "--epochs", "60", "--seed", "1", "-o", "iris.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = metrics(proc.stdout)
    assert m["accuracy"][0] > 0.9 and m["accuracy"][1] > 0.8
    assert "stopped after 60 epochs" in proc.stdout
    assert "model  SoftmaxRegression(n_classes=3" in proc.stderr  # auto picks a classifier
    assert "(120 train / 30 validation)" in proc.stderr
    saved = np.load(tmp_path / "iris.npz")
    assert saved["W"].shape == (4, 3) and saved["b"].shape == (3,)
    assert list(saved["classes"]) == [0.0, 1.0, 2.0] and saved["x_mean"].shape == (4,)
    png = tmp_path / "iris_loss.png"
    if HAS_MATPLOTLIB:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {png.name}" in proc.stderr
    else:
        assert not png.exists() and "matplotlib is not installed" in proc.stderr


def test_train_csv_mlp_with_flags_and_a_user_loss(tmp_path: Path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=120)
    rows = ["a,target,b,c"] + [f"{x[0]},{t},{x[1]},{x[2]}" for x, t in zip(X, y, strict=True)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mine.py").write_text(
        "import sympy as sp\nimport symgrad as sg\n\n@sg.loss\n"
        "def cauchy(yhat, y, c=1.0):\n    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)\n"
    )
    proc = run(
        "--data", "data.csv", "--label", "target", "--model", "linear",
        "--loss", "mine.py:cauchy", "--param", "loss.c=2", "--regularizer", "l2",
        "--lam", "1e-4", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "40",
        "--batch-size", "0", "--no-plot", "--progress", "-o", "lin.npz",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert metrics(proc.stdout)["r2"][1] > 0.95
    assert "loss=(cauchy, {'c': 2.0})" in proc.stderr and "batch size full" in proc.stderr
    assert "40/40" in proc.stderr  # the progress bar
    assert not list(tmp_path.glob("*.png"))
    mlp = run(
        "--data", "data.csv", "--label", "1", "--model", "mlp", "--hidden", "8,4",
        "--activation", "tanh", "--loss", "huber", "--epochs", "5", "--val-fraction", "0",
        "--no-plot", "-o", "mlp.npz",
        cwd=tmp_path,
    )  # fmt: skip
    assert mlp.returncode == 0, mlp.stderr
    assert sorted(np.load(tmp_path / "mlp.npz").files) == [
        "W0", "W1", "W2", "b0", "b1", "b2", "x_mean", "x_scale",
    ]  # fmt: skip
    assert "(120 train / 0 validation)" in mlp.stderr


def test_train_npz_binary_classification(tmp_path: Path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    proc = run(
        "--data", "d.npz", "--epochs", "30", "--no-standardize", "--no-progress",
        "--plot", "curve.png", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "LogisticRegression" in proc.stderr and "it/s" not in proc.stderr
    assert metrics(proc.stdout)["accuracy"][1] >= 0.85
    saved = np.load(tmp_path / "params.npz")
    assert np.all(saved["x_mean"] == 0) and np.all(saved["x_scale"] == 1)
    assert (tmp_path / "curve.png").exists() == HAS_MATPLOTLIB


BAD_DATA = {
    "missing file": (None, "nope.csv", "error: nope.csv: no such file"),
    "non-numeric column": ("a,b,y\n1,2,0\n3,red,1\n", "d.csv", "error: d.csv: line 3, column 'b': 'red' is not a number"),
    "empty cell": ("a,b,y\n1,2,0\n3,,1\n", "d.csv", "error: d.csv: line 3, column 'b' is empty"),
    "NaN in data": ("a,b,y\n1,2,0\n3,nan,1\n", "d.csv", "error: d.csv: line 3, column 'b' is nan"),
    "ragged row": ("a,b,y\n1,2,0\n3,1\n", "d.csv", "error: d.csv: line 3 has 2 fields, expected 3"),
    "wrong label count": ("npz-count", "d.npz", "error: d.npz: X has 5 rows but y has 4 labels"),
    "NaN in npz": ("npz-nan", "d.npz", "error: d.npz: X has a non-finite value (NaN or inf) at [1, 0]"),
    "unknown dataset": (None, "irises", "error: irises: no such file, and not a bundled dataset"),
    "unknown label column": ("a,b,y\n1,2,0\n", "d.csv", "error: d.csv: no column 'label'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_one_line_and_exit_2(tmp_path: Path, case: str):
    content, name, message = BAD_DATA[case]
    if content == "npz-count":
        np.savez(tmp_path / name, X=np.zeros((5, 2)), y=np.zeros(4))
    elif content == "npz-nan":
        np.savez(tmp_path / name, X=np.array([[1.0, 2.0], [np.nan, 0.0]]), y=np.zeros(2))
    elif content is not None:
        (tmp_path / name).write_text(content)
    extra = ["--label", "label"] if case == "unknown label column" else []
    proc = run("--data", name, *extra, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert not (tmp_path / "params.npz").exists()


def test_bad_flags_are_one_line_and_exit_2(tmp_path: Path):
    cases = [
        (["--optimizer", "nope"], "error: unknown optimizer 'nope'"),
        (["--model", "logistic"], "error: logistic regression needs 2 classes, got 3"),
        (["--model", "softmax", "--loss", "mse"], "error: --loss applies to linear and mlp"),
        (["--lam", "0.1"], "error: --lam and regularizer.* parameters need --regularizer"),
        (
            ["-o", "no/such/dir/p.npz"],
            "error: no/such/dir/p.npz: folder no/such/dir does not exist",
        ),
    ]
    (tmp_path / "three.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,2\n7,8,0\n")
    for extra, message in cases:
        proc = run("--data", "three.csv", *extra, cwd=tmp_path)
        assert proc.returncode == 2, extra
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
        assert proc.stderr.startswith(message), proc.stderr
