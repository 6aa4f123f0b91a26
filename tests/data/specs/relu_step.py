"""Rule: Max(x, 0) differentiates to a 0/1 step with relu'(0) = 0 (PyTorch)."""

import sympy as sp

import symgrad as sg


@sg.activation
def my_relu(x):
    """max(x, 0)."""
    return sp.Max(x, 0)


# output
def my_relu(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Evaluate my_relu element-wise.

    max(x, 0).

    f = Max(0, x)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.maximum(x, 0)
    """
    out, x = _prepare('my_relu', out, x)
    np.maximum(x, 0, out=out)
    return out


def my_relu_grad(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return dmy_relu/dx element-wise.

    f = Max(0, x)
    df/dx = Piecewise((1, x > 0), (0, True))

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return (x > 0) * 1.0
    """
    out, x = _prepare('my_relu_grad', out, x)
    np.greater(x, 0, out=out)
    return out


def my_relu_hess(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return d2my_relu/dx2 element-wise.

    d2f/dx2 = 0

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.full(np.shape(x), 0.0)
    """
    out, x = _prepare('my_relu_hess', out, x)
    np.copyto(out, 0)
    return out
