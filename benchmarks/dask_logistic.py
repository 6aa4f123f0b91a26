"""Logistic regression on a Dask cluster: symgrad against dask-glm, dask-ml and in-memory numpy.

    python -m benchmarks.dask_logistic              # 2e5 x 20 side by side, then ~30 GB streamed
    python -m benchmarks.dask_logistic --big-gb 4   # a smaller out-of-core run
    python -m benchmarks.dask_logistic --tiny       # seconds: what the test suite runs

Three tables, one run, one LocalCluster (2 workers x 1 thread unless told):

1. throughput of one value+gradient pass, rows/s, against single-thread in-memory numpy;
2. solvers side by side on the same persisted data (unregularized logistic regression with
   an intercept, the problem every solver here can state): seconds per iteration,
   iterations, final mean log-loss and the largest coefficient error against scikit-learn;
   then the same with 4 rows at |z| ~ 1000 added;
3. out of core: an array generated chunk by chunk from its block index (never whole),
   streamed through one gradient and a few Newton steps: peak worker RSS against idle, and
   what the kernels add to the pass that only produces the data.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

#: columns of the solver table
HEADER = "| solver | s / iter | iterations | final objective | coef. error |"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000, help="rows of the side-by-side data")
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--chunk-rows", type=int, default=None, help="rows per block (default: 32 MiB)")
    p.add_argument("--big-gb", type=float, default=30.0, help="size of the streamed array, GB")
    p.add_argument("--big-features", type=int, default=50)
    p.add_argument("--newton-steps", type=int, default=3, help="Newton steps on the big array")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="4GiB", help="per worker (bounded memory)")
    p.add_argument("--glm-max-iter", type=int, default=100, help="cap on dask-glm's iterations")
    p.add_argument("--tiny", action="store_true", help="seconds-long run for the test suite")
    p.add_argument(
        "--parts",
        default="lead,throughput,chunks,solvers,big",
        help="comma-separated parts to run",
    )
    p.add_argument("--lead-rows", type=int, default=1_000_000, help="rows of the lead table")
    p.add_argument("--lead-features", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the lead table")
    p.add_argument("--iters", type=int, default=8, help="iterations timed per solver and round")
    p.add_argument("--throughput-rows", type=int, default=2_000_000)
    p.add_argument("--throughput-features", type=int, default=50)
    args = p.parse_args(argv)
    args.big_chunk_rows = None
    if args.tiny:
        args.rows, args.features, args.chunk_rows, args.glm_max_iter = 4000, 5, 1000, 2
        args.big_gb, args.big_features, args.newton_steps = 16_000 * 5 * 8 / 1e9, 5, 1
        args.big_chunk_rows = 4000
        args.throughput_rows, args.throughput_features = 4000, 5
        args.lead_rows, args.lead_features, args.rounds, args.iters = 4000, 5, 1, 2
    return args


# ----------------------------------------------------------------------------- data


def make_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a non-separable logistic problem (finite unregularized optimum) and its w."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d) / np.sqrt(d)
    y = (X @ w + 0.25 + rng.logistic(size=n) > 0).astype(float)
    return X, y, w


def generated_block(block_info: dict | None = None) -> np.ndarray:
    """Return rows [start, stop) of the streamed array, made from their position alone."""
    (start, stop), (_, d) = block_info[None]["array-location"]
    rng = np.random.default_rng(start)
    X = rng.random((stop - start, d))
    X *= 2.0
    X -= 1.0
    return X


def generated_labels(X: np.ndarray) -> np.ndarray:
    """Return 0/1 labels of a block from its rows (logistic noise seeded by the block)."""
    rng = np.random.default_rng(len(X) + int(abs(X[0, 0]) * 2**40) if len(X) else 0)
    w = np.cos(np.arange(X.shape[1]))
    return (X @ w + rng.logistic(size=len(X)) > 0).astype(float)


# ----------------------------------------------------------------------------- helpers


#: peak RSS seen by the sampling thread of this (worker) process, bytes
_PEAK = [0]


def _sample(interval: float = 0.01) -> None:
    import psutil

    me = psutil.Process()
    while True:
        _PEAK[0] = max(_PEAK[0], me.memory_info().rss)
        time.sleep(interval)


def _worker_memory(reset: bool = False) -> dict[str, float]:
    """Return this worker's current and peak RSS in MiB (sampled every 10 ms by the thread
    ``_warm`` starts: psutil, as ru_maxrss would count the nanny's memory from before exec);
    ``reset`` starts the peak afresh from now."""
    import psutil

    import benchmarks.dask_logistic as me  # the importable copy, not __main__'s

    rss = psutil.Process().memory_info().rss
    if reset:
        me._PEAK[0] = rss
    return {"rss": rss / 2**20, "peak": max(me._PEAK[0], rss) / 2**20}


def _warm() -> None:
    """Import what a pass needs (so the idle figure includes the libraries) and start the
    memory sampler."""
    import threading

    import benchmarks.dask_logistic as me
    import symgrad.dask  # noqa: F401
    import symgrad.models  # noqa: F401

    threading.Thread(target=me._sample, daemon=True).start()
    time.sleep(0.05)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray) -> float:
    from symgrad.models import LogisticRegression

    params = {"W": coef[:-1], "b": np.asarray(coef[-1])}
    return float(LogisticRegression().objective(params, X, y)[0])


class _Counting:
    """A dask-glm Logistic family that counts how often each solver asks for its pieces."""

    def __init__(self) -> None:
        from dask_glm.families import Logistic

        self.base, self.calls = Logistic, {}
        for name in ("loglike", "pointwise_loss", "pointwise_gradient", "gradient", "hessian"):
            setattr(self, name, self._wrap(name))

    def _wrap(self, name: str) -> Callable[..., Any]:
        fn = getattr(self.base, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args, **kwargs)

        return counted


# ----------------------------------------------------------------------------- 1. throughput


def throughput(client: Any, n: int, d: int, chunk_rows: int | None) -> list[str]:
    """Time one value+gradient pass: in-memory numpy on one thread vs the cluster, on data
    generated on the workers (persisted there) and the same rows computed on the driver."""
    import dask.array as da
    from threadpoolctl import threadpool_limits

    import symgrad.dask as sgd
    from symgrad.models import LogisticRegression

    rows_per = chunk_rows or sgd.DEFAULT_CHUNK_BYTES // (8 * d)
    chunks = (rows_per,) * (n // rows_per) + ((n % rows_per,) if n % rows_per else ())
    Xd = da.map_blocks(generated_block, chunks=(chunks, (d,)), dtype=float)
    yd = Xd.map_blocks(generated_labels, drop_axis=1, dtype=float)
    X, y = da.compute(Xd, yd)
    X, y = np.require(X, requirements=["C", "A"]), np.require(y, requirements=["C", "A"])
    X, y = _checked("in-memory X", X), _checked("in-memory y", y)
    model = LogisticRegression()
    params = {"W": np.full(X.shape[1], 0.01), "b": np.asarray(0.0)}
    with threadpool_limits(1):
        local = min(_timed(lambda: model.objective(params, X, y))[0] for _ in range(3))
    data = sgd.DaskData(Xd, yd, client=client, chunk_rows=rows_per)
    problem = sgd.DaskProblem(model, data, params)
    x = sgd.flatten(params)
    problem.value_and_grad(x)
    remote = min(_timed(lambda: problem.value_and_grad(x))[0] for _ in range(5))
    data.close()
    n = len(X)
    return [
        "| value+gradient pass | seconds | rows/s | time vs numpy |",
        "|---|---|---|---|",
        f"| in-memory numpy, 1 thread | {local:.4f} | {n / local:.3g} | 1.00 |",
        f"| symgrad.dask, {len(client.scheduler_info()['workers'])} workers, persisted "
        f"({len(data.chunks)} blocks) | {remote:.4f} | {n / remote:.3g} | {remote / local:.2f} |",
    ]


# ----------------------------------------------------------------------------- 1b. the lead


def _checked(name: str, a: np.ndarray) -> np.ndarray:
    """Return ``a`` after checking it is aligned and C-contiguous: a timed array that is not
    makes BLAS take its slow path, and the figure would measure that instead."""
    if not (a.flags.aligned and a.flags.c_contiguous):
        raise AssertionError(f"{name} is not aligned and C-contiguous: the timing would mislead")
    return a


def hand_value_and_grad(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> tuple:
    """Mean logistic loss and its gradient, as one writes them by hand in numpy."""
    z = X @ w + b
    loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
    r = (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / len(y)
    return loss, X.T @ r, float(r.sum())


def lead(client: Any, n: int, d: int, rounds: int, iters: int) -> list[str]:
    """From persisted dask arrays (where users start), interleaved over ``rounds``: seconds
    per iteration of L-BFGS and Newton, symgrad against dask-glm on the same cluster and
    data, and one value+gradient pass against single-thread hand numpy on the same rows.
    Each ratio is a median of per-round ratios; every timed array is checked aligned."""
    import dask.array as da
    from dask_glm import algorithms
    from distributed import wait
    from threadpoolctl import threadpool_limits

    import symgrad.dask as sgd
    from symgrad.models import LogisticRegression

    X, y, _ = make_data(n, d)
    X, y = _checked("in-memory X", X), _checked("in-memory y", y)
    rows = sgd.DEFAULT_CHUNK_BYTES // (8 * (d + 1))
    Xd = da.from_array(X, chunks=(rows, -1)).persist()
    yd = da.from_array(y, chunks=rows).persist()
    X1 = da.concatenate([Xd, da.ones((n, 1), chunks=(Xd.chunks[0], 1))], axis=1)
    X1 = X1.rechunk({1: -1}).persist()
    wait([Xd, yd, X1])
    data = sgd.DaskData(Xd, yd, client=client)  # what users call on their persisted arrays
    blocks, misaligned, _, stored = data.run("layout", None, None)[0]
    if misaligned or stored:
        raise AssertionError(f"{misaligned + stored:.0f} of {blocks:.0f} blocks not aligned")
    model = LogisticRegression()
    like = model.init(n_features=d)
    problem, x = sgd.DaskProblem(model, data, like), sgd.flatten(like)
    w0, b0 = np.full(d, 0.01), 0.0
    ratios: dict[str, list[float]] = {"lbfgs": [], "newton": [], "pass": []}
    seconds: dict[str, list[float]] = {k: [] for k in ("sl", "gl", "sn", "gn", "sp", "np")}
    for _ in range(rounds):
        t, r = _timed(lambda: sgd.fit(model, data, method="lbfgs", max_iter=iters, tol=1e-14))
        seconds["sl"].append(t / max(1, r.n_iter))
        fam = _Counting()
        kw = dict(family=fam, max_iter=iters, tol=1e-14, normalize=False)
        t, _ = _timed(lambda f=fam, k=kw: algorithms.lbfgs(X1, yd, **k))
        seconds["gl"].append(t / max(1, fam.calls.get("pointwise_gradient", 1)))
        t, r = _timed(lambda: sgd.fit(model, data, method="newton", max_iter=iters, tol=1e-14))
        seconds["sn"].append(t / max(1, r.n_iter))
        fam = _Counting()
        kw = dict(family=fam, max_iter=iters, tol=1e-14, normalize=False)
        t, _ = _timed(lambda f=fam, k=kw: algorithms.newton(X1, yd, **k))
        seconds["gn"].append(t / max(1, fam.calls.get("hessian", 1)))
        seconds["sp"].append(min(_timed(lambda: problem.value_and_grad(x))[0] for _ in range(3)))
        with threadpool_limits(1):
            local = min(_timed(lambda: hand_value_and_grad(X, y, w0, b0))[0] for _ in range(3))
        seconds["np"].append(local)
        ratios["lbfgs"].append(seconds["gl"][-1] / seconds["sl"][-1])
        ratios["newton"].append(seconds["gn"][-1] / seconds["sn"][-1])
        ratios["pass"].append(seconds["sp"][-1] / seconds["np"][-1])
    data.close()
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    rat = {k: float(np.median(v)) for k, v in ratios.items()}
    workers = len(client.scheduler_info()["workers"])
    return [
        f"**From persisted arrays** ({n:,} x {d} float64, {len(data.chunks)} blocks of "
        f"{max(data.chunks) * d * 8 / 2**20:.0f} MiB, {workers} workers x 1 thread; medians of {rounds} "
        f"interleaved rounds; every timed array and block checked aligned and C-contiguous)",
        "",
        "| measure | symgrad.dask, s | baseline | baseline, s | ratio (median of rounds) |",
        "|---|---|---|---|---|",
        f"| L-BFGS, per iteration | {med['sl']:.4f} | dask-glm lbfgs (normalize=False), "
        f"per function evaluation | {med['gl']:.4f} | {rat['lbfgs']:.2f}x faster |",
        f"| Newton, per iteration | {med['sn']:.4f} | dask-glm newton (normalize=False) | "
        f"{med['gn']:.4f} | {rat['newton']:.2f}x faster |",
        f"| one value+gradient pass | {med['sp']:.4f} | hand numpy in memory, 1 thread | "
        f"{med['np']:.4f} | {rat['pass']:.2f}x the time |",
    ]


# ----------------------------------------------------------------------------- 2. solvers


def _symgrad_rows(client: Any, data: Any, X: np.ndarray, y: np.ndarray, ref: np.ndarray) -> list:
    import symgrad.dask as sgd
    from symgrad.models import LogisticRegression, flatten
    from symgrad.solvers import ModelProblem, minimize

    model, rows = LogisticRegression(), []
    for method in ("newton", "lbfgs", "newton_cg", "gd"):
        seconds, r = _timed(
            lambda m=method: sgd.fit(model, data, method=m, tol=1e-9, max_iter=500, progress=False)
        )
        rows.append((f"symgrad.dask {method}", seconds, r.n_iter, r.x))
    p0 = model.init(n_features=X.shape[1])
    for method in ("newton", "lbfgs"):
        seconds, r = _timed(
            lambda m=method: minimize(
                ModelProblem(model, X, y, p0), flatten(p0), p0, method=m, tol=1e-9, max_iter=500
            )
        )
        rows.append((f"symgrad in memory {method}", seconds, r.n_iter, r.x))
    return rows


def _dask_glm_rows(Xd: Any, yd: Any, max_iter: int) -> list:
    import dask.array as da
    from dask_glm import algorithms

    X1 = da.concatenate([Xd, da.ones((Xd.shape[0], 1), chunks=(Xd.chunks[0], 1))], axis=1)
    X1 = X1.persist()
    rows = []
    for name, count_of in (
        ("gradient_descent", "gradient"),
        ("newton", "hessian"),
        ("lbfgs", "pointwise_gradient"),
    ):
        family = _Counting()
        seconds, beta = _timed(
            lambda n=name, f=family: getattr(algorithms, n)(X1, yd, family=f, max_iter=max_iter)
        )
        beta = np.asarray(beta)
        rows.append((f"dask-glm {name}", seconds, max(1, family.calls.get(count_of, 1)), beta))
    return rows


def _dask_ml_rows(Xd: Any, yd: Any, max_iter: int) -> list:
    try:
        from dask_ml.linear_model import LogisticRegression as DaskMLLogistic
    except ImportError as exc:
        print(f"dask-ml: not installed ({exc}); row skipped", file=sys.stderr)
        return []
    est = DaskMLLogistic(solver="lbfgs", C=1e12, max_iter=max_iter, tol=1e-9)
    seconds, _ = _timed(lambda: est.fit(Xd, yd))
    coef = np.r_[np.ravel(est.coef_), np.ravel(est.intercept_)]
    return [("dask-ml LogisticRegression lbfgs", seconds, getattr(est, "n_iter_", None), coef)]


def solvers(
    client: Any, X: np.ndarray, y: np.ndarray, args: argparse.Namespace, title: str
) -> list:
    """Fit the same problem with every solver and tabulate the results."""
    import dask.array as da
    from sklearn.linear_model import LogisticRegression as SkLogistic

    import symgrad.dask as sgd

    sk = SkLogistic(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
    ref = np.r_[sk.coef_[0], sk.intercept_]
    data = sgd.DaskData(X, y, client=client, chunk_rows=args.chunk_rows)
    rows = _symgrad_rows(client, data, X, y, ref)
    rows_d = data.chunks
    data.close()
    Xd, yd = da.from_array(X, chunks=(rows_d, -1)).persist(), da.from_array(y, chunks=(rows_d,))
    with np.errstate(all="ignore"):
        rows += _dask_glm_rows(Xd, yd.persist(), args.glm_max_iter)
        rows += _dask_ml_rows(Xd, yd, args.glm_max_iter) if not args.tiny else []
    out = [
        f"**{title}** ({len(X)} x {X.shape[1]}, {len(rows_d)} blocks; reference: "
        f"scikit-learn, objective {_objective(X, y, ref):.10f})",
        "",
        HEADER,
        "|---|---|---|---|---|",
    ]
    for name, seconds, iters, coef in rows:
        with np.errstate(all="ignore"):
            err = float(np.max(np.abs(coef - ref)) / np.max(np.abs(ref)))
            obj = _objective(X, y, coef)
        per = f"{seconds / iters:.4f}" if iters else f"n/a ({seconds:.1f} s in all)"
        out.append(f"| {name} | {per} | {iters or 'n/a'} | {obj:.10f} | {err:.1e} |")
    return out


def chunk_sizes(client: Any, n: int, d: int, sizes: list[int]) -> list[str]:
    """Time a value+gradient pass for several block sizes, persisted and streamed."""
    import dask.array as da

    import symgrad.dask as sgd
    from symgrad.models import LogisticRegression

    model = LogisticRegression()
    params = {"W": np.full(d, 0.01), "b": np.asarray(0.0)}
    x = sgd.flatten(params)
    out = [
        "| rows per block | MiB | blocks | persisted pass, s | streamed pass, s |",
        "|---|---|---|---|---|",
    ]
    for rows in sizes:
        chunks = ((rows,) * (n // rows), (d,))
        X = da.map_blocks(generated_block, chunks=chunks, dtype=float)
        y = X.map_blocks(generated_labels, drop_axis=1, dtype=float)
        times = []
        for persist in (True, False):
            data = sgd.DaskData(X, y, client=client, persist=persist, chunk_rows=rows)
            problem = sgd.DaskProblem(model, data, params)
            problem.value_and_grad(x)
            times.append(min(_timed(lambda p=problem: p.value_and_grad(x))[0] for _ in range(2)))
            data.close()
        mib = rows * d * 8 / 2**20
        out.append(f"| {rows:,} | {mib:.1f} | {n // rows} | {times[0]:.3f} | {times[1]:.3f} |")
    return out


# ----------------------------------------------------------------------------- 3. out of core


def out_of_core(client: Any, gb: float, d: int, steps: int, chunk_rows: int | None) -> list[str]:
    """Stream a generated array bigger than memory through a gradient and Newton steps."""
    import dask.array as da

    import symgrad.dask as sgd
    from symgrad.models import LogisticRegression, flatten

    rows_per = chunk_rows or sgd.DEFAULT_CHUNK_BYTES // (8 * d)
    n = max(rows_per, int(gb * 1e9 / (8 * d)) // rows_per * rows_per)
    X = da.map_blocks(generated_block, chunks=((rows_per,) * (n // rows_per), (d,)), dtype=float)
    y = X.map_blocks(generated_labels, drop_axis=1, dtype=float)
    if len(X.chunks[0]) > 8:  # fresh workers for the memory figures (not for tiny runs)
        client.restart()
    client.run(_warm)
    cold = client.run(_worker_memory, True)
    model = LogisticRegression(regularizer=("l2", {"lam": 1e-6}))
    data = sgd.DaskData(X, y, client=client, persist=False, chunk_rows=rows_per)
    like = model.init(n_features=d)
    problem = sgd.DaskProblem(model, data, like)
    t_first, (f, g) = _timed(lambda: problem.value_and_grad(flatten(like)))  # also warms up
    # idle: a worker that has run a pass (libraries loaded) and holds no data
    client.run(gc.collect)
    idle = client.run(_worker_memory, True)

    def produce() -> float:
        return float(data.run("rows", model, like)[0])

    t_data, _ = _timed(produce)
    before = dict(data.times)
    t_grad, _ = _timed(lambda: problem.value_and_grad(flatten(like)))
    spent = {k: v - before[k] for k, v in data.times.items()}  # that one pass, by kind
    threads = sum(client.nthreads().values())
    t_grad = min(t_first, t_grad)
    t_fit, r = _timed(lambda: sgd.fit(model, data, method="newton", max_iter=steps, progress=False))
    used = client.run(_worker_memory)
    chunk_mib = rows_per * d * 8 / 2**20
    out = [
        f"**Out of core**: {n:,} x {d} float64 = {n * d * 8 / 1e9:.1f} GB generated from block "
        f"indices ({len(data.chunks)} blocks of {chunk_mib:.0f} MiB), never materialized",
        "",
        "| measure | value |",
        "|---|---|",
        f"| pass that only produces the data | {t_data:.1f} s ({n / t_data:.3g} rows/s) |",
        f"| value+gradient pass (produce + kernels), best of 2 | {t_grad:.1f} s "
        f"({n / t_grad:.3g} rows/s) |",
        f"| kernels' share on top of producing | {100 * (t_grad / t_data - 1):+.0f} % |",
        f"| one gradient pass split (worker-seconds over {threads} threads) | produce "
        f"{spent['produce']:.1f} s ({n * threads / spent['produce']:.3g} rows/s), compute "
        f"{spent['compute']:.1f} s ({n * threads / spent['compute']:.3g} rows/s), reduce "
        f"{spent['reduce']:.2f} s |",
        f"| Newton: {r.n_iter} steps, {r.n_passes} passes | {t_fit:.1f} s, "
        f"objective {f:.6f} -> {r.objective:.6f}, max grad {r.grad_norm:.1e} |",
    ]
    for addr in sorted(used):
        extra = used[addr]["peak"] - idle[addr]["rss"]
        out.append(
            f"| worker {addr.rsplit(':', 1)[-1]}: started / idle / peak RSS | "
            f"{cold[addr]['rss']:.0f} / {idle[addr]['rss']:.0f} / {used[addr]['peak']:.0f} MiB "
            f"(peak = idle + {extra / chunk_mib:.1f} chunks) |"
        )
    data.close()
    return out


def tables(client: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray, args: Any) -> None:
    """Print the two solver tables: clean data, then with rows at |z| ~ 1000."""
    print("\n".join(solvers(client, X, y, args, "Solvers")), "\n", flush=True)
    far = np.zeros((4, args.features))  # correctly labelled rows at z ~ +-1000
    far[:, 0] = np.array([1.0, -1.0, 1.0, -1.0]) * 1000.0 / abs(w[0])
    Xe, ye = np.vstack([X, far]), np.r_[y, (far @ w > 0).astype(float)]
    print("\n".join(solvers(client, Xe, ye, args, "With 4 rows at |z| ~ 1000")), "\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=args.memory_limit,
        dashboard_address=None,
    )
    client = Client(cluster)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        parts = set(args.parts.split(","))
        if "lead" in parts:
            lines = lead(client, args.lead_rows, args.lead_features, args.rounds, args.iters)
            print("\n".join(lines), "\n", flush=True)
        if "throughput" in parts:
            lines = throughput(
                client, args.throughput_rows, args.throughput_features, args.chunk_rows
            )
            print("\n".join(lines), "\n", flush=True)
        if "chunks" in parts:
            n = args.throughput_rows // 4
            sizes = [s for s in (2_500, 10_000, 40_000, 160_000) if s <= n // 2] or [n // 4]
            lines = chunk_sizes(client, n, args.throughput_features, sizes)
            print("\n".join(lines), "\n", flush=True)
        if "solvers" in parts:
            tables(client, *make_data(args.rows, args.features), args)
        if "big" in parts and args.big_gb > 0:
            lines = out_of_core(
                client,
                args.big_gb,
                args.big_features,
                args.newton_steps,
                args.big_chunk_rows,
            )
            print("\n".join(lines), flush=True)
    finally:
        client.close()
        cluster.close()
    print(f"\nenvironment: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
