"""A small neural network on scikit-learn's digits, trained with Adam on generated gradients.

``load_digits`` gives 1797 8x8 images (pixel values 0..16) of the digits 0-9. We hold out a
stratified 25 % test split, scale pixels to [0, 1], and train ``MLP([64, 128, 10])`` (relu
hidden layer, softmax cross-entropy on the logits, He initialization) with Adam on shuffled
mini-batches. Backpropagation runs entirely through the generated ``relu_grad`` and
``softmax_cross_entropy_value_and_grad`` kernels. Run::

    python examples/mlp_digits.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from symgrad import optim
from symgrad.fit import fit
from symgrad.models import MLP


def main(
    hidden: int = 128,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Train the MLP; return test accuracy, losses and timing."""
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X / 16.0, y, test_size=0.25, stratify=y, random_state=seed
    )
    model = MLP([64, hidden, 10], activation="relu", loss="softmax_cross_entropy")

    start = time.perf_counter()
    result = fit(
        model.objective,
        model.init(seed),
        X_tr,
        y_tr,
        optimizer=optim.adam(lr=lr),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        validation=(X_te, y_te),
        progress=None,  # a bar on a terminal, silent otherwise
    )
    seconds = time.perf_counter() - start
    params = result.params
    out = {
        "epochs": result.n_epochs,
        "steps": result.n_steps,
        "final_loss": model.objective(params, X_tr, y_tr)[0],
        "test_loss": model.objective(params, X_te, y_te)[0],
        "train_accuracy": float(np.mean(model.predict(params, X_tr) == y_tr)),
        "test_accuracy": float(np.mean(model.predict(params, X_te) == y_te)),
        "seconds": seconds,
    }
    if verbose:
        print(f"digits: {len(X_tr)} train / {len(X_te)} test images, {model}")
        for row in result.history.rows()[:: max(1, epochs // 10)]:
            print(
                f"epoch {row['epoch'] + 1:3d}  loss {row['loss']:.4f}  "
                f"test loss {row['val_loss']:.4f}"
            )
        print(f"{out['epochs']} epochs, {out['steps']} Adam steps, batch size {batch_size}")
        print(f"final training loss {out['final_loss']:.4f}, test loss {out['test_loss']:.4f}")
        print(f"accuracy  train {out['train_accuracy']:.4f}  test {out['test_accuracy']:.4f}")
        print(f"wall time {seconds:.2f} s")
    return out


if __name__ == "__main__":
    main()
