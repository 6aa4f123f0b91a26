"""Rule: the sigmoid and its derivative polynomials keep full precision in both tails."""

import sympy as sp

import symgrad as sg


@sg.activation
def logistic(x):
    """1 / (1 + exp(-x))."""
    return 1 / (1 + sp.exp(-x))


# output
def logistic(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Evaluate logistic element-wise.

    1 / (1 + exp(-x)).

    f = 1/(1 + exp(-x))

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        t0 = np.exp(-np.abs(x))
        return np.maximum(t0, (x >= 0) * 1.0) / (t0 + 1)
    """
    out, x = _prepare('logistic', out, x)
    b0, = _scratch(out.shape, 1, out.dtype)
    np.abs(x, out=b0)
    np.negative(b0, out=b0)
    np.exp(b0, out=b0)  # t0
    np.greater_equal(x, 0, out=out)
    np.maximum(b0, out, out=out)
    np.add(b0, 1, out=b0)
    np.divide(out, b0, out=out)
    return out


def logistic_grad(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return dlogistic/dx element-wise.

    f = 1/(1 + exp(-x))
    df/dx = sigmoid(-x)*sigmoid(x)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return 0.5 / (np.cosh(x) + 1)
    """
    out, x = _prepare('logistic_grad', out, x)
    with np.errstate(over="ignore"):  # inf where 1/(2 + 2 cosh) is 0
        np.cosh(x, out=out)
    np.add(out, 1, out=out)
    np.divide(0.5, out, out=out)
    return out


def logistic_hess(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return d2logistic/dx2 element-wise.

    d2f/dx2 = -tanh(x/2)*sigmoid(-x)*sigmoid(x)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.tanh(x * 0.5) / (np.cosh(x) + 1) * (-1 / 2)
    """
    out, x = _prepare('logistic_hess', out, x)
    b1, = _scratch(out.shape, 1, out.dtype)
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    with np.errstate(over="ignore"):  # inf where 1/(2 + 2 cosh) is 0
        np.cosh(x, out=b1)
    np.add(b1, 1, out=b1)
    np.divide(out, b1, out=out)
    np.multiply(out, -1/2, out=out)
    return out
