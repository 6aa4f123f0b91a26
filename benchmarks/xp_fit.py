"""symgrad.fit of an MLP on numpy arrays against the same fit on torch CPU tensors.

Run ``python -m benchmarks.xp_fit [--rows N] [--repeat R] [--dtype float32]``. Times, round
robin so that load from other processes falls on every column alike, one ``fit`` (adam,
mini-batches) of ``MLP([64, 128, 128, 10])`` on numpy arrays, on torch tensors (the Array API
path: the ``generated/*_xp.py`` kernels and optimizer rules run in torch) and, as a
reference, the same network in plain torch (``nn.Sequential`` + ``torch.optim.Adam``,
autograd). Prints each column's median seconds and its ratio to numpy measured in the same
run, after checking that the torch run's loss history equals numpy's. BLAS and torch run on
``--threads`` threads (default 1: on a shared machine, spinning BLAS and OpenMP threads of two
libraries make the figures swing by 2-5x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

SIZES = (64, 128, 128, 10)


def _data(rows: int, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, SIZES[0])).astype(dtype)
    y = np.argmax(X[:, : SIZES[-1]] + rng.normal(size=(rows, SIZES[-1])), axis=1)
    return X, y


def _columns(rows: int, dtype, epochs: int, batch: int) -> dict:
    import torch

    from symgrad.fit import fit
    from symgrad.models import MLP

    model = MLP(SIZES, activation="relu")
    X, y = _data(rows, dtype)
    Xt, yt = torch.asarray(X), torch.asarray(y)
    kw = dict(optimizer="adam", epochs=epochs, batch_size=batch, seed=0)

    def plain_torch():
        torch.manual_seed(0)
        layers = []
        for i, (a, b) in enumerate(zip(SIZES, SIZES[1:], strict=False)):
            layers += [torch.nn.Linear(a, b, dtype=Xt.dtype)]
            layers += [torch.nn.ReLU()] if i < len(SIZES) - 2 else []
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = np.random.default_rng(0)
        for _ in range(epochs):
            order = torch.asarray(gen.permutation(rows))
            for start in range(0, rows, batch):
                idx = order[start : start + batch]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
                opt.step()

    return {
        "symgrad numpy": lambda: fit(model.objective, model.init(0, dtype=dtype), X, y, **kw),
        "symgrad torch": lambda: fit(model.objective, model.init(0, like=Xt), Xt, yt, **kw),
        "plain torch": plain_torch,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        _run(args, torch)


def _run(args: argparse.Namespace, torch) -> None:
    dtype = np.dtype(args.dtype)
    cols = _columns(args.rows, dtype, args.epochs, args.batch)
    want, got = cols["symgrad numpy"](), cols["symgrad torch"]()
    tol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got.history.loss, want.history.loss, rtol=tol)
    times: dict = {key: [] for key in cols}
    for _ in range(args.repeat):
        for key, fn in cols.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    base = statistics.median(times["symgrad numpy"])
    print(
        f"MLP{list(SIZES)} relu, adam, {args.rows} rows, batch {args.batch}, {args.epochs} "
        f"epochs, {args.dtype}; torch {torch.__version__}, numpy {np.__version__}, "
        f"{args.threads} thread(s); median of {args.repeat}"
    )
    print("| column | seconds | / symgrad numpy |")
    print("|---|---|---|")
    for key, t in times.items():
        med = statistics.median(t)
        print(f"| {key} | {med:.3f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
