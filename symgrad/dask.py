"""Fit symgrad models on a Dask cluster, over data that never leaves its workers.

Every full-batch quantity is a sum over row blocks: a model called on a block with
``count=`` (the total number of samples) and ``penalty=False`` returns that block's exact
share of the mean loss, gradient, Hessian or Hessian-vector product, and the driver adds
the penalty once. So a pass is one task per worker, looping over the blocks that worker
holds, plus a tree sum of the small results; the generated kernels do the element-wise work::

    from symgrad.dask import connect, fit
    client = connect("local")                 # or "tcp://scheduler:8786", or a Client
    result = fit(LogisticRegression(...), X, y, client=client, method="newton")

``X`` and ``y`` are dask arrays (or a dask DataFrame, or numpy arrays to spread). With
``persist=True`` (the default) the blocks are computed once and kept on the workers; with
``persist=False`` each pass recomputes them from their graph, one task per block, so data
larger than the cluster's memory streams through it. dask and distributed are imported
only when used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad.dask_sources import as_dask_array, read_table
from symgrad.errors import ClusterError, DataError
from symgrad.models import flatten, unflatten
from symgrad.solvers import SolveResult, choose, minimize

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "STREAM_DEPTH",
    "DaskData",
    "DaskProblem",
    "connect",
    "fit",
    "hessian",
    "hvp",
    "objective",
    "read_table",
]

#: Target bytes of X per row block when symgrad chooses the chunks: big enough that a
#: block's arithmetic dwarfs the scheduler's per-task cost, small enough to stream.
DEFAULT_CHUNK_BYTES = 32 * 2**20
#: Results summed per task in the tree reduction.
_FAN_IN = 8
#: Streamed blocks (``persist=False``) in flight per worker thread: one evaluating, one
#: queued, so a worker holds about two blocks however many there are.
STREAM_DEPTH = 1


# ----------------------------------------------------------------------------- the cluster


class _BlasThreads:
    """Worker plugin: cap BLAS threads on every worker (also ones that join or restart later),
    so ``threads_per_worker`` tasks never oversubscribe the cores."""

    name = "symgrad-blas-threads"
    idempotent = True

    def __init__(self, threads: int = 1) -> None:
        self.threads = int(threads)

    def setup(self, worker: Any) -> None:
        """Apply the limit in the worker's process."""
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=self.threads)


def __getattr__(name: str) -> Any:
    # BlasThreads subclasses distributed's WorkerPlugin (register_plugin requires it), so it
    # is built on first use: importing symgrad.dask must not import distributed.
    if name == "BlasThreads":
        from distributed.diagnostics.plugin import WorkerPlugin

        cls = type("BlasThreads", (_BlasThreads, WorkerPlugin), {"__module__": __name__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def connect(
    scheduler: Any = "local",
    *,
    timeout: float = 10.0,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
) -> Any:
    """Return a ``distributed.Client``: for ``"local"`` a new LocalCluster on this machine,
    for an address ``"tcp://host:8786"`` the scheduler there, or the Client given.

    Raises ClusterError, in one line, when the scheduler cannot be reached in ``timeout`` s.
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler
    if scheduler in (None, "local"):
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True
        )
        return Client(cluster)
    if not isinstance(scheduler, str):
        raise ClusterError(f"scheduler must be 'local', an address or a Client, got {scheduler!r}")
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({exc})"
        ) from None


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise ClusterError(
            "no Dask client: pass client= or start one with symgrad.dask.connect()"
        ) from None


# ----------------------------------------------------------------------------- the data


def _row_chunks(X: Any, chunk_rows: int | None, threads: int) -> Any:
    """Rechunk X to whole rows, merging blocks far smaller than the target (scheduler cost).

    The default target is :data:`DEFAULT_CHUNK_BYTES` of X, and at most a ``threads``-th of the
    rows, so every worker thread gets a block.
    """
    target = DEFAULT_CHUNK_BYTES // (8 * max(1, X.shape[1]))
    rows = chunk_rows or max(1, min(target, -(-X.shape[0] // max(1, threads))))
    X = X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
    typical = float(np.median(X.chunks[0])) if X.chunks[0] else rows
    if chunk_rows is not None or typical < rows / 4 or len(X.chunks[0]) == 1:
        X = X.rechunk({0: rows})
    return X


def _block(X: np.ndarray, y: np.ndarray, start: int, check: bool) -> tuple:
    """Return a block as (float C-ordered X, y, first row), checking for NaN when asked."""
    X = np.ascontiguousarray(X, dtype=float)
    y = np.asarray(y)
    if check:
        _check_finite(X, y, start)
    return X, y, start


def _check_finite(X: np.ndarray, y: np.ndarray, start: int) -> None:
    stop = start + len(X)
    if not np.isfinite(X).all():
        row = start + int(np.argwhere(~np.isfinite(X))[0][0])
        raise DataError(f"X holds NaN or inf (row {row}, in the block of rows {start}..{stop})")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        row = start + int(np.argwhere(~np.isfinite(y))[0][0])
        raise DataError(f"y holds NaN or inf (row {row}, in the block of rows {start}..{stop})")


class DaskData:
    """Training data as row blocks on a cluster: kept on the workers (``persist=True``) or
    recomputed from the graph on every pass (``persist=False``, for data beyond memory).

    ``chunk_rows`` sets the rows per block; by default blocks hold about
    :data:`DEFAULT_CHUNK_BYTES` of X, and smaller given chunks are merged.
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        *,
        client: Any = None,
        persist: bool = True,
        chunk_rows: int | None = None,
        blas_threads: int = 1,
    ) -> None:
        import dask

        self.client = _client(client)
        X = as_dask_array(X, "X")
        y = as_dask_array(y, "y")
        if X.ndim != 2:
            raise DataError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise DataError(f"y has shape {y.shape}; expected {X.shape[0]} rows like X")
        X = _row_chunks(X, chunk_rows, sum(self.client.nthreads().values()))
        y = y.rechunk({0: X.chunks[0], **({1: -1} if y.ndim == 2 else {})})
        self.n_samples, self.n_features = int(X.shape[0]), int(X.shape[1])
        self.y_tail, self.y_dtype = tuple(y.shape[1:]), y.dtype
        self.chunks, self.persist = X.chunks[0], bool(persist)
        starts = np.cumsum((0, *X.chunks[0][:-1]))
        # unoptimized: optimizing fuses a y computed from X (labels from features) with a
        # second copy of X's tasks, so every block would be produced twice
        xs = X.to_delayed(optimize_graph=False).ravel()
        ys = y.to_delayed(optimize_graph=False).ravel()
        block = dask.delayed(_block, pure=False)  # keys of their own: close() drops only ours
        self._blocks = [
            block(xd, yd, int(s), self.persist) for xd, yd, s in zip(xs, ys, starts, strict=True)
        ]
        plugin = (globals().get("BlasThreads") or __getattr__("BlasThreads"))(blas_threads)
        self.client.register_plugin(plugin, name=plugin.name)
        self._futures = self._spread(self._blocks) if self.persist else None
        if self._futures is not None:
            _wait(_settle, self._futures)  # surface bad data now, not mid-fit

    def _spread(self, blocks: list) -> list:
        """Compute the blocks round-robin over the workers' threads, so each holds its share
        (the scheduler alone may put small independent tasks all on one worker)."""
        slots = [addr for addr, n in sorted(self.client.nthreads().items()) for _ in range(n)]
        return [
            self.client.compute(block, workers=[slots[i % len(slots)]], allow_other_workers=True)
            for i, block in enumerate(blocks)
        ]

    @property
    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        """Return zero rows shaped like the data: a model on them gives the penalty alone."""
        return np.zeros((0, self.n_features)), np.zeros((0, *self.y_tail), self.y_dtype)

    def run(self, op: str, model: Any, params: Any, extra: Any = None) -> tuple:
        """Return the sums over all blocks of ``op`` ("value", "grad", "newton", "hvp", or
        "rows", which only produces the blocks)."""
        args = (op, model, params, extra, self.n_samples)
        if self.persist:
            return _wait(self._reduce, self._per_worker(args))
        return _wait(self._stream, args)

    def _per_worker(self, args: tuple) -> list:
        """Submit one task per worker over the blocks it holds (no data moves)."""
        holders = self.client.who_has(self._futures)
        groups: dict[Any, list] = {}
        for future in self._futures:
            where = holders.get(future.key) or [None]
            groups.setdefault(where[0], []).append(future)
        # loose placement: a task whose worker died runs where its blocks are recomputed
        where = {addr: {"workers": [addr], "allow_other_workers": True} for addr in groups if addr}
        return [
            self.client.submit(_evaluate, *args, futures, pure=False, **where.get(addr, {}))
            for addr, futures in groups.items()
        ]

    def _stream(self, args: tuple) -> tuple | None:
        """Recompute the blocks from their graph, at most ``STREAM_DEPTH`` per worker thread
        at a time, and add their results in block order as they arrive.

        The window bounds what a worker holds (the block being evaluated and the next one
        queued) whatever the scheduler's own queueing; each block's tasks are placed on one
        thread slot, so a block is produced where it is consumed, and a worker that dies has
        its blocks recomputed elsewhere.
        """
        import dask
        from distributed import as_completed

        slots = [addr for addr, n in sorted(self.client.nthreads().items()) for _ in range(n)]
        shared = self.client.submit(_identity, args, pure=False)  # one copy, with lineage
        index: dict[Any, int] = {}

        def launch(i: int) -> Any:
            task = dask.delayed(_evaluate_one, pure=False)(shared, self._blocks[i])
            where = slots[i % len(slots)] if slots else None
            future = self.client.compute(  # earlier blocks first: depth-first on a worker
                task, workers=where and [where], allow_other_workers=True, priority=-i
            )
            index[future.key] = i
            return future

        window = max(1, STREAM_DEPTH * len(slots))
        queue = as_completed([launch(i) for i in range(min(window, len(self._blocks)))])
        following, arrived, total, folded = window, {}, None, 0
        for future in queue:
            arrived[index.pop(future.key)] = future.result()
            future.release()
            while folded in arrived:  # the sum's order is the blocks' order: deterministic
                total = _sum([total, arrived.pop(folded)])
                folded += 1
            if following < len(self._blocks):
                queue.add(launch(following))
                following += 1
        shared.release()
        return total

    def _reduce(self, parts: list) -> tuple:
        """Sum the parts in a tree on the cluster, then fetch the one small result."""
        while len(parts) > _FAN_IN:
            groups = [parts[i : i + _FAN_IN] for i in range(0, len(parts), _FAN_IN)]
            parts = [self.client.submit(_sum, g, pure=False) for g in groups]
        return _sum(self.client.gather(parts))

    def close(self) -> None:
        """Release the blocks held on the workers (they go once no future refers to them)."""
        for future in self._futures or ():
            future.release()
        self._futures = None

    def __enter__(self) -> DaskData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settle(futures: list) -> None:
    """Wait until the blocks are on the workers, raising the first block's error; the data
    itself stays where it is."""
    from distributed import wait

    wait(futures)
    for future in futures:
        if future.status == "error":
            future.result()


def _wait(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking cluster call, turning a worker lost for good into a ClusterError."""
    from distributed import KilledWorker

    try:
        return fn(*args)
    except KilledWorker as exc:
        raise ClusterError(
            f"a task lost its worker too often ({exc}); the cluster cannot finish this pass"
        ) from None


# ----------------------------------------------------------------------------- on the workers


def _value(model: Any, p: Any, X: Any, y: Any, n: int, extra: Any) -> tuple:
    return (float(model.objective(p, X, y, count=n, penalty=False)[0]),)


def _value_grad(model: Any, p: Any, X: Any, y: Any, n: int, extra: Any) -> tuple:
    f, g = model.objective(p, X, y, count=n, penalty=False)
    return float(f), flatten(g)


def _newton(model: Any, p: Any, X: Any, y: Any, n: int, extra: Any) -> tuple:
    f, g = model.objective(p, X, y, count=n, penalty=False)
    return float(f), flatten(g), model.hessian(p, X, y, count=n, penalty=False)


def _hvp(model: Any, p: Any, X: Any, y: Any, n: int, extra: Any) -> tuple:
    return (flatten(model.hvp(p, X, y, unflatten(extra, p), count=n, penalty=False)),)


def _rows(model: Any, p: Any, X: Any, y: Any, n: int, extra: Any) -> tuple:
    return (np.array(len(X), dtype=float),)


#: what one block contributes to each kind of pass ("rows" only produces the blocks: what
#: the data source alone costs)
_OPS: dict[str, Callable[..., tuple]] = {
    "rows": _rows,
    "value": _value,
    "grad": _value_grad,
    "newton": _newton,
    "hvp": _hvp,
}


def _evaluate(
    op: str, model: Any, params: Any, extra: Any, count: int, blocks: Sequence[tuple]
) -> tuple | None:
    """Return the sum over ``blocks`` of their share of ``op`` (runs on a worker)."""
    total = None
    for X, y, start in blocks:
        out = _OPS[op](model, params, X, y, count, extra)
        if not np.all(np.isfinite(out[0])):
            _check_finite(X, y, start)  # bad data says where; else the value is the model's
        total = out if total is None else tuple(a + b for a, b in zip(total, out, strict=True))
    return total


def _identity(value: Any) -> Any:
    return value


def _evaluate_one(args: tuple, block: tuple) -> tuple | None:
    return _evaluate(*args, [block])


def _sum(parts: Sequence[tuple | None]) -> tuple | None:
    """Add tuples of arrays element by element (None counts as zero)."""
    total = None
    for part in parts:
        if part is not None:
            total = (
                part if total is None else tuple(a + b for a, b in zip(total, part, strict=True))
            )
    return total


# ----------------------------------------------------------------------------- the driver


class DaskProblem:
    """A :mod:`symgrad.solvers` problem whose every pass runs on the cluster.

    Each method is one pass over ``data``, plus the model's penalty added once on the
    driver (the model on zero rows with ``count`` set).
    """

    def __init__(self, model: Any, data: DaskData, like: Any) -> None:
        self.model, self.data, self.like = model, data, like

    def _parts(self, op: str, x: np.ndarray, extra: Any = None) -> tuple[Any, tuple, tuple]:
        p = unflatten(x, self.like)
        total = self.data.run(op, self.model, p, extra)
        return p, total, self.data.empty

    def value(self, x: np.ndarray) -> float:
        """Return the objective at ``x``."""
        p, (f,), (X0, y0) = self._parts("value", x)
        return f + float(self.model.objective(p, X0, y0, count=self.data.n_samples)[0])

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Return the objective and its gradient at ``x``."""
        p, (f, g), (X0, y0) = self._parts("grad", x)
        f0, g0 = self.model.objective(p, X0, y0, count=self.data.n_samples)
        return f + float(f0), g + flatten(g0)

    def newton_parts(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Return the objective, gradient and Hessian at ``x`` from one pass."""
        p, (f, g, H), (X0, y0) = self._parts("newton", x)
        n = self.data.n_samples
        f0, g0 = self.model.objective(p, X0, y0, count=n)
        return f + float(f0), g + flatten(g0), H + self.model.hessian(p, X0, y0, count=n)

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Return the Hessian at ``x`` times ``v``."""
        p, (hv,), (X0, y0) = self._parts("hvp", x, v)
        own = self.model.hvp(p, X0, y0, unflatten(v, self.like), count=self.data.n_samples)
        return hv + flatten(own)


def _init(model: Any, data: DaskData) -> Any:
    """Return the model's starting parameters for this data's shape."""
    return model.init_for(*data.empty, seed=0)


def _data(X: Any, y: Any, client: Any, **kwargs: Any) -> DaskData:
    return X if isinstance(X, DaskData) else DaskData(X, y, client=client, **kwargs)


def objective(model: Any, params: Any, X: Any, y: Any = None, *, client: Any = None) -> tuple:
    """Return the model's full objective and gradients (dict like ``params``) over the blocks."""
    data = _data(X, y, client)
    f, g = DaskProblem(model, data, params).value_and_grad(flatten(params))
    return f, unflatten(g, params)


def hessian(model: Any, params: Any, X: Any, y: Any = None, *, client: Any = None) -> np.ndarray:
    """Return the model's dense Hessian (``flatten`` order), summed over the blocks."""
    data = _data(X, y, client)
    return DaskProblem(model, data, params).newton_parts(flatten(params))[2]


def hvp(model: Any, params: Any, X: Any, y: Any, v: Any, *, client: Any = None) -> Any:
    """Return the model's Hessian times ``v`` (a dict like ``params``), over the blocks."""
    data = _data(X, y, client)
    return unflatten(DaskProblem(model, data, params).hvp(flatten(params), flatten(v)), params)


def fit(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    client: Any = None,
    params: Any = None,
    method: str = "auto",
    max_iter: int = 100,
    tol: float = 1e-8,
    progress: bool | None = None,
    persist: bool = True,
    chunk_rows: int | None = None,
    **options: Any,
) -> SolveResult:
    """Fit ``model`` on the cluster by ``method`` (a :data:`symgrad.solvers.METHODS` name, or
    ``"auto"``: :func:`symgrad.solvers.choose`'s full-batch pick from the kernels' facts).

    ``X`` is a dask array or DataFrame (or numpy, spread in blocks), or a :class:`DaskData`
    to reuse across fits; the result says the iterations, passes and whether it converged.
    The solver is :func:`symgrad.solvers.minimize` (``options`` go to it), the same one
    :func:`symgrad.newton.fit_newton` and :func:`symgrad.lbfgs.fit_lbfgs` run in memory, so
    both take the same iterates; a non-finite value or a failed line search is listed in
    ``result.warnings`` and raised as a :class:`symgrad.errors.ConvergenceWarning`.
    """
    data = _data(X, y, client, persist=persist, chunk_rows=chunk_rows)
    start = _init(model, data) if params is None else params
    problem = DaskProblem(model, data, start)
    try:
        method = choose(model, X, y, method, params=start, first_order=False)
        return minimize(
            problem,
            flatten(start),
            start,
            method=method,
            max_iter=max_iter,
            tol=tol,
            progress=progress,
            **options,
        )
    finally:
        if data is not X:
            data.close()


def dask_compute(*collections: Any) -> tuple:
    """Compute dask collections together (one pass over what they share)."""
    import dask

    return dask.compute(*collections)


# ----------------------------------------------------------------------------- dask-glm


class GLMFamily:
    """A dask-glm family from a symgrad loss: pass it as ``family=`` to ``dask_glm.algorithms``.

    ``loss`` is a built-in loss name, a Spec or a ``(name_or_spec, {hyper: value})`` pair,
    applied to the linear predictor ``X @ beta``. dask-glm minimises sums, so the kernels run
    with ``count=1`` (sum over rows), block by block on dask arrays, with their stable forms:
    a logit of -800 costs 800, not inf.
    """

    def __init__(self, loss: Any = "binary_cross_entropy_with_logits") -> None:
        from symgrad.models import LinearRegression

        self.loss = loss
        self._kernel = LinearRegression(loss=loss)._loss  # the resolved (cached) kernel

    def __repr__(self) -> str:
        return f"GLMFamily({self.loss!r})"

    def _blocks(self, fn: Callable[..., Any], z: Any, y: Any, scalar: bool) -> Any:
        """Apply ``fn(z, y)`` per block of a dask ``z`` (or at once on numpy arrays)."""
        import dask.array as da

        if not isinstance(z, da.Array):
            return fn(np.asarray(z), np.asarray(y))
        if not isinstance(y, da.Array):
            y = da.from_array(np.asarray(y), chunks=z.chunks)
        y = y.rechunk(z.chunks)
        if scalar:
            parts = da.map_blocks(lambda a, b: np.atleast_1d(fn(a, b)), z, y, dtype=float)
            return parts.sum()
        return da.map_blocks(fn, z, y, dtype=float)

    def loglike(self, Xbeta: Any, y: Any) -> Any:
        """Return the summed loss at the linear predictor."""
        fn = self._kernel.fn
        return self._blocks(lambda z, t: fn(z, t, count=1)[0], Xbeta, y, scalar=True)

    def pointwise_loss(self, beta: Any, X: Any, y: Any) -> Any:
        """Return the summed loss at ``beta``."""
        return self.loglike(X.dot(np.ravel(beta)), np.ravel(y) if not hasattr(y, "dask") else y)

    def gradient(self, Xbeta: Any, X: Any, y: Any) -> Any:
        """Return ``X.T @ dL/dz``, the gradient of the summed loss."""
        fn = self._kernel.fn
        return X.T.dot(self._blocks(lambda z, t: fn(z, t, count=1)[1], Xbeta, y, scalar=False))

    def pointwise_gradient(self, beta: Any, X: Any, y: Any) -> Any:
        """Return the gradient of the summed loss at ``beta``."""
        return self.gradient(X.dot(np.ravel(beta)), X, y)

    def hessian(self, Xbeta: Any, X: Any, y: Any = None) -> Any:
        """Return ``X.T diag(d2L/dz2) X``; dask-glm's newton passes no ``y``: logistic only."""
        hess = self._kernel.hess
        if hess is None:
            raise ValueError(f"loss {self._kernel.name!r} has no emitted second derivative")
        if y is None:  # curvature of the logistic loss does not depend on the labels
            y = Xbeta * 0
        h = self._blocks(lambda z, t: hess(z, t, count=1), Xbeta, y, scalar=False)
        return (X.T * h).dot(X)
