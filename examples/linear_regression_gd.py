"""The classic first gradient-descent exercise, done with generated gradients: fit y = 2x by GD.

X = [1, 2, 3, 4], y = 2X, model y = theta0 + theta1 * x, mean squared error, plain full-batch
gradient descent (torch's SGD without momentum) with lr 0.01 for 1000 epochs. The gradient
comes from the generated ``mse_value_and_grad`` kernel through ``LinearRegression``, both
parameters are updated simultaneously from the same gradient, and the loss is the mean (not
the sum) over samples, so the step size means the same whatever the data size. Run::

    python examples/linear_regression_gd.py
"""

from __future__ import annotations

import time

import numpy as np

from symgrad import optim
from symgrad.fit import fit
from symgrad.models import LinearRegression


def main(epochs: int = 1000, lr: float = 0.01, every: int = 100, verbose: bool = True) -> dict:
    """Fit theta0 + theta1 * x to y = 2x by gradient descent; return thetas, losses and timing."""
    X = np.array([1.0, 2.0, 3.0, 4.0])[:, None]  # one feature per row
    y = 2 * X[:, 0]
    model = LinearRegression(loss="mse")

    def show(epoch: int, info) -> None:
        if verbose and (epoch == 0 or (epoch + 1) % every == 0):
            theta = info.params
            loss = model.objective(theta, X, y)[0]  # after this epoch's step
            print(
                f"epoch {epoch + 1:5d}  loss {loss:.6f}  "
                f"theta0 {float(theta['b']):+.5f}  theta1 {float(theta['W'][0]):+.5f}"
            )

    start = time.perf_counter()
    result = fit(
        model.objective,
        model.init(n_features=1),
        X,
        y,
        optimizer=optim.sgd(lr=lr),
        epochs=epochs,
        callbacks=[show],
        progress=False,
    )
    seconds = time.perf_counter() - start
    theta0, theta1 = float(result.params["b"]), float(result.params["W"][0])
    final_loss = model.objective(result.params, X, y)[0]
    if verbose:
        print(f"after {result.n_epochs} epochs: theta0 = {theta0:.4f}, theta1 = {theta1:.4f}")
        print(f"final loss {final_loss:.3e}  (exact solution theta0 = 0, theta1 = 2)")
        print(f"wall time {seconds:.3f} s")
    return {
        "theta0": theta0,
        "theta1": theta1,
        "epochs": result.n_epochs,
        "losses": list(result.history.loss),
        "final_loss": final_loss,
        "seconds": seconds,
    }


if __name__ == "__main__":
    main()
