"""The fixed benchmark workloads: their names, sizes and deterministic float64 input data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Input arrays and scalars of one workload, by name.
Data = dict[str, Any]
SIZES = ("full", "quick", "tiny")
#: Every 1000th logit of the binary cross-entropy row is this confident (and right).
CONFIDENT_LOGIT = 60.0


@dataclass(frozen=True)
class Workload:
    """One benchmark row: a name, a title, and data at each size."""

    name: str
    title: str
    dims: dict[str, tuple[int, ...]]
    build: Callable[[tuple[int, ...], np.random.Generator], Data]

    def make(self, size: str, seed: int = 0) -> Data:
        """Return the workload's input data at ``size`` ("full", "quick" or "tiny")."""
        return self.build(self.dims[size], np.random.default_rng(seed))

    def shape(self, size: str) -> str:
        """Return the data's dimensions at ``size``, e.g. "100,000 x 64"."""
        return " x ".join(f"{d:,}" for d in self.dims[size])


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((labels.size, k))
    out[np.arange(labels.size), labels] = 1.0
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _sigmoid_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    return {"x": rng.normal(size=dims[0]) * 3.0}


def _bce_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    (n,) = dims
    z = rng.normal(size=n) * 4.0
    y = (rng.uniform(size=n) < _sigmoid(z)).astype(float)
    # confident, correct predictions: the plain formula evaluates 0 * log(0) there
    sign = np.where(np.arange(0, n, 1000) % 2000 == 0, 1.0, -1.0)
    z[::1000] = CONFIDENT_LOGIT * sign
    y[::1000] = (sign > 0).astype(float)
    return {"z": z, "y": y}


def _huber_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    (n,) = dims
    return {"yhat": rng.normal(size=n) * 2.0, "y": rng.normal(size=n) * 2.0, "delta": 1.0}


def _softmax_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    n, k = dims
    return {"z": rng.normal(size=(n, k)) * 3.0, "Y": _one_hot(rng.integers(0, k, size=n), k)}


def _logreg_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    n, d = dims
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d) / np.sqrt(d)
    b = np.array(0.1)
    y = (rng.uniform(size=n) < _sigmoid(X @ w + b)).astype(float)
    return {"X": X, "y": y, "w": w, "b": b}


def _mlp_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    n, d, h, k = dims
    X = rng.normal(size=(n, d))
    W0 = rng.normal(size=(d, h)) * np.sqrt(2.0 / d)
    W1 = rng.normal(size=(h, k)) * np.sqrt(1.0 / h)
    b0 = rng.normal(size=h) * 0.01
    b1 = rng.normal(size=k) * 0.01
    labels = rng.integers(0, k, size=n)
    return {"X": X, "Y": _one_hot(labels, k), "W0": W0, "b0": b0, "W1": W1, "b1": b1}


def _hessian_data(dims: tuple[int, ...], rng: np.random.Generator) -> Data:
    data = _logreg_data(dims, rng)
    del data["b"]  # the Hessian row has no intercept: H is d x d
    return data


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "sigmoid_grad",
        "sigmoid derivative",
        {"full": (2_000_000,), "quick": (200_000,), "tiny": (1000,)},
        _sigmoid_data,
    ),
    Workload(
        "bce_logits",
        "BCE with logits, value+grad",
        {"full": (2_000_000,), "quick": (200_000,), "tiny": (1000,)},
        _bce_data,
    ),
    Workload(
        "huber_grad",
        "Huber gradient",
        {"full": (2_000_000,), "quick": (200_000,), "tiny": (1000,)},
        _huber_data,
    ),
    Workload(
        "softmax_ce",
        "softmax CE, value+grad",
        {"full": (100_000, 64), "quick": (10_000, 64), "tiny": (50, 5)},
        _softmax_data,
    ),
    Workload(
        "logreg",
        "logistic regression, value+grad",
        {"full": (200_000, 64), "quick": (20_000, 64), "tiny": (100, 8)},
        _logreg_data,
    ),
    Workload(
        "mlp",
        "MLP relu + softmax CE, value+grads",
        {"full": (1024, 784, 256, 10), "quick": (256, 784, 256, 10), "tiny": (16, 20, 12, 5)},
        _mlp_data,
    ),
    Workload(
        "logreg_hessian",
        "logistic regression Hessian",
        {"full": (20_000, 128), "quick": (2_000, 128), "tiny": (100, 6)},
        _hessian_data,
    ),
)

BY_NAME = {w.name: w for w in WORKLOADS}
