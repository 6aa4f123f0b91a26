"""symgrad.dask on a real 2-worker LocalCluster: exact block sums, solvers at scikit-learn's
optimum, kernels that travel to fresh processes, and clear errors for bad input."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
import symgrad.losses as L
from symgrad.errors import ClusterError, DataError
from symgrad.models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression, flatten
from symgrad.solvers import ModelProblem, minimize

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
sgd = pytest.importorskip("symgrad.dask")


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy (Lorentzian) loss: robust to outliers."""
    return c**2 / 2 * sp.log(1 + ((yhat - y) / c) ** 2)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _logistic_data(n=4000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + 0.3 + rng.logistic(size=n) > 0).astype(float)
    return X, y


def _call(fn, *args):
    return fn(*args)


# ----------------------------------------------------------------------------- travel


def test_kernels_pickle_into_a_spawned_process():
    kernels = sg.compile(cauchy)
    z, t = np.linspace(-3, 3, 9), np.zeros(9)
    model = LinearRegression(loss=(cauchy, {"c": 2.0}))
    rng = np.random.default_rng(0)
    X, params = rng.normal(size=(9, 2)), {"W": np.array([0.5, -1.0]), "b": np.array(0.1)}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert np.array_equal(
            pool.apply(_call, (kernels.cauchy_grad, z, t)), kernels.cauchy_grad(z, t)
        )
        assert np.array_equal(pool.apply(_call, (L.mse_grad, z, t)), L.mse_grad(z, t))
        remote = pool.apply(_call, (model.objective, params, X, z))
    local = model.objective(params, X, z)
    assert remote[0] == local[0] and np.array_equal(remote[1]["W"], local[1]["W"])


def test_kernels_run_on_fresh_workers(client):
    kernels = sg.compile(cauchy)
    z, t = np.linspace(-3, 3, 9), np.ones(9)
    got = client.gather(
        [client.submit(kernels.cauchy_hess, z, t), client.submit(L.huber_grad, z, t)]
    )
    assert np.array_equal(got[0], kernels.cauchy_hess(z, t))
    assert np.array_equal(got[1], L.huber_grad(z, t))


# ----------------------------------------------------------------------------- exact sums


def _models(rng, n, d):
    reg = ("l2", {"lam": 0.05})
    return [
        (LinearRegression(regularizer=reg), rng.normal(size=n)),
        (LinearRegression(loss=(cauchy, {"c": 0.7}), regularizer=reg), rng.normal(size=(n, 2))),
        (LogisticRegression(regularizer=reg), (rng.random(n) < 0.4).astype(float)),
        (SoftmaxRegression(3, regularizer=reg), rng.integers(0, 3, n)),
        (MLP([d, 5, 3], activation="tanh", regularizer=reg), rng.integers(0, 3, n)),
    ]


def test_block_sums_equal_in_memory(client):
    rng = np.random.default_rng(1)
    n, d = 2500, 4
    X = rng.normal(size=(n, d))
    for model, y in _models(rng, n, d):
        data = sgd.DaskData(X, y, client=client, chunk_rows=600)
        assert len(data.chunks) == 5
        like = sgd._init(model, data)
        params = {k: v + rng.normal(scale=0.3, size=np.shape(v)) for k, v in like.items()}
        v = {k: rng.normal(size=np.shape(p)) for k, p in params.items()}
        f, g = sgd.objective(model, params, data)
        f0, g0 = model.objective(params, X, y)
        assert abs(f - f0) <= 1e-14 * max(1, abs(f0))
        assert np.allclose(flatten(g), flatten(g0), rtol=1e-13, atol=1e-15)
        hv, hv0 = sgd.hvp(model, params, data, None, v), model.hvp(params, X, y, v)
        assert np.allclose(flatten(hv), flatten(hv0), rtol=1e-12, atol=1e-15)
        if not isinstance(model, MLP):
            H = sgd.hessian(model, params, data)
            assert np.allclose(H, model.hessian(params, X, y), rtol=1e-12, atol=1e-15)
        data.close()


# ----------------------------------------------------------------------------- solvers


@pytest.fixture(scope="module")
def extreme_problem():
    """Logistic data plus rows at |z| ~ 1000 (correctly labelled), and sklearn's optimum."""
    from sklearn.linear_model import LogisticRegression as SkLogistic

    X, y = _logistic_data()
    sk0 = SkLogistic(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    w = sk0.coef_[0]
    far = np.outer(np.r_[1.0, -1.0, 1.0, -1.0], w / (w @ w)) * 1000.0
    X = np.vstack([X, far])
    y = np.r_[y, 1.0, 0.0, 1.0, 0.0]
    sk = SkLogistic(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    return X, y, np.r_[sk.coef_[0], sk.intercept_]


@pytest.mark.parametrize("method", ["newton", "lbfgs", "newton_cg", "gd"])
def test_solvers_reach_sklearn_optimum(client, extreme_problem, method):
    X, y, ref = extreme_problem
    model = LogisticRegression(regularizer=("l2", {"lam": 1.0 / len(X)}))
    Xd = da.from_array(X, chunks=(1000, -1))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        result = sgd.fit(
            model,
            Xd,
            da.from_array(y, chunks=1000),
            client=client,
            method=method,
            tol=1e-10,
            max_iter=500,
            chunk_rows=1000,
        )
        p0 = model.init(n_features=X.shape[1])
        local = minimize(
            ModelProblem(model, X, y, p0), flatten(p0), p0, method=method, tol=1e-10, max_iter=500
        )
    assert result.converged, result.message
    assert 0 < result.n_iter <= {"gd": 500}.get(method, 40)
    assert np.max(np.abs(result.x - ref)) <= 1e-6 * np.max(np.abs(ref))
    assert np.max(np.abs(result.x - local.x)) <= 1e-6 * np.max(np.abs(ref))


@pytest.mark.parametrize("method", ["newton", "damped", "cg", "lbfgs"])
def test_memory_and_cluster_fits_take_the_same_iterates(client, method):
    # one solver core: fit_newton / fit_lbfgs in memory and symgrad.dask.fit on the cluster
    # run the same steps; only the order of the block sums differs (round-off)
    from symgrad.lbfgs import fit_lbfgs
    from symgrad.newton import fit_newton

    X, y = _logistic_data(3000, 5, seed=11)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    p0 = model.init(n_features=5)
    tol = 1e-9
    if method == "lbfgs":
        local = fit_lbfgs(model, p0, X, y, tol=tol)
        options = {"ftol": tol * 1e-6}
    else:
        local = fit_newton(model, p0, X, y, method=method, tol=tol)
        options = {}
    core = {"newton": "newton", "damped": "damped_newton", "cg": "newton_cg"}.get(method, method)
    remote = sgd.fit(
        model, X, y, client=client, method=core, tol=tol, chunk_rows=700, max_iter=1000, **options
    )
    assert local.converged and remote.converged, (local.message, remote.message)
    assert local.n_iter == remote.n_iter > 1
    assert local.n_passes == remote.n_passes
    assert np.max(np.abs(local.x - remote.x)) <= 1e-10
    assert np.allclose(local.history.loss, remote.history.loss, rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", ["newton", "lbfgs"])
def test_a_non_finite_fit_on_the_cluster_warns_and_is_not_converged(client, method):
    from symgrad.errors import ConvergenceWarning

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2))
    y = X @ [1.0, 2.0] + 1e300  # the squared error overflows at the start
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="not finite"):
        result = sgd.fit(LinearRegression(), X, y, client=client, method=method)
    assert result.stop_reason == "non_finite" and not result.converged
    assert np.all(result.x == 0)  # the last finite iterate: the start


def test_newton_takes_one_pass_per_step_and_moves_no_block(client):
    X, y = _logistic_data(3000, 5, seed=3)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    data = sgd.DaskData(X, y, client=client)
    assert len(data.chunks) == 2  # default blocks: one per worker thread at this size
    before = {key: set(addrs) for key, addrs in client.who_has(data._futures).items()}
    result = sgd.fit(model, data, method="newton", tol=1e-10)
    assert result.converged and result.n_passes == result.n_iter + 1
    # the fit moves none of them and gathers none to the driver
    after = {key: set(addrs) for key, addrs in client.who_has(data._futures).items()}
    assert after == before and all(len(addrs) == 1 for addrs in after.values())
    data.close()


def test_softmax_and_custom_loss_match_in_memory(client):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 4))
    cases = [
        (
            SoftmaxRegression(3, regularizer=("l2", {"lam": 1e-3})),
            rng.integers(0, 3, 3000),
            "newton",
        ),
        (
            LinearRegression(loss=cauchy, regularizer=("l2", {"lam": 1e-3})),
            X @ np.r_[1.0, -2.0, 0.5, 0.0] + rng.standard_cauchy(3000),
            "lbfgs",
        ),
    ]
    mlp = MLP([4, 3, 3], activation="tanh", regularizer=("l2", {"lam": 1e-2}))
    cases.append((mlp, rng.integers(0, 3, 3000), "lbfgs"))  # non-convex: compare 6 steps
    for model, y, method in cases:
        steps = 6 if model is mlp else 300
        result = sgd.fit(
            model, X, y, client=client, method=method, tol=1e-9, max_iter=steps, chunk_rows=700
        )
        p0 = model.init(0) if model is mlp else model.init(n_features=4)
        local = minimize(
            ModelProblem(model, X, y, p0), flatten(p0), p0, method=method, tol=1e-9, max_iter=steps
        )
        assert model is mlp or (result.converged and local.converged), (model, result.message)
        got, want = result.x.copy(), local.x.copy()
        if isinstance(model, SoftmaxRegression):  # intercepts are defined up to a shift
            got[-3:] -= got[-3:].mean()
            want[-3:] -= want[-3:].mean()
        assert np.max(np.abs(got - want)) <= 1e-6 * max(1.0, np.max(np.abs(want))), model


def test_lazy_blocks_stream_without_persisting(client):
    def make(block_info=None):
        (start, stop), _ = block_info[None]["array-location"]
        rng = np.random.default_rng(start)
        return rng.normal(size=(stop - start, 3))

    X = da.map_blocks(make, chunks=((700,) * 4, (3,)), dtype=float)
    y = (X.sum(axis=1) > 0).astype(float)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-2}))
    data = sgd.DaskData(X, y, client=client, persist=False, chunk_rows=700)
    params = {"W": np.array([0.3, -0.2, 0.1]), "b": np.array(0.05)}
    f, g = sgd.objective(model, params, data)
    Xn, yn = X.compute(), y.compute()
    f0, g0 = model.objective(params, Xn, yn)
    assert abs(f - f0) <= 1e-14 and np.allclose(g["W"], g0["W"], rtol=1e-13, atol=1e-15)
    result = sgd.fit(model, data, method="newton", tol=1e-10)
    assert result.converged and result.n_iter <= 10


#: blocks alive now, at most, and made, across the in-process workers' threads
_LIVE = {"now": 0, "most": 0, "made": 0}
_LIVE_LOCK = __import__("threading").Lock()


def _gone():
    with _LIVE_LOCK:
        _LIVE["now"] -= 1


def _live_block(block_info=None):
    """A generated block that counts itself while alive (a module function: it pickles)."""
    import weakref

    (start, stop), _ = block_info[None]["array-location"]
    X = np.random.default_rng(start).normal(size=(stop - start, 3))
    with _LIVE_LOCK:
        _LIVE["now"], _LIVE["made"] = _LIVE["now"] + 1, _LIVE["made"] + 1
        _LIVE["most"] = max(_LIVE["most"], _LIVE["now"])
    weakref.finalize(X, _gone)
    return X


def test_streamed_blocks_are_bounded_and_produced_once():
    """persist=False holds about one block per worker thread, however many blocks there are,
    and a y computed from X reuses X's blocks rather than producing them a second time."""
    _LIVE.update(now=0, most=0, made=0)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as local:
        X = da.map_blocks(_live_block, chunks=((500,) * 40, (3,)), dtype=float)
        y = (X.sum(axis=1) > 0).astype(float)
        data = sgd.DaskData(X, y, client=local, persist=False, chunk_rows=500)
        model = LogisticRegression()
        params = model.init(n_features=3)
        f, _ = sgd.objective(model, params, data)
    made, most = _LIVE["made"], _LIVE["most"]
    Xn = X.compute(scheduler="sync")
    assert abs(f - model.objective(params, Xn, (Xn.sum(axis=1) > 0) * 1.0)[0]) <= 1e-14
    assert made == 40  # each block produced once, though y is computed from X
    assert most <= 2 * (sgd.STREAM_DEPTH + 1), most  # 2 workers: in flight + the next


def test_progress_bar_on_request(client, capsys):
    pytest.importorskip("tqdm")
    X, y = _logistic_data(500, 3)
    result = sgd.fit(LogisticRegression(), X, y, client=client, method="lbfgs", progress=True)
    assert "lbfgs" in capsys.readouterr().err and result.n_iter > 0


# ----------------------------------------------------------------------------- bad input


def test_bad_input_gives_one_clear_error(client):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    X, y = _logistic_data(400, 3)
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abc")), npartitions=2)
    with pytest.raises(DataError, match="unknown chunk sizes"):
        sgd.DaskData(frame.values, y, client=client)
    with pytest.raises(DataError, match="non-numeric column.*'name'"):
        sgd.DaskData(frame.assign(name="x"), y, client=client)
    with pytest.raises(DataError, match="dtype object"):
        sgd.DaskData(X.astype(object), y, client=client)
    bad = X.copy()
    bad[123, 1] = np.nan
    with pytest.raises(DataError, match="row 123"):
        sgd.DaskData(bad, y, client=client, chunk_rows=100)
    with pytest.raises(DataError, match="row 123"):  # streamed: found when the loss is NaN
        sgd.fit(
            LogisticRegression(),
            da.from_array(bad, chunks=(100, -1)),
            y,
            client=client,
            persist=False,
        )


def test_unreachable_scheduler_fails_fast():
    start = time.perf_counter()
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        sgd.connect("tcp://127.0.0.1:9", timeout=1)
    assert time.perf_counter() - start < 15


def test_fit_survives_a_worker_dying(client):
    X, y, ref = _logistic_data(3000, 4, seed=7) + (None,)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    data = sgd.DaskData(X, y, client=client, chunk_rows=500)

    class Killing(sgd.DaskProblem):
        passes = 0

        def newton_parts(self, x):
            self.passes += 1
            if self.passes == 2:  # the worker holding the first block dies mid-fit
                victim = next(iter(client.who_has(data._futures[:1]).values()))[0]
                try:
                    client.run(os._exit, 1, workers=[victim])
                except Exception:  # noqa: BLE001 - the worker's connection drops as it exits
                    pass
            return super().newton_parts(x)

    p0 = model.init(n_features=4)
    result = minimize(Killing(model, data, p0), flatten(p0), p0, method="newton", tol=1e-10)
    local = minimize(ModelProblem(model, X, y, p0), flatten(p0), p0, method="newton", tol=1e-10)
    assert result.converged
    assert np.max(np.abs(result.x - local.x)) <= 1e-10
    client.wait_for_workers(2, timeout=60)


# ----------------------------------------------------------------------------- dask-glm


def test_glm_family_plugs_symgrad_losses_into_dask_glm(extreme_problem):
    pytest.importorskip("dask_glm")
    import dask
    from dask_glm import algorithms

    X, y, _ = extreme_problem  # rows at |z| ~ 1000, where the stock family overflows
    X1 = np.c_[X, np.ones(len(X))]
    Xd, yd = da.from_array(X1, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    family = sgd.GLMFamily()
    with dask.config.set(scheduler="sync"), np.errstate(over="raise", invalid="raise"):
        # dask-glm's newton has no penalty: compare with symgrad's unpenalized in-memory Newton
        beta = np.asarray(algorithms.newton(Xd, yd, family=family, tol=1e-12))
        model = LogisticRegression()
        p0 = model.init(n_features=X.shape[1])
        local = minimize(ModelProblem(model, X, y, p0), flatten(p0), p0, tol=1e-11)
        assert np.max(np.abs(beta - local.x)) <= 1e-6 * np.max(np.abs(local.x))
        # any spec: the family's summed gradient is n times the model's mean gradient
        custom = sgd.GLMFamily((cauchy, {"c": 0.5}))
        reg = LinearRegression(loss=(cauchy, {"c": 0.5}), fit_intercept=False)
        b = np.linspace(-0.1, 0.1, X1.shape[1])
        g = np.asarray(custom.pointwise_gradient(b, Xd, yd).compute())
        assert np.allclose(
            g, len(X) * reg.objective({"W": b}, X1, y)[1]["W"], rtol=1e-12, atol=1e-15
        )


def _assert_cli_fit_matches_memory(code, out, X, y):
    """The CLI exited 0 and saved the in-memory L2 (1e-3) logistic optimum to -o."""
    assert code == 0
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    p0 = model.init(n_features=X.shape[1])
    local = minimize(ModelProblem(model, X, y, p0), flatten(p0), p0, tol=1e-10)
    saved = np.load(out)
    assert np.allclose(np.r_[saved["W"], saved["b"]], local.x, rtol=1e-6, atol=1e-8)


def test_cli_trains_parquet_on_a_scheduler_address(client, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from symgrad.cli.app import main

    X, y = _logistic_data(1500, 3, seed=11)
    for i in range(3):
        part = pd.DataFrame(X[i * 500 : (i + 1) * 500], columns=["a", "b", "c"])
        part["label"] = y[i * 500 : (i + 1) * 500].astype(int)
        part.to_parquet(tmp_path / f"part{i}.parquet")
    out = tmp_path / "params.npz"
    args = [
        "train",
        "--data",
        str(tmp_path / "*.parquet"),
        "--label",
        "label",
        "--solver",
        "newton",
        "--no-standardize",
        "--val-fraction",
        "0",
        "--regularizer",
        "l2",
        "--lam",
        "1e-3",
        "-o",
        str(out),
        "--force",
    ]
    code = main([*args, "--scheduler", client.scheduler.address])
    _assert_cli_fit_matches_memory(code, out, X, y)
    assert "converged" in capsys.readouterr().out
    assert main([*args, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def _write_arrays(kind, table, where):
    """Write ``table`` (rows of features then label) as dask users store arrays."""
    if kind == "npy-glob":
        for i, part in enumerate(np.array_split(table, 12)):  # part10 sorts after part9
            np.save(where / f"part{i}.npy", part)
        return str(where / "part*.npy")
    if kind == "npy-stack":
        da.to_npy_stack(str(where / "stack"), da.from_array(table, chunks=(400, -1)))
        return str(where / "stack")
    pytest.importorskip("zarr")
    da.from_array(table, chunks=(400, -1)).to_zarr(str(where / "table.zarr"))
    return str(where / "table.zarr")


@pytest.mark.parametrize("kind", ["npy-glob", "npy-stack", "zarr"])
def test_cli_trains_npy_and_zarr_arrays(kind, client, tmp_path, capsys):
    """Arrays are read in row blocks on the workers: the label is a column index."""
    from symgrad.cli.app import main

    X, y = _logistic_data(1500, 3, seed=12)
    source = _write_arrays(kind, np.column_stack([y, X]), tmp_path)
    read_X, read_y, names = sgd.read_table(source, "0")
    assert names == ["x1", "x2", "x3"] and np.array_equal(read_X.compute(), X)
    out = tmp_path / "params.npz"
    args = ["train", "--data", source, "--label", "0", "--solver", "newton", "--no-standardize"]
    args += ["--val-fraction", "0"]
    args += ["--regularizer", "l2", "--lam", "1e-3", "-o", str(out), "--force"]
    code = main([*args, "--scheduler", client.scheduler.address])
    _assert_cli_fit_matches_memory(code, out, X, y)
    assert "converged" in capsys.readouterr().out
    bad = [*args[:4], "label", *args[5:], "--scheduler", client.scheduler.address]
    assert main(bad) == 2
    assert "label is a column index" in capsys.readouterr().err


def _block_that_kills_its_worker_once(marker, block_info=None):
    """Rows from their position; the first call for block 3 ends its worker's process."""
    (start, stop), _ = block_info[None]["array-location"]
    if start == 3 * 400 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return np.random.default_rng(start).normal(size=(stop - start, 3))


def test_streamed_fit_survives_a_worker_dying(client, tmp_path):
    """persist=False: a worker that dies mid-pass has its blocks recomputed elsewhere."""
    marker = str(tmp_path / "killed")
    X = da.map_blocks(
        _block_that_kills_its_worker_once, marker, chunks=((400,) * 8, (3,)), dtype=float
    )
    y = (X[:, 0] - X[:, 1] + 0.5 * da.sin(7 * X.sum(axis=1)) > 0).astype(float)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    data = sgd.DaskData(X, y, client=client, persist=False, chunk_rows=400)
    result = sgd.fit(model, data, method="newton", tol=1e-10)
    assert os.path.exists(marker)  # a worker did die
    open(marker, "w").close()
    Xn = X.compute(scheduler="sync")
    yn = (Xn[:, 0] - Xn[:, 1] + 0.5 * np.sin(7 * Xn.sum(axis=1)) > 0).astype(float)
    p0 = model.init(n_features=3)
    local = minimize(ModelProblem(model, Xn, yn, p0), flatten(p0), p0, method="newton", tol=1e-10)
    assert result.converged and np.max(np.abs(result.x - local.x)) <= 1e-10
    client.wait_for_workers(2, timeout=60)


# ----------------------------------------------------------------------------- block layout


def _layout_sources(tmp_path, client):
    """The same table as dask users hold it: (name, X, y) per source."""
    pd = pytest.importorskip("pandas")
    X, y = _logistic_data(2400, 5, seed=21)
    table = np.column_stack([X, y])
    Xd = da.from_array(X, chunks=(300, -1)).persist()  # blocks already on the workers
    yield "persisted", Xd, da.from_array(y, chunks=300).persist()
    lazy = da.map_blocks(
        lambda block_info=None: _rows_at(block_info), chunks=((300,) * 8, (5,)), dtype=float
    )
    yield "lazy graph", lazy, (lazy[:, 0] > 0).astype(float)
    frame = pd.DataFrame(table, columns=[*"abcde", "label"])
    for i in range(3):
        frame[i * 800 : (i + 1) * 800].to_parquet(tmp_path / f"part{i}.parquet")
        frame[i * 800 : (i + 1) * 800].to_csv(tmp_path / f"part{i}.csv", index=False)
    for pattern in ("*.parquet", "*.csv"):
        Xs, ys, _ = sgd.read_table(str(tmp_path / pattern), "label")
        yield pattern, Xs, ys
    for kind in ("npy-glob", "npy-stack", "zarr"):
        where = tmp_path / kind
        where.mkdir()
        Xs, ys, _ = sgd.read_table(_write_arrays(kind, table, where), "-1")
        yield kind, Xs, ys


def _rows_at(block_info):
    (start, stop), _ = block_info[None]["array-location"]
    return np.random.default_rng(start).normal(size=(stop - start, 5))


@pytest.mark.parametrize("persist", [True, False])
def test_blocks_are_aligned_and_stay_where_they_are(client, tmp_path, persist):
    """Every block the kernels see is aligned, C-contiguous float64, whatever the source;
    persisted blocks are evaluated where they live (no copy moves between workers)."""
    for name, X, y in _layout_sources(tmp_path / str(persist), client):
        (tmp_path / str(persist)).mkdir(exist_ok=True)
        with sgd.DaskData(X, y, client=client, persist=persist, chunk_rows=300) as data:
            blocks, misaligned, not_float, stored = data.run("layout", None, None)[0]
            assert (blocks, misaligned, not_float) == (len(data.chunks), 0, 0), name
            if persist:  # and as they are kept on the workers
                assert stored == 0, name
                data.run("rows", None, None)
                assert data.times["transfer"] == 0, name  # the passes moved no block
                holders = client.who_has(data._futures).values()
                assert all(len(h) == 1 for h in holders), name
                assert len({h[0] for h in holders}) == 2, name  # spread over both workers


def test_fit_reports_where_the_time_goes(client, capsys):
    X = da.map_blocks(
        lambda block_info=None: _rows_at(block_info), chunks=((2000,) * 4, (5,)), dtype=float
    )
    y = (X[:, 0] > 0).astype(float)
    for persist in (True, False):
        result = sgd.fit(
            LogisticRegression(), X, y, client=client, persist=persist, chunk_rows=2000,
            method="lbfgs", progress=True,
        )  # fmt: skip
        times = result.times
        assert times["passes"] == result.n_passes and times["wall"] > 0
        assert times["compute"] > 0 and times["reduce"] >= 0
        # streamed passes produce their blocks; persisted ones did so once, before the fit
        assert (times["produce"] > 0) != persist and (times["persist"] > 0) == persist
        assert "produce" in capsys.readouterr().err  # the progress output shows the split
        assert sgd.format_times(times).startswith(f"{result.n_passes} passes in ")
