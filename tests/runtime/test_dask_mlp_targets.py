"""An MLP regression learns standardized targets in memory and on a Dask cluster alike
(one policy, :func:`symgrad.data.scales_targets`), and the two fits agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("symgrad.dask")

from symgrad import data  # noqa: E402
from symgrad.cli import saved  # noqa: E402
from symgrad.cli.app import main  # noqa: E402
from symgrad.models import MLP, LinearRegression  # noqa: E402


@pytest.fixture(scope="module")
def address():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    yield cluster.scheduler_address
    cluster.close()


def test_the_policy_reads_the_model_not_its_class():
    assert data.scales_targets(MLP([3, 4, 1], loss="mse"), True)
    assert not data.scales_targets(MLP([3, 4, 1], loss="mse"), False)
    assert not data.scales_targets(MLP([3, 4, 2]), True)  # a classifier keeps its labels
    assert not data.scales_targets(LinearRegression(), True)
    a = np.array([[1.0, 5.0], [3.0, 5.0]])
    fitted = data.Scaling.fitted(a)
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
