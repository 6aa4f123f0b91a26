"""Compiled kernels cross real process boundaries as their emitted source: a fresh ``python -c``,
``GridSearchCV(n_jobs=2)``'s loky children, and ``dask worker`` processes started in another
folder run a user's kernel without importing sympy or the compiler."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg

ROOT = Path(__file__).resolve().parents[2]
#: modules a process that only runs compiled kernels must never load (and, outside a Dask
#: worker, which loads it for its own templates, jinja2)
COMPILER = ("sympy", "symgrad.compiler", "symgrad.compiler.codegen")


@sg.loss
def tukey(yhat, y, c=4.685):
    """Tukey's biweight: bounded, so outliers stop pulling."""
    r = yhat - y
    return sp.Piecewise(
        (c**2 / 6 * (1 - (1 - (r / c) ** 2) ** 3), sp.Abs(r) <= c), (c**2 / 6, True)
    )


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONSTARTUP", None)
    return env


CHILD = """
import json, pickle, sys
import numpy as np
loaded = pickle.loads(open(sys.argv[1], "rb").read())
z, t = np.linspace(-9.0, 9.0, 7), np.zeros(7)
values = [np.asarray(f(z, t)).tolist() for f in loaded]
compiler = [m for m in {compiler!r} if m in sys.modules]
print(json.dumps({{"values": values, "compiler": compiler,
                   "module": loaded[0].__module__}}))
"""


def _fresh(tmp_path: Path, blob: bytes) -> subprocess.CompletedProcess:
    (tmp_path / "k.pkl").write_bytes(blob)
    return subprocess.run(
        [sys.executable, "-c", CHILD.format(compiler=(*COMPILER, "jinja2")), "k.pkl"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("protocol", [4, 5, "cloudpickle"])
def test_a_pickled_kernel_loads_in_a_fresh_process_without_sympy(tmp_path, protocol):
    kernels = sg.compile(tukey)
    functions = [kernels.tukey_grad, partial(kernels.tukey_hess, c=2.0), kernels.tukey]
    if protocol == "cloudpickle":
        blob = pytest.importorskip("cloudpickle").dumps(functions)
    else:
        blob = pickle.dumps(functions, protocol=protocol)
    assert blob.count(b"def tukey_grad(") == 1  # the source, once for the three functions
    proc = _fresh(tmp_path, blob)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["compiler"] == []
    assert out["module"] == kernels.__name__
    z, t = np.linspace(-9.0, 9.0, 7), np.zeros(7)
    assert out["values"] == [np.asarray(f(z, t)).tolist() for f in functions]


def test_emitted_modules_import_numpy_alone():
    """What a receiving process runs needs numpy (and the standard library) only:
    no symgrad module, no sympy, at any depth."""
    source = sg.compile(tukey).__source__
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert "numpy" in imported and imported - {"numpy"} <= sys.stdlib_module_names, imported


def test_an_old_protocol_pickle_names_the_module_and_says_why_it_cannot_load(tmp_path):
    """Protocols 2 and 3 write a module name as bare text: the source cannot travel, and the
    name alone is refused with one line (nothing rebuilt from it)."""
    proc = _fresh(tmp_path, pickle.dumps([sg.compile(tukey).tukey_grad], protocol=3))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("ImportError: symgrad.compiled.k_")
    assert "not a compiled kernel of this process" in proc.stderr


# ------------------------------------------------------------ GridSearchCV(n_jobs=2) children


def _compiled_here(estimator, X, y) -> float:
    """A scorer run in the child that fitted ``estimator``: 1.0 if it compiled a spec there.

    (The estimator's spec itself unpickles with sympy; its kernels arrive as source.)"""
    return float("symgrad.compiler.codegen" in sys.modules)


def test_grid_search_children_run_user_kernels_without_compiling():
    pytest.importorskip("sklearn")
    from joblib.externals.loky import get_reusable_executor
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import GridSearchCV

    from symgrad.sklearn import SymgradRegressor

    X, y = load_diabetes(return_X_y=True)
    X, y = (X[:150] - X.mean(0)) / X.std(0), y[:150]
    grid = {"alpha": [1e-4, 1e-2]}
    scoring = {"r2": "r2", "compiler": _compiled_here}
    estimator = SymgradRegressor(loss=(tukey, {"c": 60.0}))
    # fresh loky workers: ones an earlier test left could have compiled this spec themselves
    get_reusable_executor().shutdown(wait=True, kill_workers=True)
    two = GridSearchCV(estimator, grid, cv=2, n_jobs=2, scoring=scoring, refit="r2").fit(X, y)
    one = GridSearchCV(estimator, grid, cv=2, n_jobs=1, scoring="r2").fit(X, y)
    assert two.cv_results_["mean_test_compiler"].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(
        two.cv_results_["mean_test_r2"], one.cv_results_["mean_test_score"], rtol=1e-12
    )
    assert two.best_params_ == one.best_params_


# ------------------------------------------------------------ dask worker processes


def _worker_state(name: str) -> dict:
    return {
        "compiler": [m for m in COMPILER if m in sys.modules],
        "kernel": name in sys.modules,
        "cwd": os.getcwd(),
    }


def _first_call(blob: bytes) -> tuple[float, list]:
    """Unpickle a compiled kernel and call it once; return the seconds and the result."""
    start = time.perf_counter()
    fn = pickle.loads(blob)
    out = fn(np.linspace(-9.0, 9.0, 7), np.zeros(7))
    return time.perf_counter() - start, out.tolist()


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _fit_on_workers(client, name: str) -> None:
    """A ``symgrad.dask.fit`` of a model on the user's spec: the model pickles to the workers
    with its spec unread (``symgrad._specref``), so they still never import sympy, and the fit
    takes the in-memory fit's iterates."""
    from symgrad import dask as sgd
    from symgrad.lbfgs import fit_lbfgs
    from symgrad.models import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.standard_t(2, size=400)
    model = LinearRegression(loss=tukey)
    tol = 1e-9
    ours = sgd.fit(
        model, X, y, client=client, method="lbfgs", tol=tol, chunk_rows=100, max_iter=1000,
        progress=False, ftol=tol * 1e-6,
    )  # fmt: skip
    memory = fit_lbfgs(model, model.init(n_features=3), X, y, tol=tol)
    assert ours.n_iter == memory.n_iter > 1
    assert np.max(np.abs(ours.x - memory.x)) <= 1e-10
    state = client.run(_worker_state, name)
    assert all(s["compiler"] == [] for s in state.values()), state


def test_user_kernels_run_on_dask_worker_processes_in_another_folder(tmp_path):
    """Two ``dask worker`` processes, started in a folder where neither the tests nor the specs
    can be imported, against a scheduler's tcp address: the kernel arrives inside the pickle."""
    distributed = pytest.importorskip("distributed")
    cloudpickle = pytest.importorskip("cloudpickle")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kernels = sg.compile(tukey)
    cluster = distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    )
    worker = [str(Path(sys.executable).with_name("dask")), "worker", cluster.scheduler_address]
    worker += ["--nthreads", "1", "--no-dashboard", "--local-directory", str(elsewhere)]
    procs = [
        subprocess.Popen(
            worker, cwd=elsewhere, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    # the probes below go by value: this test module cannot be imported over there
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with distributed.Client(cluster.scheduler_address, timeout=30) as client:
            client.wait_for_workers(2, timeout=40)
            before = client.run(_worker_state, str(kernels.__name__))
            assert all(s["compiler"] == [] and not s["kernel"] for s in before.values()), before
            assert {s["cwd"] for s in before.values()} == {str(elsewhere)}
            timed = client.run(_first_call, pickle.dumps(kernels.tukey_grad))
            z, t = np.linspace(-9.0, 9.0, 7), np.zeros(7)
            assert all(out == kernels.tukey_grad(z, t).tolist() for _, out in timed.values())
            future = client.submit(kernels.tukey_hess, z, t, c=3.0, pure=False)
            assert np.array_equal(future.result(timeout=30), kernels.tukey_hess(z, t, c=3.0))
            after = client.run(_worker_state, str(kernels.__name__))
            assert all(s["compiler"] == [] and s["kernel"] for s in after.values()), after
            print("first call on each worker (s):", [round(s, 3) for s, _ in timed.values()])
            _fit_on_workers(client, kernels.__name__)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        _stop(procs)
        cluster.close()
