"""symgrad.dask never hangs: a block that raises, or ends its worker's process, ends the fit in
bounded time with one ClusterError line naming the block and the cause, on separate worker
processes (a LocalCluster with nannies, and `dask scheduler` / `dask worker` started as
commands, whose worker never comes back); the CLI then exits 1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from symgrad.errors import ClusterError
from symgrad.models import LogisticRegression

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
sgd = pytest.importorskip("symgrad.dask")

#: No test here may take longer than this (a hang would be killed by pytest's timeout, or
#: by the developer: this makes it a failure with a message instead).
BOUND_S = 45


def _rows(start, stop):
    return np.random.default_rng(start).normal(size=(stop - start, 3))


def _poisoned(kind, test, block_info=None):
    """Rows from their position; block 2's task raises or ends its worker's process."""
    (start, stop), _ = block_info[None]["array-location"]
    if start == 2 * 400:
        if kind == "exit":
            os._exit(1)
        raise ValueError("cannot decode this block")
    return _rows(start, stop)


def _poisoned_data(kind, test=""):
    """Rows whose block 2 is poisoned; ``test`` gives each test graph keys of its own."""
    X = da.map_blocks(_poisoned, kind, test, chunks=((400,) * 6, (3,)), dtype=float)
    return X, (X[:, 0] > 0).astype(float)


@pytest.fixture
def nanny_cluster():
    """Two worker processes under nannies, which restart them; one retry per task, so a
    task that kills its worker is given up after two deaths, not four."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("persist", [True, False])
@pytest.mark.parametrize("kind", ["raise", "exit"])
def test_a_failing_block_ends_the_fit_with_one_named_error(nanny_cluster, kind, persist):
    X, y = _poisoned_data(kind, f"{kind}-{persist}")
    start = time.perf_counter()
    with pytest.raises(ClusterError) as caught:
        sgd.fit(LogisticRegression(), X, y, client=nanny_cluster, persist=persist, progress=False)
    message = str(caught.value)
    assert time.perf_counter() - start < BOUND_S
    assert "\n" not in message and re.match(r"block \d of 6 \(rows \d+\.\.\d+\) failed: ", message)
    # (a worker's death is blamed by dask on every task assigned to it: symgrad computes such
    # blocks again alone, so the block named is the one that kills its worker)
    assert message.startswith("block 2 of 6 (rows 800..1200) failed: "), message
    cause = "KilledWorker" if kind == "exit" else "ValueError: cannot decode this block"
    assert cause in message, message


# ----------------------------------------------------------------------------- commands


def _command(*args, cwd):
    """Start a dask command (scheduler or worker) as its own process, in another folder,
    able to import symgrad and this module (the scheduler unpickles the task graph)."""
    import symgrad

    exe = os.path.join(os.path.dirname(sys.executable), "dask")
    paths = [os.path.dirname(__file__), os.path.dirname(os.path.dirname(symgrad.__file__))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [exe, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A `dask scheduler` process; yields (address file, folder) and stops it after."""
    tmp_path = tmp_path_factory.mktemp("scheduler")
    where = tmp_path / "scheduler.json"
    proc = _command(
        "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(where), cwd=tmp_path
    )
    deadline = time.monotonic() + 30
    while not where.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    yield where, tmp_path
    proc.terminate()
    proc.wait(timeout=30)


def _worker(scheduler_file, *extra):
    """A `dask worker` without a nanny: once its process ends, it never comes back."""
    return _command(
        "worker", "--scheduler-file", str(scheduler_file), "--no-nanny", "--nthreads", "1",
        "--no-dashboard", *extra, cwd=scheduler_file.parent,
    )  # fmt: skip


def test_a_worker_that_never_comes_back_ends_the_fit(scheduler):
    where, _ = scheduler
    worker = _worker(where)
    with distributed.Client(scheduler_file=str(where), timeout=30) as client:
        client.wait_for_workers(1, timeout=30)
        X, y = _poisoned_data("exit")
        start = time.perf_counter()
        with pytest.raises(
            ClusterError, match=r"^block 2 of 6 .* no Dask worker has been connected for 3 s"
        ):
            sgd.fit(
                LogisticRegression(), X, y, client=client, persist=False, chunk_rows=400,
                worker_timeout=3,
            )  # fmt: skip
        assert time.perf_counter() - start < BOUND_S
    assert worker.wait(timeout=10) != 0  # the block ended it


#: A worker preload: the first task that evaluates a block ends the worker's process.
_KILLER = """
import os
from distributed.diagnostics.plugin import WorkerPlugin


class Killer(WorkerPlugin):
    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("_evaluate"):
            os._exit(1)


async def dask_setup(worker):
    await worker.plugin_add(Killer(), name="killer")
"""


def test_cli_exits_1_with_one_line_when_its_worker_dies(scheduler, capsys):
    pd = pytest.importorskip("pandas")
    from symgrad.cli.app import main

    where, folder = scheduler
    (folder / "killer.py").write_text(_KILLER)
    frame = pd.DataFrame(_rows(0, 900), columns=["a", "b", "c"])
    frame["label"] = (frame["a"] > 0).astype(int)
    frame.to_parquet(folder / "part0.parquet")
    worker = _worker(where, "--preload", str(folder / "killer.py"))
    with distributed.Client(scheduler_file=str(where), timeout=30) as client:
        client.wait_for_workers(1, timeout=30)
        address = client.scheduler.address
    out = folder / "params.npz"
    start = time.perf_counter()
    code = main(
        ["train", "--data", str(folder / "*.parquet"), "--scheduler", address,
         "--scheduler-timeout", "3", "--solver", "newton", "--val-fraction", "0",
         "--no-standardize", "-o", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert time.perf_counter() - start < BOUND_S
    assert code == 1 and not out.exists()
    assert err[-1].startswith("error: block 0 of 1 (rows 0..900) failed: "), err
    assert "no Dask worker has been connected for 3 s" in err[-1]
    assert worker.wait(timeout=10) != 0
