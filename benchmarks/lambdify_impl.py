"""The sympy.lambdify column: the plain formula, differentiated by sympy.diff, lambdified with CSE.

No stabilization: where the plain formula overflows or evaluates 0 * log(0), the harness
marks the cell non-finite instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from benchmarks.columns import Factory, Kernel
from benchmarks.workloads import Data

Elementwise = Callable[..., tuple]


def lambdify(args: Sequence[sp.Symbol], exprs: Sequence[sp.Expr]) -> Elementwise:
    """Return ``sympy.lambdify(args, exprs, "numpy", cse=True)`` giving a tuple of arrays."""
    return sp.lambdify(list(args), list(exprs), modules="numpy", cse=True)


def _sym(*names: str) -> list[sp.Symbol]:
    return [sp.Symbol(n, real=True) for n in names]


def plain_bce(z: sp.Symbol, y: sp.Symbol) -> sp.Expr:
    """Return the textbook BCE of sigmoid(z) against y."""
    p = 1 / (1 + sp.exp(-z))
    return -(y * sp.log(p) + (1 - y) * sp.log(1 - p))


def plain_softmax_ce(k: int) -> tuple[list[sp.Symbol], list[sp.Symbol], sp.Expr]:
    """Return class symbols z_j, y_j and the textbook -sum(y_j log softmax(z)_j) over k classes."""
    zs = _sym(*(f"z{j}" for j in range(k)))
    ys = _sym(*(f"y{j}" for j in range(k)))
    total = sp.Add(*(sp.exp(z) for z in zs))
    return zs, ys, -sp.Add(*(y * sp.log(sp.exp(z) / total) for z, y in zip(zs, ys, strict=True)))


def softmax_ce_kernel(k: int) -> Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]:
    """Return (z, Y) -> (mean loss, gradient / n), lambdified column by column over k classes."""
    zs, ys, loss = plain_softmax_ce(k)
    fn = lambdify([*zs, *ys], [loss, *(sp.diff(loss, z) for z in zs)])

    def value_and_grad(z: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
        n = z.shape[0]
        value, *cols = fn(*z.T, *Y.T)
        grad = np.stack([np.broadcast_to(c, (n,)) for c in cols], axis=1)
        return float(np.mean(value)), grad * (1.0 / n)

    return value_and_grad


def _sigmoid_grad(data: Data) -> Kernel:
    (x,) = _sym("x")
    fn = lambdify([x], [sp.diff(1 / (1 + sp.exp(-x)), x)])
    xs = data["x"]
    return lambda: tuple(fn(xs))


def _bce_logits(data: Data) -> Kernel:
    z, y = _sym("z", "y")
    loss = plain_bce(z, y)
    fn = lambdify([z, y], [loss, sp.diff(loss, z)])
    zs, ys = data["z"], data["y"]

    def value_and_grad() -> tuple:
        value, grad = fn(zs, ys)
        return float(np.mean(value)), grad * (1.0 / zs.size)

    return value_and_grad


def _huber_grad(data: Data) -> Kernel:
    yhat, y = _sym("yhat", "y")
    delta = sp.Float(data["delta"])
    r = yhat - y
    loss = sp.Piecewise((r**2 / 2, sp.Abs(r) < delta), (delta * (sp.Abs(r) - delta / 2), True))
    fn = lambdify([yhat, y], [sp.diff(loss, yhat)])
    a, b = data["yhat"], data["y"]
    return lambda: (fn(a, b)[0] * (1.0 / a.size),)


def _softmax_ce(data: Data) -> Kernel:
    kernel, z, Y = softmax_ce_kernel(data["z"].shape[1]), data["z"], data["Y"]
    return lambda: kernel(z, Y)


def _logreg(data: Data) -> Kernel:
    z, y = _sym("z", "y")
    loss = plain_bce(z, y)
    fn = lambdify([z, y], [loss, sp.diff(loss, z)])
    X, ys, w, b = data["X"], data["y"], data["w"], data["b"]

    def objective() -> tuple:
        value, dz = fn(X @ w + b, ys)
        dz = dz * (1.0 / len(X))
        return float(np.mean(value)), dz @ X, dz.sum()

    return objective


def _mlp(data: Data) -> Kernel:
    (x,) = _sym("x")
    relu = sp.Max(x, 0)
    act = lambdify([x], [relu])
    act_grad = lambdify([x], [sp.diff(relu, x)])
    X, Y = data["X"], data["Y"]
    W0, b0, W1, b1 = data["W0"], data["b0"], data["W1"], data["b1"]
    head = softmax_ce_kernel(W1.shape[1])

    def objective() -> tuple:
        H = X @ W0 + b0
        (A,) = act(H)
        loss, D = head(A @ W1 + b1, Y)
        DA = (D @ W1.T) * act_grad(H)[0]
        return loss, X.T @ DA, DA.sum(axis=0), A.T @ D, D.sum(axis=0)

    return objective


def _logreg_hessian(data: Data) -> Kernel:
    z, y = _sym("z", "y")
    fn = lambdify([z, y], [sp.diff(plain_bce(z, y), z, 2)])
    X, ys, w = data["X"], data["y"], data["w"]

    def hessian() -> tuple:
        (h,) = fn(X @ w, ys)
        h = np.broadcast_to(h, (len(X),)) * (1.0 / len(X))
        return (X.T @ (h[:, None] * X),)

    return hessian


FACTORIES: dict[str, Factory] = {
    "sigmoid_grad": _sigmoid_grad,
    "bce_logits": _bce_logits,
    "huber_grad": _huber_grad,
    "softmax_ce": _softmax_ce,
    "logreg": _logreg,
    "mlp": _mlp,
    "logreg_hessian": _logreg_hessian,
}
