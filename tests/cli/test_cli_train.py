"""`symgrad train` through real processes: datasets, flags, outputs, and one-line errors on bad data."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    proc = run(
        "--data", "iris", "--optimizer", "adam", "--epochs", "60", "--seed", "1", "-o", "iris.npz",
        cwd=tmp_path,
    )  # fmt: skip
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
        assert '(pip install "symgrad[train]")' in proc.stderr  # names the extra


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
        "W0", "W1", "W2", "b0", "b1", "b2", "checksum", "metadata", "x_mean", "x_scale",
        "y_mean", "y_scale",
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
    saved = np.load(tmp_path / "model.npz")
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
    assert not (tmp_path / "model.npz").exists()


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


# --------------------------------------------------------------------------- defaults vs scikit-learn


def main_args(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``symgrad train ARGS`` in this process (the real parser and code; no start-up cost)."""
    from symgrad.cli.app import main

    code = main(["train", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def main_run(capsys, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``main_args`` writing ``tmp_path/p.npz`` and no plot."""
    return main_args(capsys, *args, "--no-plot", "--force", "-o", str(tmp_path / "p.npz"))


def sklearn_scores(name: str, model: str, seed: int = 0) -> tuple[float, float, int]:
    """Return scikit-learn's default estimator's validation score on raw and standardized features."""
    from benchmarks.train_vs_sklearn import sklearn_score
    from symgrad.data import load, split

    data = load(name)
    n_val = len(split(data.X, data.y, 0.2, seed, False).X_val)
    raw = sklearn_score(name, seed, model, scaled=False)
    return raw, sklearn_score(name, seed, model, scaled=True), n_val


def noise(score: float, n_val: int, classify: bool) -> float:
    """One standard error of a validation accuracy (at least one sample), or 0.02 of R^2."""
    if not classify:
        return 0.02
    return max(1 / n_val, float(np.sqrt(score * (1 - score) / n_val)))


@pytest.mark.parametrize(
    "name", ["breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine"]
)
def test_defaults_reach_sklearn_default_estimator(capsys, tmp_path: Path, name: str):
    """A bare ``symgrad train --data NAME`` scores like scikit-learn's default estimator.

    Convex defaults are solved to convergence, so the score equals that of the same
    estimator behind a StandardScaler (the same objective) and is within one standard error of
    the default estimator on raw features (which sees differently scaled features).
    """
    from benchmarks.train_vs_sklearn import default_model
    from symgrad.data import BUNDLED

    assert name in BUNDLED and len(BUNDLED) == 6  # a new bundled dataset needs a row here
    code, out, err = main_run(capsys, tmp_path, "--data", name)
    assert code == 0, err
    assert "fit    newton (full batch, line search)" in err and "converged" in out
    rows = metrics(out)
    classify = "accuracy" in rows
    ours = rows["accuracy" if classify else "r2"][1]
    raw, scaled, n_val = sklearn_scores(name, default_model(name))
    assert ours == pytest.approx(scaled, abs=1e-6), (ours, scaled)
    assert ours >= raw - noise(raw, n_val, classify) - 1e-6, (ours, raw)  # 6 printed digits


def test_mlp_learns_standardized_targets_and_reports_original_units(capsys, tmp_path: Path):
    from symgrad.data import load, r2_score, split
    from symgrad.models import MLP

    code, out, err = main_run(capsys, tmp_path, "--data", "diabetes", "--model", "mlp")
    assert code == 0, err
    assert "(targets standardized)" in err and "fit    adam(lr=0.01), 100 epochs" in err
    ours = metrics(out)["r2"][1]
    raw, scaled, _ = sklearn_scores("diabetes", "mlp")
    assert ours > max(raw, scaled) + 0.5  # scikit-learn's MLPRegressor() does not fit y ~ 150
    saved = np.load(tmp_path / "p.npz")
    data = load("diabetes")
    parts = split(data.X, data.y, 0.2, 0, True)
    assert float(saved["y_mean"]) == pytest.approx(parts.y.mean())
    assert float(saved["y_scale"]) == pytest.approx(parts.y.std())
    params = {k: saved[k] for k in ("W0", "b0", "W1", "b1")}
    pred = MLP([10, 100, 1], "relu", "mse").predict(params, parts.X_val)
    pred = pred * saved["y_scale"] + saved["y_mean"]
    assert r2_score(parts.y_val, pred) == pytest.approx(ours, abs=1e-5)


def test_every_solver_reaches_the_same_convex_optimum(capsys, tmp_path: Path):
    results = {}
    for solver in ("newton", "lbfgs", "auto"):
        code, out, err = main_run(
            capsys, tmp_path, "--data", "breast_cancer", "--optimizer", solver
        )
        assert code == 0, err
        results[solver] = metrics(out)
    assert "lbfgs (scipy L-BFGS-B, full batch)" not in err  # auto is newton
    newton, lbfgs = results["newton"], results["lbfgs"]
    assert lbfgs["loss"][0] == pytest.approx(newton["loss"][0], rel=1e-5)
    assert lbfgs["accuracy"] == newton["accuracy"] == results["auto"]["accuracy"]
    code, out, err = main_run(
        capsys, tmp_path, "--data", "breast_cancer", "--optimizer", "sgd", "--epochs", "5"
    )
    assert code == 0 and "fit    sgd(lr=0.01), 5 epochs, batch size 32" in err


def test_solver_flags_that_do_not_apply_are_refused(capsys, tmp_path: Path):
    cases = [
        (["--optimizer", "lbfgs", "--lr", "0.1"], "error: --lr does not apply to lbfgs"),
        (["--optimizer", "newton", "--batch-size", "8"], "error: --batch-size applies to first"),
        (["--optimizer", "bfgs"], "error: unknown optimizer 'bfgs'; choose one of: auto, newton"),
        (["--lr", "-1"], "error: --lr must be a positive number"),
        (["--regularizer", "none", "--lam", "1"], "error: --lam and regularizer.* parameters"),
    ]
    for extra, message in cases:
        code, out, err = main_run(capsys, tmp_path, "--data", "iris", *extra)
        assert code == 2 and out == "", extra
        assert err.strip().splitlines() == [err.strip()] and err.startswith(message), err


# --------------------------------------------------------------------------- divergence


def test_a_huge_learning_rate_is_reported_as_divergence(tmp_path: Path):
    """A separate process, so that any warning numpy prints would show in its stderr."""
    proc = run("--data", "diabetes", "--lr", "1e30", "--optimizer", "adam", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "completed" not in proc.stderr
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr.lower()
    lines = proc.stderr.splitlines()
    assert len(lines) == 4 and lines[0].startswith("data   diabetes"), proc.stderr
    assert lines[3].startswith("diverged: the loss grew from 2.886e+04 to "), proc.stderr
    assert lines[3].endswith("; try a smaller --lr")
    assert not (tmp_path / "model.npz").exists()


@pytest.mark.parametrize("optimizer", ["auto", "newton", "sgd", "rmsprop"])
def test_divergence_with_each_kind_of_solver(capsys, tmp_path: Path, optimizer: str):
    """Newton with a fixed step, and first-order runs whose loss overflows to inf."""
    code, out, err = main_run(
        capsys, tmp_path, "--data", "diabetes", "--lr", "1e30", "--optimizer", optimizer
    )
    assert code == 1 and out == "", err
    last = err.strip().splitlines()[-1]
    assert last.startswith("diverged: ") and last.endswith("; try a smaller --lr"), err
    assert not (tmp_path / "p.npz").exists()


# --------------------------------------------------------------------------- output paths


def test_bad_output_paths_are_refused_before_training(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "null").symlink_to(os.devnull)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    cases = [
        ("", "error: -o '': empty file name"),
        ("adir", "error: adir: is a directory"),
        ("adir/", "error: adir/: is a directory"),
        ("null", "error: null: is a symbolic link"),
        ("fifo", "error: fifo: is not a regular file"),
        ("dangling", "error: dangling: is a symbolic link"),
    ]
    if os.geteuid() != 0:
        (tmp_path / "locked").mkdir(mode=0o555)
        (tmp_path / "ro.npz").write_bytes(b"")
        (tmp_path / "ro.npz").chmod(0o444)
        cases += [
            ("locked/p.npz", "error: locked/p.npz: folder locked is not writable"),
            ("ro.npz", "error: ro.npz: already exists; pass --force to replace it"),
        ]
    for out, message in cases:
        code, stdout, err = main_args(capsys, "--data", "iris", "-o", out)
        assert code == 2 and stdout == "", (out, err)
        assert err.splitlines() == [err.strip()], err  # one line, and no "data" line
        assert err.startswith(message), err
    code, _, err = main_args(capsys, "--data", "iris", "-o", "a.npz", "--plot", "a.npz")
    assert code == 2 and "need two files" in err


def test_outputs_are_written_atomically_with_the_usual_mode(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    target.chmod(0o640)
    (tmp_path / "link.npz").symlink_to(target)
    code, _, err = main_args(capsys, "--data", "iris", "-o", "link.npz")
    assert code == 2 and "link.npz: is a symbolic link" in err  # never written through
    assert target.read_bytes() == b"old"
    code, _, err = main_args(
        capsys, "--data", "iris", "-o", "real.npz", "--plot", "curve.png", "--force"
    )
    assert code == 0, err
    assert np.load(target)["W"].shape == (4, 3)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its mode
    code, _, err = main_args(capsys, "--data", "iris", "-o", "fresh.npz")
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    for name in ["fresh.npz", "curve.png", "fresh_loss.png"][: 3 if HAS_MATPLOTLIB else 1]:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_loss_without_curvature_is_solved_by_lbfgs(capsys, tmp_path: Path):
    """l1 has a zero second derivative: auto picks L-BFGS, which reaches the median regression."""
    from sklearn.linear_model import QuantileRegressor

    from symgrad.data import load, split

    code, out, err = main_run(capsys, tmp_path, "--data", "diabetes", "--loss", "l1")
    assert code == 0, err
    assert "fit    lbfgs (scipy L-BFGS-B, full batch)" in err
    data = load("diabetes")
    parts = split(data.X, data.y, 0.2, 0, True)
    ref = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs").fit(parts.X, parts.y)
    best = float(np.mean(np.abs(ref.predict(parts.X) - parts.y)))
    assert metrics(out)["loss"][0] == pytest.approx(best, rel=1e-3)


# --------------------------------------------------------------------------- tool conventions


def test_progress_bars_come_from_tqdm_auto():
    """tqdm.auto: a widget in Jupyter, text on a terminal."""
    tqdm_auto = pytest.importorskip("tqdm.auto")
    from symgrad.fit import progress_bar

    bar = progress_bar(True, 3)
    assert isinstance(bar, tqdm_auto.tqdm)
    bar.close()
    assert progress_bar(False, 3) is None


def test_loss_curves_use_a_log_axis_when_they_span_decades():
    from symgrad.cli.plot import log_scale

    assert log_scale(np.array([2e3, 40.0, 1.0]), np.array([np.nan, 5.0, 1.5]))
    assert not log_scale(np.array([3.0, 1.0, 0.9]))
    assert not log_scale(np.array([1e3, 1.0, -2.0]))  # a loss that goes negative: linear


def test_training_in_process_leaves_the_matplotlib_backend_alone(tmp_path: Path, monkeypatch):
    """A notebook's backend is never switched: the PNG is drawn by matplotlib's object API."""
    source = "\n".join(p.read_text() for p in (ROOT / "symgrad").rglob("*.py"))
    assert "matplotlib.use(" not in source and "pyplot" not in source
    matplotlib = pytest.importorskip("matplotlib")
    from symgrad.cli.app import main

    monkeypatch.chdir(tmp_path)
    matplotlib.use("svg")  # the user's choice, as a notebook's inline backend would be
    code = main(["train", "--data", "diabetes", "--optimizer", "adam", "--epochs", "30"])
    assert code == 0
    assert matplotlib.get_backend() == "svg"
    assert (tmp_path / "model_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
