"""Time one optimizer step: symgrad's pure update and in-place step beside torch.optim.

``python -m benchmarks.optim_step [--repeat N] [--threads T] [--clock cpu|wall]
[--warmup S]`` prints, for a small (64-32-10) and a wide (784-256-10) MLP parameter dict,
microseconds per step of Adam, AdamW and SGD with momentum, in one run, side by side:

* ``update``: symgrad's pure ``opt.update`` (new arrays, the optax-style API);
* ``in place``: :func:`symgrad.optim.step_in_place`, the named optimizers' fast path, on
  separate param and grad arrays (as torch's separate tensors);
* ``joined``: the same step on params and grads laid out by :func:`symgrad.optim.join`
  (views of one flat array each: one ufunc call per operation);
* ``fit``: :func:`symgrad.fit`, the runner, per step of a fresh run of ``--warmup``
  full-batch epochs whose objective hands back fixed gradients in the buffer fit passes
  as ``out=`` (as ``MLP.objective`` does): the step with fit's layout, its finite checks,
  the backup that undoes a non-finite step and the history (Adam's first few hundred
  steps still divide by a bias correction the warm columns skip);
* ``hand``: hand-written in-place numpy, the floor a numpy step can reach;
* ``torch foreach`` and ``torch fused``: ``torch.optim`` (``foreach=True`` / ``fused=True``,
  other settings at their defaults) on CPU tensors of the same shapes (when torch is
  installed; otherwise the columns say so).

Every column first takes ``--warmup`` steps (default 400: the steady state of a training
run), then the columns are timed in turn, round after round (a load spike hits all alike),
and each cell is the median over the rounds. ``--clock cpu`` (the default) times with the
process's CPU time, which a shared machine's other jobs disturb far less than the wall
clock; ``--clock wall`` uses ``time.perf_counter``. The ``x`` columns are the in-place,
joined and fit steps over torch foreach (<= 1: as fast or faster). Then, in the same run, the
``mlp`` workload's value and gradients (relu MLP, softmax cross-entropy, 1024 x
784-256-10) by ``MLP.objective`` beside ``jax.jit(value_and_grad)`` (when jax is
installed), both on one thread; and training on it, full batch: ``symgrad.fit`` of
``MLP.objective`` beside a torch loop (``zero_grad``, forward, ``cross_entropy``,
``backward``, the foreach step, ``loss.item()``), per epoch, float64, one thread.
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable

import numpy as np

from symgrad import optim
from symgrad.fit import fit

SIZES = {"small 64-32-10": (64, 32, 10), "wide 784-256-10": (784, 256, 10)}
#: name -> (symgrad optimizer, torch class name, torch keyword arguments)
OPTIMIZERS = {
    "Adam": (lambda: optim.adam(lr=1e-3), "Adam", {"lr": 1e-3}),
    "AdamW": (lambda: optim.adamw(lr=1e-3), "AdamW", {"lr": 1e-3}),
    "SGD-momentum": (
        lambda: optim.sgd(lr=1e-2, momentum=0.9),
        "SGD",
        {"lr": 1e-2, "momentum": 0.9},
    ),
}


def mlp_params(sizes: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return W0, b0, W1, b1, ... for an MLP with these layer widths, normally distributed."""
    out = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        out[f"W{i}"], out[f"b{i}"] = rng.normal(size=(a, b)), rng.normal(size=b)
    return out


def hand_step(name: str, params: dict, lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999):
    """Return a hand-written in-place numpy step of ``name`` on preallocated buffers."""
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    tmp = {k: np.empty_like(v) for k, v in params.items()}

    def adam(grads: dict, t: int = 1) -> None:
        c1, c2 = 1 - b1**t, (1 - b2**t) ** 0.5
        for k, g in grads.items():
            if name == "AdamW":
                params[k] *= 1 - lr * 1e-2
            m[k] *= b1
            np.multiply(g, 1 - b1, out=tmp[k])
            m[k] += tmp[k]
            v2[k] *= b2
            np.multiply(g, g, out=tmp[k])
            tmp[k] *= 1 - b2
            v2[k] += tmp[k]
            np.sqrt(v2[k], out=tmp[k])
            tmp[k] /= c2
            tmp[k] += 1e-8
            np.divide(m[k], tmp[k], out=tmp[k])
            tmp[k] *= -lr / c1
            params[k] += tmp[k]

    def sgd(grads: dict) -> None:
        for k, g in grads.items():
            m[k] *= 0.9
            m[k] += g
            np.multiply(m[k], -1e-2, out=tmp[k])
            params[k] += tmp[k]

    return sgd if name == "SGD-momentum" else adam


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def torch_steps(params: dict, grads: dict, cls: str, kwargs: dict) -> dict[str, Callable]:
    """Return torch.optim steps (foreach, fused) on CPU tensors like ``params``, or {}."""
    try:
        import torch
    except ImportError:
        return {}
    out = {}
    for mode in ("foreach", "fused"):
        tensors = [torch.tensor(v, requires_grad=True) for v in params.values()]
        for t, g in zip(tensors, grads.values(), strict=True):
            t.grad = torch.tensor(g)
        try:
            opt = getattr(torch.optim, cls)(tensors, **kwargs, **{mode: True})
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue  # e.g. no fused kernel for this optimizer on this build
        out[mode] = opt.step
    return out


def fit_steps(make: Callable[[], optim.Optimizer], params: dict, grads: dict, epochs: int):
    """Return a call that runs :func:`symgrad.fit` for ``epochs`` full-batch steps of a fresh
    ``make()`` from ``params``, its objective handing back ``grads`` in fit's buffer."""
    X = np.zeros((1, 1))

    def objective(p: dict, X: np.ndarray, y: None, out: dict | None = None) -> tuple:
        if out is None:
            return 0.0, grads
        if out is not seen[-1]:  # a new run's buffer: fill it once
            seen[-1] = out
            for k, g in grads.items():
                np.copyto(out[k], g)
        return 0.0, out

    seen: list = [None]

    def run() -> None:
        fit(objective, params, X, None, optimizer=make(), epochs=epochs, progress=False)

    return run


def interleaved(
    columns: dict[str, Callable[[], object]],
    number: int,
    repeat: int,
    clock: str = "cpu",
    numbers: dict[str, int] | None = None,
) -> dict:
    """Return each column's median seconds per call over ``repeat`` rounds of ``number``
    calls (``numbers[name]`` for the columns it names), timing the columns in turn each
    round, so a load spike on a shared machine hits every column alike. One untimed call
    starts each column's turn: what the column before it evicted from the caches is brought
    back for every column alike."""
    rounds: dict[str, list[float]] = {name: [] for name in columns}
    numbers = numbers or {}
    for _ in range(repeat):
        for name, fn in columns.items():
            k = numbers.get(name, number)
            fn()
            rounds[name].append(timeit.timeit(fn, number=k, timer=CLOCKS[clock]) / k)
    return {name: float(np.median(times)) for name, times in rounds.items()}


def row(name: str, params: dict, grads: dict, args: argparse.Namespace, number: int) -> str:
    """Return one printed row: ``name``'s step times in every column, timed interleaved."""
    make, cls, kwargs = OPTIMIZERS[name]
    opt, fast_opt, joined_opt = make(), make(), make()  # one optimizer per column, as a user has
    state = opt.init(params)
    own = {k: v.copy() for k, v in params.items()}
    joined, joined_grads = optim.join(params), optim.join(grads)
    box = [fast_opt.init(own), joined_opt.init(joined)]

    def fast() -> None:
        box[0] = optim.step_in_place(fast_opt, grads, box[0], own)

    def fast_joined() -> None:
        box[1] = optim.step_in_place(joined_opt, joined_grads, box[1], joined)

    step = hand_step(name, {k: v.copy() for k, v in params.items()})
    columns = {
        "update": lambda: opt.update(grads, state, params),
        "in place": fast,
        "joined": fast_joined,
        "fit": fit_steps(make, params, grads, max(args.warmup, 1)),
        "hand": lambda: step(grads),
        **torch_steps(params, grads, cls, kwargs),
    }
    for key, fn in columns.items():
        for _ in range(0 if key in ("update", "fit") else args.warmup):
            fn()
    ts = interleaved(columns, number, args.repeat, args.clock, numbers={"fit": 1})
    ts["fit"] /= max(args.warmup, 1)
    widths = (("update", 8), ("in place", 9), ("joined", 7), ("fit", 6), ("hand", 7))
    cells = [f"{ts[k] * 1e6:{w}.0f}" for k, w in widths]
    for mode, width in (("foreach", 14), ("fused", 12)):
        cells.append(f"{ts[mode] * 1e6:{width}.0f}" if mode in ts else f"{'-':>{width}s}")
    for key in ("in place", "joined", "fit"):
        cells.append(f"{ts[key] / ts['foreach']:6.2f}" if "foreach" in ts else f"{'-':>6s}")
    return f"  {name:13s} {' '.join(cells)}"


def mlp_value_and_grad(repeat: int, clock: str = "cpu") -> str:
    """Return the printed comparison of the MLP value+grad with jax.jit's, interleaved."""
    from threadpoolctl import threadpool_limits

    from benchmarks import symgrad_impl
    from benchmarks.workloads import WORKLOADS

    workload = next(w for w in WORKLOADS if w.name == "mlp")
    data = workload.make("full")
    kernels = {"symgrad": symgrad_impl.make_mlp(data)}
    try:
        from benchmarks import jax_impl

        kernels["jax.jit"] = jax_impl.FACTORIES["mlp"](data)
    except ImportError:
        pass
    with threadpool_limits(1):
        for kernel in kernels.values():
            kernel()  # compile / warm up
        best = interleaved(kernels, 5, repeat, clock)
    cells = [f"{name} {sec * 1e3:.1f} ms" for name, sec in best.items()]
    if "jax.jit" in best:
        cells.append(f"x{best['symgrad'] / best['jax.jit']:.2f} jax.jit")
    else:
        cells.append("jax not installed")
    return f"\nmlp value+grad {workload.shape('full')}: " + ", ".join(cells)


def torch_training(params: dict, X: np.ndarray, labels: np.ndarray, cls: str, kwargs: dict,
                   epochs: int) -> Callable[[], None] | None:  # fmt: skip
    """Return a fresh torch training run of ``epochs`` full-batch steps (zero_grad, relu MLP,
    cross-entropy, backward, ``torch.optim`` foreach step, the loss read back), or None."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    start = [torch.tensor(v) for v in params.values()]
    Xt, yt = torch.tensor(X), torch.tensor(labels)

    def run() -> None:
        W0, b0, W1, b1 = (t.clone().requires_grad_() for t in start)
        opt = getattr(torch.optim, cls)([W0, b0, W1, b1], **kwargs, foreach=True)
        for _ in range(epochs):
            opt.zero_grad()
            loss = F.cross_entropy(F.relu(Xt @ W0 + b0) @ W1 + b1, yt)
            loss.backward()
            opt.step()
            loss.item()

    return run


def training(repeat: int, clock: str = "cpu", epochs: int = 10) -> str:
    """Return the printed comparison of training on the ``mlp`` workload (full batch, float64,
    one thread): :func:`symgrad.fit` of ``MLP.objective`` beside a torch loop, per epoch of
    fresh runs of ``epochs`` epochs, interleaved."""
    from threadpoolctl import threadpool_limits

    from benchmarks.workloads import WORKLOADS
    from symgrad.models import MLP

    workload = next(w for w in WORKLOADS if w.name == "mlp")
    data = workload.make("full")
    X, labels = data["X"], np.argmax(data["Y"], axis=1)
    params = {k: data[k] for k in ("W0", "b0", "W1", "b1")}
    model = MLP((X.shape[1], data["W0"].shape[1], data["W1"].shape[1]), activation="relu")
    cells = []
    for name, (make, cls, kwargs) in OPTIMIZERS.items():
        columns = {
            "fit": lambda make=make: fit(
                model.objective, params, X, labels, optimizer=make(), epochs=epochs, progress=False
            ),  # fmt: skip
        }
        loop = torch_training(params, X, labels, cls, kwargs, epochs)
        if loop is not None:
            columns["torch"] = loop
        with threadpool_limits(1):
            for fn in columns.values():
                fn()  # warm up
            ts = interleaved(columns, 1, repeat, clock)
        cell = f"{name} fit {ts['fit'] / epochs * 1e3:.1f} ms"
        if "torch" in ts:
            cell += f", torch {ts['torch'] / epochs * 1e3:.1f} ms, x{ts['fit'] / ts['torch']:.2f}"
        cells.append(cell)
    return (
        f"\ntraining {workload.shape('full')}, full batch, per epoch (runs of {epochs}): "
        + "; ".join(cells)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--warmup", type=int, default=400, help="steps before timing")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
        have_torch = f"torch {torch.__version__}"
    except ImportError:
        have_torch = "torch not installed"
    print(
        f"microseconds per step, median of {args.repeat} rounds ({args.clock} clock, after "
        f"{args.warmup} warm-up steps); {have_torch}"
    )
    rng = np.random.default_rng(0)
    for label, sizes in SIZES.items():
        params = mlp_params(sizes, rng)
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        number = 200 if label.startswith("small") else 20
        print(f"\n{label} ({sum(v.size for v in params.values())} parameters)")
        head = ("optimizer", "update", "in place", "joined", "fit", "hand", "torch foreach",
                "torch fused", "x", "x join", "x fit")  # fmt: skip
        print("  {:13s} {:>8s} {:>9s} {:>7s} {:>6s} {:>7s} {:>14s} {:>12s} {:>6s} {:>6s} {:>6s}"
              .format(*head))  # fmt: skip
        for name in OPTIMIZERS:
            print(row(name, params, grads, args, number))
    print(mlp_value_and_grad(args.repeat, args.clock))
    print(training(args.repeat, args.clock))


if __name__ == "__main__":
    main()
