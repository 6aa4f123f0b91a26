"""``symgrad train --scheduler`` says what the in-memory path says (issue 19 item 12, issue 23
item 7): a diverged fit writes nothing and says so in the same one-line form, one-class
labels get the same error, --val-fraction holds rows out, and a flag the cluster cannot
honour is refused before any cluster starts."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("symgrad.dask")

from symgrad.cli.app import main  # noqa: E402

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
