"""``symgrad train --scheduler`` says what the in-memory path says (issue 19 item 12, issue 23
item 7): a diverged fit writes nothing and says so in the same one-line form, one-class
labels get the same error, --val-fraction holds rows out, a flag the cluster cannot
honour is refused before any cluster starts, and an MLP regression learns standardized
targets in both (one policy, ``symgrad.data.scales_targets``), so the two fits agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("symgrad.dask")

from symgrad.cli import saved  # noqa: E402
from symgrad.cli.app import main  # noqa: E402
from symgrad.data import Scaling, scales_targets  # noqa: E402
from symgrad.models import MLP, LinearRegression  # noqa: E402

NOWHERE = ["--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"]


@pytest.fixture(scope="module")
def address():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    yield cluster.scheduler_address
    cluster.close()


def _csv(path, n=400, scale=1.0, label=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X * scale, columns=list("abc"))
    frame["label"] = (X[:, 0] > 0).astype(int) if label is None else label(X, scale)
    frame.to_csv(path, index=False)
    return str(path)


def _both(capsys, args, address):
    """Run in memory and on the cluster; return [(exit code, stderr lines)] for each."""
    out = []
    for extra in ([], ["--scheduler", address]):
        code = main([*args, *extra])
        out.append((code, capsys.readouterr().err.strip().splitlines()))
    return out


def test_a_diverged_fit_writes_nothing_and_says_so_like_in_memory(tmp_path, address, capsys):
    data = _csv(tmp_path / "huge.csv", scale=1e200, label=lambda X, s: X[:, 0] * s)
    out = tmp_path / "params.npz"
    out.write_bytes(b"the user's file")
    # --force: the user allows replacing the file, yet a diverged fit leaves it untouched
    args = ["train", "--data", data, "--solver", "lbfgs", "--no-plot", "-o", str(out), "--force"]
    (mem, mem_err), (clu, clu_err) = _both(capsys, args, address)
    assert mem == clu == 1
    for err in (mem_err, clu_err):
        assert err[-1].startswith("diverged: ") and err[-1].endswith("; try --regularizer l2")
        assert not any("Warning" in line for line in err), err  # no numpy warnings leak
    assert out.read_bytes() == b"the user's file"


def test_one_class_labels_get_the_in_memory_error(tmp_path, address, capsys):
    data = _csv(tmp_path / "one.csv", label=lambda X, s: np.ones(len(X), int))
    args = ["train", "--data", data, "--model", "logistic", "-o", str(tmp_path / "p.npz")]
    (mem, mem_err), (clu, clu_err) = _both(capsys, args, address)
    assert mem == clu == 2 and mem_err[-1] == clu_err[-1]
    assert clu_err[-1] == "error: logistic regression needs integer class labels (2 to 20 classes)"


def test_val_fraction_holds_rows_out_on_the_cluster(tmp_path, address, capsys):
    data = _csv(tmp_path / "t.csv", n=2000)
    args = ["train", "--data", data, "--scheduler", address, "--val-fraction", "0.25"]
    assert main([*args, "--seed", "3", "-o", str(tmp_path / "p.npz")]) == 0
    captured = capsys.readouterr()
    line = next(x for x in captured.err.splitlines() if x.startswith("data "))
    train, val = (int(w) for w in line.split("(")[1].split(" validation")[0].split(" train / "))
    assert train + val == 2000 and 400 <= val <= 600  # 25 % +- 5 sigma
    rows = {r.split()[0]: r.split()[1:] for r in captured.out.splitlines()[2:]}
    assert set(rows) == {"loss", "accuracy"} and all(len(v) == 2 for v in rows.values())
    assert float(rows["accuracy"][1]) > 0.9  # a held-out score, not "-"
    assert "produce" in captured.err and "compute" in captured.err  # where the time went
    # the same seed holds out the same rows
    assert main([*args, "--seed", "3", "-o", str(tmp_path / "q.npz")]) == 0
    assert line in capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0.1"], "--lr does not apply with --scheduler"),
        (["--batch-size", "8"], "--batch-size does not apply with --scheduler"),
        (["--optimizer", "adam"], "--optimizer adam: with --scheduler the solvers are full batch"),
        (["--plot", "curve.png"], "--plot: a fit on a cluster draws no loss curve"),
        (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1), got 1.5"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    ],
)
def test_flags_the_cluster_cannot_honour_are_refused_first(tmp_path, capsys, flags, message):
    data = _csv(tmp_path / "t.csv", n=20)
    assert main(["train", "--data", data, *flags, *NOWHERE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}"), err


def test_the_policy_reads_the_model_not_its_class():
    assert scales_targets(MLP([3, 4, 1], loss="mse"), True)
    assert not scales_targets(MLP([3, 4, 1], loss="mse"), False)
    assert not scales_targets(MLP([3, 4, 2]), True)  # a classifier keeps its labels
    assert not scales_targets(LinearRegression(), True)
    a = np.array([[1.0, 5.0], [3.0, 5.0]])
    fitted = Scaling.fitted(a)
    np.testing.assert_array_equal(fitted.scale, [1.0, 1.0])  # the constant column keeps 1
    np.testing.assert_array_equal(fitted.mean, [2.0, 5.0])


def test_in_memory_and_dask_fits_of_an_mlp_regression_agree(tmp_path, address, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = 500.0 + 80.0 * np.tanh(X[:, 0]) - 30.0 * X[:, 1] * X[:, 2]  # far from unit scale
    frame = pd.DataFrame(X * [1.0, 10.0, 0.1] + [0.0, 5.0, -3.0], columns=list("abc"))
    frame["label"] = y
    csv = tmp_path / "reg.csv"
    frame.to_csv(csv, index=False)
    args = ["train", "--data", str(csv), "--model", "mlp", "--hidden", "5", "--optimizer",
            "lbfgs", "--epochs", "40", "--val-fraction", "0", "--no-plot", "--force"]  # fmt: skip
    files, lines = [], []
    for name, extra in (("mem", []), ("dask", ["--scheduler", address])):
        path = tmp_path / f"{name}.npz"
        assert main([*args, "-o", str(path), *extra]) == 0
        err = capsys.readouterr().err.splitlines()
        lines.append(next(x for x in err if x.startswith("model ")))
        files.append(saved.load(Path(path)))
    assert all(line.endswith("(targets standardized)") for line in lines), lines
    mem, clu = files
    assert (
        mem.meta["standardized"]
        == clu.meta["standardized"]
        == {
            "features": True,
            "targets": True,
        }
    )
    for key in ("x_mean", "x_scale", "y_mean", "y_scale"):
        np.testing.assert_allclose(clu.arrays[key], mem.arrays[key], rtol=1e-12)
    assert np.isclose(float(mem.arrays["y_mean"]), y.mean())
    for key in mem.params:
        np.testing.assert_allclose(clu.params[key], mem.params[key], rtol=1e-6, atol=1e-8)
    m_mem, m_clu = mem.meta["metrics"]["train"], clu.meta["metrics"]["train"]
    for key in ("loss", "rmse", "r2"):
        assert np.isclose(m_clu[key], m_mem[key], rtol=1e-6), (key, m_clu, m_mem)
    assert m_mem["r2"] > 0.9  # in the targets' units: the fit is real, not a constant
