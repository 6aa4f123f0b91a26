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

import dataclasses
import math
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad.dask_sources import as_dask_array, check_source, read_table
from symgrad.errors import ClusterError, DataError, SymgradError
from symgrad.models import flatten, unflatten
from symgrad.solvers import SolveResult, choose, minimize

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "STREAM_DEPTH",
    "WORKER_TIMEOUT",
    "DaskData",
    "DaskProblem",
    "DaskResult",
    "connect",
    "fit",
    "format_times",
    "hessian",
    "hvp",
    "objective",
    "check_source",
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
#: Seconds a pass waits for a worker while none is connected, before a ClusterError.
WORKER_TIMEOUT = 60.0
#: Seconds between checks on the workers while a pass waits for its tasks.
_POLL_SECONDS = 0.5
#: The longest wait for the scheduler to let go of a failed block's tasks (see ``_released``).
_RELEASE_SECONDS = 10.0
#: Passes between two collections of the task stream (its buffer keeps 100,000 tasks).
_COLLECT_EVERY = 16


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
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # any free port: never collide with the user's own 8787
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


def _target_rows(shape: tuple, chunk_rows: int | None, threads: int) -> int:
    """Return the rows per block: ``chunk_rows``, else :data:`DEFAULT_CHUNK_BYTES` of X and at
    most a ``threads``-th of the rows, so every worker thread gets a block."""
    target = DEFAULT_CHUNK_BYTES // (8 * max(1, shape[1]))
    return chunk_rows or max(1, min(target, -(-shape[0] // max(1, threads))))


def _row_chunks(X: Any, chunk_rows: int | None, threads: int) -> Any:
    """Rechunk X to whole rows, merging blocks far smaller than the target (scheduler cost)."""
    rows = _target_rows(X.shape, chunk_rows, threads)
    X = X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
    typical = float(np.median(X.chunks[0])) if X.chunks[0] else rows
    if chunk_rows is not None or typical < rows / 4 or len(X.chunks[0]) == 1:
        X = X.rechunk({0: rows})
    return X


def _in_memory_blocks(X: Any, y: Any, chunk_rows: int | None, threads: int) -> tuple:
    """Return numpy ``X, y`` as dask arrays whose row blocks are separate graph roots.

    ``da.from_array`` makes every block a slice of ONE task holding the whole array, so the
    scheduler would produce all blocks on the worker that holds it; separate roots spread.
    """
    import dask.array as da

    X, y = as_dask_array(X, "X"), as_dask_array(y, "y")  # checks; one block each
    if X.ndim != 2 or len(X.chunks[0]) != 1 or y.shape[:1] != X.shape[:1]:
        return X, y
    Xn, yn = X.compute(scheduler="sync"), y.compute(scheduler="sync")
    rows = _target_rows(Xn.shape, chunk_rows, threads)
    cuts = range(0, len(Xn), rows) if len(Xn) else []

    def stack(a: np.ndarray) -> Any:
        parts = [da.from_array(np.array(a[i : i + rows]), chunks=-1) for i in cuts]
        return (
            da.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else da.from_array(a))
        )

    return stack(Xn), stack(yn)


def _block(X: np.ndarray, y: np.ndarray, start: int, check: bool) -> tuple:
    """Return a block as (float64 X, y, first row), both C-contiguous and aligned (a buffer
    deserialized from the network may be neither, and BLAS then takes its slow path),
    checking for NaN when asked."""
    X = np.require(X, dtype=np.float64, requirements=["C", "A"])
    y = np.require(y, requirements=["C", "A"])
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


#: What a pass's time is spent on, by the name of the tasks (see ``DaskData.times``).
_COMPUTE_TASKS, _REDUCE_TASKS = ("_evaluate", "_evaluate_one"), ("_sum",)


def format_times(times: dict[str, float]) -> str:
    """Return ``DaskData.times`` as one line: where the passes spent their time."""
    text = (
        f"{int(times['passes'])} passes in {times['wall']:.3g} s: produce {times['produce']:.3g} s,"
        f" compute {times['compute']:.3g} s (worker-seconds), reduce {times['reduce']:.3g} s"
    )
    if times.get("persist"):
        text += f"; persisting the blocks took produce {times['persist']:.3g} s"
    return text


def _killed(future: Any) -> bool:
    """Return True for a future dask gave up on because its workers kept dying."""
    return future.status == "error" and type(future.exception()).__name__ == "KilledWorker"


class _Watch:
    """Wait on futures without ever hanging: a failed task raises at once, named, and a
    cluster left without workers for ``worker_timeout`` s raises ClusterError."""

    def __init__(self, client: Any, worker_timeout: float, what: str = "the computation"):
        self.client, self.what = client, what
        self.worker_timeout, self._lost_since = float(worker_timeout), None

    def _waiting(self, futures: list, index: dict | None) -> str:
        """Name what the wait is for (a block, in DaskData)."""
        return self.what

    def _where(self, future: Any, exc: Any, block: int | None) -> str:
        """Name what failed (a block, in DaskData)."""
        return self.what

    def _check_workers(self, waiting: Callable[[], str]) -> None:
        """Raise ClusterError once no worker has been connected for ``worker_timeout`` s;
        ``waiting`` names what the pass waits for."""
        if getattr(self.client, "status", "running") not in ("running", "connecting"):
            raise ClusterError(
                f"{waiting()} failed: the connection to the Dask scheduler is {self.client.status}"
            )
        if self.client.nthreads():
            self._lost_since = None
            return
        now = time.monotonic()
        self._lost_since = self._lost_since or now
        if now - self._lost_since >= self.worker_timeout:
            raise ClusterError(
                f"{waiting()} failed: no Dask worker has been connected for "
                f"{self.worker_timeout:g} s (they died or left; start workers, or raise "
                "worker_timeout)"
            )

    def _next_done(self, done: queue.Queue, waiting: Callable[[], str]) -> Any:
        """Return the next future to finish, checking the workers while none does."""
        while True:
            try:
                return done.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self._check_workers(waiting)

    def _settled(self, future: Any, done: queue.Queue, block: int | None) -> bool:
        """Return True for a finished future; False for one lost with its worker since it
        finished (the scheduler recomputes it: wait again); raise for a failed one."""
        if future.status == "finished":
            return True
        if future.status in ("lost", "pending"):
            future.add_done_callback(done.put)
            return False
        raise self._failure(future, block)

    def _all(
        self, futures: list, index: dict | None = None, alone: Callable[[int], Any] | None = None
    ) -> None:
        """Wait until every future has finished; raise the first failure, named.

        With ``alone`` (block index -> a fresh future computing that block), a block given up
        on as KilledWorker is computed again by itself once the others are done: dask blames
        every task assigned to a worker that dies, so only a block that kills its worker
        when nothing else runs beside it is the one to name. ``futures`` is updated in place.
        """
        index = index or {}
        done: queue.Queue = queue.Queue()
        for future in futures:
            future.add_done_callback(done.put)
        left, suspects = len(futures), []
        try:
            while left:
                future = self._next_done(done, lambda: self._waiting(futures, index))
                block = index.get(future.key)
                if alone is not None and block is not None and _killed(future):
                    suspects.append(block)
                    left -= 1
                    continue
                left -= self._settled(future, done, block)
            for block in suspects:
                where = next(i for i, f in enumerate(futures) if index.get(f.key) == block)
                futures[where].release()
                futures[where] = fresh = alone(block)
                self._all([fresh], {fresh.key: block})
        except BaseException:
            # a traceback keeps these futures alive: free their keys on the scheduler now, or
            # a later fit of the same graph would find them still failed
            self.client.cancel(futures)
            raise

    def _failure(self, future: Any, block: int | None = None) -> Exception:
        """Return the error that ends the wait: a symgrad error raised in a task as it is,
        anything else as one ClusterError line naming what failed and the cause."""
        from distributed import KilledWorker

        if future.status in ("cancelled", "lost"):
            cause, exc = f"its task was {future.status} (the scheduler lost it)", None
        else:
            exc = future.exception()
            if isinstance(exc, SymgradError):
                return exc
            cause = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KilledWorker):
            worker = getattr(exc.last_worker, "address", exc.last_worker)
            cause = (
                f"its task ended the process of every worker that ran it "
                f"({exc.allowed_failures + 1} tries, the last on {worker}; KilledWorker)"
            )
        where = self._where(future, exc, block)
        return ClusterError(" ".join(f"{where} failed: {cause}".split()))  # one line


class DaskData(_Watch):
    """Training data as row blocks on a cluster: kept on the workers (``persist=True``) or
    recomputed from the graph on every pass (``persist=False``, for data beyond memory).

    ``chunk_rows`` sets the rows per block; by default blocks hold about
    :data:`DEFAULT_CHUNK_BYTES` of X, and smaller given chunks are merged. A pass waits at
    most ``worker_timeout`` seconds for a worker while none is connected, and a block that
    fails (raises, or ends its worker's process on every try) ends it with one ClusterError
    naming the block; the pass never hangs.

    ``times`` adds up, over the passes, the worker-seconds spent producing blocks (the data
    source's tasks; with ``persist=True`` that is once, in ``times["persist"]``) and in the
    kernels, the driver's seconds reducing the sums, and the passes' wall-clock seconds.
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
        worker_timeout: float = WORKER_TIMEOUT,
    ) -> None:

        super().__init__(_client(client), worker_timeout)
        threads = sum(self.client.nthreads().values())
        if not hasattr(X, "dask") and not hasattr(X, "to_dask_array"):
            X, y = _in_memory_blocks(X, y, chunk_rows, threads)
        X = as_dask_array(X, "X")
        y = as_dask_array(y, "y")
        if X.ndim != 2:
            raise DataError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise DataError(f"y has shape {y.shape}; expected {X.shape[0]} rows like X")
        X = _row_chunks(X, chunk_rows, threads)
        y = y.rechunk({0: X.chunks[0], **({1: -1} if y.ndim == 2 else {})})
        self.n_samples, self.n_features = int(X.shape[0]), int(X.shape[1])
        self.y_tail, self.y_dtype = tuple(y.shape[1:]), y.dtype
        self.chunks, self.persist = X.chunks[0], bool(persist)
        self.starts = [int(s) for s in np.cumsum((0, *X.chunks[0][:-1]))]
        # the graph's layers: their tasks are the data source's, "produce" in ``times``
        self._layers = set(X.__dask_graph__().layers) | set(y.__dask_graph__().layers)
        # unoptimized: optimizing fuses a y computed from X (labels from features) with a
        # second copy of X's tasks, so every block would be produced twice
        xs = X.to_delayed(optimize_graph=False).ravel()
        ys = y.to_delayed(optimize_graph=False).ravel()
        self._inputs = list(zip(xs, ys, strict=True))
        self._blocks, self._index = [], {}
        for i in range(len(self._inputs)):
            self._fresh(i)
        self._times = dict.fromkeys(
            ("passes", "wall", "produce", "compute", "reduce", "transfer", "persist"), 0.0
        )
        self._mark, self._pending, self._groups = None, 0, None
        self.bar: Any = None  # a tqdm bar that shows ``times`` after each pass (fit sets it)
        plugin = (globals().get("BlasThreads") or __getattr__("BlasThreads"))(blas_threads)
        self.client.register_plugin(plugin, name=plugin.name)
        self._futures = None
        if self.persist:  # surface bad data now, not mid-fit
            mark = self._stream_mark()
            self._futures = self.client.compute(self._blocks)
            self._all(self._futures, self._index, self._alone)
            spent = self._spent(mark)
            self._times["persist"] = spent["produce"]
        self._mark = self._stream_mark()

    # -- where a pass waits

    def _waiting(self, futures: list, index: dict | None) -> str:
        """Name the first block (else task) among ``futures`` that has not finished."""
        for future in futures:
            if future.status != "finished":
                if index and future.key in index:
                    return self._name(index[future.key])
                blocks = [i for i, f in enumerate(self._futures or ()) if f.status != "finished"]
                return self._name(blocks[0]) if blocks else f"task {future.key}"
        return "the pass"

    def _name(self, i: int) -> str:
        stop = self.starts[i] + self.chunks[i]
        return f"block {i} of {len(self.chunks)} (rows {self.starts[i]}..{stop})"

    def _fresh(self, i: int) -> Any:
        """Return (and keep) a new task producing block ``i``: a key of its own, so close()
        drops only ours and a block given up on can be computed afresh."""
        import dask

        xd, yd = self._inputs[i]
        block = dask.delayed(_block, pure=False)(xd, yd, self.starts[i], self.persist)
        if i < len(self._blocks):
            self._index.pop(self._blocks[i].key, None)
            self._blocks[i] = block
        else:
            self._blocks.append(block)
        self._index[block.key] = i
        return block

    def _alone(self, i: int) -> Any:
        """Return a future computing block ``i`` afresh, once its failed tasks are gone."""
        self._released(i)
        return self.client.compute(self._fresh(i))

    def _released(self, i: int) -> None:
        """Wait (a few seconds at most) until the scheduler has let go of block ``i``'s failed
        tasks. Its graph sent again before then finds them still failed, a stale KilledWorker
        with no new try: a block that died only beside the one that kills its worker would be
        blamed, computed "alone", in that block's place."""
        keys = list(self._blocks[i].__dask_graph__())
        deadline = time.monotonic() + min(self.worker_timeout, _RELEASE_SECONDS)
        while time.monotonic() < deadline:
            states = self.client.sync(self.client.scheduler.get_task_status, keys=keys)
            if "erred" not in states.values():
                return
            time.sleep(_POLL_SECONDS / 10)

    def _where(self, future: Any, exc: Any, block: int | None) -> str:
        """Name the failed block: given, else the one whose task died, else a lost block."""
        if block is None and hasattr(exc, "last_worker"):  # KilledWorker: which task died
            block = self._block_of(exc.task)
        if block is None and self._futures is not None:  # a pass failed on a lost block
            erred = [i for i, f in enumerate(self._futures) if f.status == "error"]
            block = erred[0] if erred else None
        return self._name(block) if block is not None else f"task {future.key}"

    def _block_of(self, key: Any) -> int | None:
        """Return the block whose graph holds task ``key``, if any."""
        if key in self._index:
            return self._index[key]
        for i, block in enumerate(self._blocks):
            if key in block.__dask_graph__():
                return i
        return None

    # -- timing

    def _stream_mark(self) -> Any:
        """Return the scheduler's task-stream position (None where it cannot say)."""
        try:
            return self.client.sync(self.client.scheduler.get_task_stream_index)
        except Exception:  # noqa: BLE001 - an older scheduler: passes are not broken down
            return None

    def _spent(self, mark: Any) -> dict[str, float]:
        """Return the worker-seconds that tasks finished since ``mark`` spent per kind."""
        spent = {"produce": 0.0, "compute": 0.0, "reduce": 0.0, "transfer": 0.0}
        if mark is None:
            return dict.fromkeys(spent, math.nan)
        records = self.client.sync(self.client.scheduler.get_task_stream, start_index=mark)
        for record in records:
            key = record.get("key")
            name = key[0] if isinstance(key, tuple) else str(key)
            kind = name.split("-", 1)[0]  # our tasks' keys: function name - uuid
            if kind in _COMPUTE_TASKS:
                kind = "compute"
            elif kind in _REDUCE_TASKS:
                kind = "reduce"
            elif name in self._layers or kind == "_block":
                kind = "produce"
            else:
                continue  # the driver's own small tasks, or someone else's
            for step in record.get("startstops", ()):
                what = step.get("action")
                seconds = float(step["stop"]) - float(step["start"])
                spent["transfer" if what == "transfer" else kind] += seconds * (
                    what in ("compute", "transfer")
                )
        return spent

    @property
    def times(self) -> dict[str, float]:
        """Return the passes' time so far (see the class docstring)."""
        self._collect()
        return self._times

    def _collect(self) -> None:
        """Add the worker-seconds of the tasks finished since the last collection (one call
        to the scheduler, made every few passes: not a round trip per pass)."""
        if self._pending:
            spent = self._spent(self._mark)
            self._mark = self._stream_mark()
            for kind, seconds in spent.items():
                self._times[kind] += seconds
            self._pending = 0

    def _account(self, wall: float, reduce: float) -> None:
        self._times["passes"] += 1
        self._times["wall"] += wall
        self._times["reduce"] += reduce
        self._pending += 1
        if self.bar is not None:
            self._collect()
            self.bar.update(1)
            self.bar.set_postfix_str(format_times(self._times), refresh=True)
        elif self._pending >= _COLLECT_EVERY:
            self._collect()

    # -- passes

    @property
    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        """Return zero rows shaped like the data: a model on them gives the penalty alone."""
        return np.zeros((0, self.n_features)), np.zeros((0, *self.y_tail), self.y_dtype)

    def run(self, op: str, model: Any, params: Any, extra: Any = None) -> tuple:
        """Return the sums over all blocks of ``op`` ("value", "grad", "newton", "hvp",
        "rows", which only produces the blocks, or "layout", which counts the blocks, those the
        kernels see not aligned C-contiguous, not float64, and those stored misaligned)."""
        args = (op, model, params, extra, self.n_samples)
        start = time.perf_counter()
        if self.persist:
            parts = self._per_worker(args)
            self._all(parts)
            mapped = time.perf_counter()
            total = self._reduce(parts)
            reduce = time.perf_counter() - mapped
        else:
            total, reduce = self._stream(args)
        self._account(time.perf_counter() - start, reduce)
        return total

    def _per_worker(self, args: tuple) -> list:
        """Submit one task per worker over the blocks it holds (no data moves).

        Each task names its worker as a loose preference. Without it, once a fit's passes
        outnumber twice the cluster's threads the scheduler takes them for "root-ish" tasks
        and places them ignoring where their blocks are (copying blocks between workers); a
        strict restriction instead would leave a task waiting forever on a worker that died.
        Loose, it runs elsewhere only when its worker is gone. (The blocks themselves carry
        no restriction: distributed 2026.11 leaves a loosely restricted task that is ready
        while no worker runs in ``no-worker`` for good once new workers join; a pass task is
        never ready then, as its blocks are lost with the workers and made again first.)
        """
        # where the blocks are changes only when a worker dies: asking every few passes
        # saves a round trip per pass (a stale grouping costs a copy, never a wrong sum)
        if self._groups is None or self._times["passes"] % _COLLECT_EVERY == 0:
            holders = self.client.who_has(self._futures)
            groups: dict[Any, list] = {}
            for future in self._futures:
                where = holders.get(future.key) or [None]
                groups.setdefault(where[0], []).append(future)
            self._groups = list(groups.items())
        return [
            self.client.submit(
                _evaluate,
                *args,
                futures,
                pure=False,
                **({"workers": [where], "allow_other_workers": True} if where else {}),
            )
            for where, futures in self._groups
        ]

    def _stream(self, args: tuple) -> tuple:
        """Recompute the blocks from their graph, at most ``STREAM_DEPTH`` per worker thread
        at a time, and add their results in block order as they arrive; return the sum and
        the driver's seconds spent adding.

        The window bounds what a worker holds (the block being evaluated and the next one
        queued) whatever the scheduler's own queueing, and earlier blocks go first.
        """
        import dask

        shared = self.client.submit(_identity, args, pure=False)  # one copy, with lineage
        window = max(1, STREAM_DEPTH * sum(self.client.nthreads().values()))
        done: queue.Queue = queue.Queue()
        launched: dict[Any, tuple[int, Any]] = {}

        def launch(i: int, shared: Any = shared) -> Any:
            task = dask.delayed(_evaluate_one, pure=False)(shared, self._blocks[i])
            future = self.client.compute(task, priority=-i)
            launched[future.key] = (i, future)
            return future

        following = min(window, len(self._blocks))
        for i in range(following):
            launch(i).add_done_callback(done.put)
        arrived, total, folded, adding, suspects = {}, None, 0, 0.0, []

        def fold() -> None:
            nonlocal total, folded, adding
            start = time.perf_counter()
            while folded in arrived:  # the sum's order is the blocks' order: deterministic
                total = _sum([total, arrived.pop(folded)])
                folded += 1
            adding += time.perf_counter() - start

        try:
            while launched:
                future = self._next_done(
                    done, lambda: self._name(min(i for i, _ in launched.values()))
                )
                i = launched[future.key][0]
                if _killed(future):  # see _all: computed again alone, after the others
                    suspects.append(i)
                elif not self._settled(future, done, i):
                    continue
                else:
                    arrived[i] = future.result()
                    fold()
                launched.pop(future.key)
                future.release()
                if following < len(self._blocks):
                    launch(following).add_done_callback(done.put)
                    following += 1
            for i in suspects:
                # with a copy of the arguments of its own: the pass's copy, recomputed on a
                # worker that a suspect then killed, may have been given up on too, and every
                # block computed from it would fail (and be named) in the killer's place
                self._released(i)
                alone = self.client.submit(_identity, args, pure=False)
                future = launch(i, alone)
                try:
                    self._all([future], {future.key: i})
                finally:
                    alone.release()
                arrived[i] = future.result()
                launched.pop(future.key)
                future.release()
                fold()
        finally:
            if launched:
                self.client.cancel([future for _, future in launched.values()])
            shared.release()
        return total, adding

    def _reduce(self, parts: list) -> tuple:
        """Sum the parts in a tree on the cluster, then fetch the one small result."""
        while len(parts) > _FAN_IN:
            groups = [parts[i : i + _FAN_IN] for i in range(0, len(parts), _FAN_IN)]
            parts = [self.client.submit(_sum, g, pure=False) for g in groups]
            self._all(parts)
        return _sum(self.client.gather(parts))

    def close(self) -> None:
        """Release the blocks held on the workers (they go once no future refers to them)."""
        self._collect()
        for future in self._futures or ():
            future.release()
        self._futures, self._groups = None, None

    def __enter__(self) -> DaskData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _misaligned(*arrays: np.ndarray) -> bool:
    return not all(a.flags.aligned and a.flags.c_contiguous for a in arrays)


def _layout(model: Any, p: Any, X: Any, y: Any, n: int, extra: Any) -> tuple:
    """Count (blocks, blocks the kernels see not aligned C-contiguous, X not float64)."""
    return (np.array([1.0, float(_misaligned(X, y)), float(X.dtype != np.float64)]),)


#: what one block contributes to each kind of pass ("rows" only produces the blocks: what
#: the data source alone costs)
_OPS: dict[str, Callable[..., tuple]] = {
    "rows": _rows,
    "layout": _layout,
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
        moved = _misaligned(X, y)  # a block sent from another worker: an unaligned buffer
        X, y = (np.require(a, requirements=["C", "A"]) for a in (X, y))
        with np.errstate(all="ignore"):  # a non-finite sum reaches the driver, which says so
            out = _OPS[op](model, params, X, y, count, extra)
        if not np.all(np.isfinite(out[0])):
            _check_finite(X, y, start)  # bad data says where; else the value is the model's
        if op == "layout":  # and the blocks as they were stored, before that copy
            out = (np.append(out[0], float(moved)),)
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
    worker_timeout: float = WORKER_TIMEOUT,
    **options: Any,
) -> DaskResult:
    """Fit ``model`` on the cluster by ``method`` (a :data:`symgrad.solvers.METHODS` name, or
    ``"auto"``: :func:`symgrad.solvers.choose`'s full-batch pick from the kernels' facts).

    ``X`` is a dask array or DataFrame (or numpy, spread in blocks), or a :class:`DaskData`
    to reuse across fits; the result says the iterations, passes and whether it converged,
    and where the passes' time went (``times``: produce, compute, reduce). A block that fails
    ends the fit with one ClusterError naming it (see :class:`DaskData`).
    The solver is :func:`symgrad.solvers.minimize` (``options`` go to it), the same one
    :func:`symgrad.newton.fit_newton` and :func:`symgrad.lbfgs.fit_lbfgs` run in memory, so
    both take the same iterates; a non-finite value or a failed line search is listed in
    ``result.warnings`` and raised as a :class:`symgrad.errors.ConvergenceWarning`.
    """
    from symgrad.fit import progress_bar

    data = X
    if not isinstance(X, DaskData):
        data = DaskData(
            X, y, client=client, persist=persist, chunk_rows=chunk_rows,
            worker_timeout=worker_timeout,
        )  # fmt: skip
    start = _init(model, data) if params is None else params
    problem = DaskProblem(model, data, start)
    before = dict(data.times)
    data.bar = progress_bar(progress, 0)
    if data.bar is not None:
        data.bar.total, data.bar.unit = None, "pass"
        data.bar.set_description("passes")
    try:
        method = choose(model, X, y, method, params=start, first_order=False)
        result = minimize(
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
        if data.bar is not None:
            data.bar.close()
            data.bar = None
        if data is not X:
            data.close()
    times = {k: v - before.get(k, 0.0) for k, v in data.times.items()}
    times["persist"] = data.times["persist"] if data is not X else 0.0
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.init}
    return DaskResult(**fields, times=times)


@dataclasses.dataclass
class DaskResult(SolveResult):
    """A :class:`symgrad.solvers.SolveResult` plus where the fit's passes spent their time:
    ``times`` holds worker-seconds producing blocks ("produce"; "persist" when they were
    persisted before the fit) and in the kernels ("compute"), the driver's seconds adding the
    sums ("reduce"), and the passes' count and wall-clock seconds (:func:`format_times`)."""

    times: dict[str, float] = dataclasses.field(default_factory=dict)


def dask_compute(
    *collections: Any,
    client: Any = None,
    what: str = "computing",
    worker_timeout: float = WORKER_TIMEOUT,
) -> tuple:
    """Compute dask collections together on the cluster (one pass over what they share),
    never hanging: a failed task or a cluster without workers raises one ClusterError."""
    client = _client(client)
    futures = client.compute(list(collections))
    _Watch(client, worker_timeout, what)._all(futures)
    return tuple(client.gather(futures))


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
