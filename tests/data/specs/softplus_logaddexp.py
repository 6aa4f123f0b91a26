"""Rule: log(1 + exp(u)) becomes max(u, 0) + log1p(exp(-|u|)), finite for any u."""

import sympy as sp

import symgrad as sg


@sg.activation
def my_softplus(x):
    """log(1 + exp(x))."""
    return sp.log(1 + sp.exp(x))


# output
def my_softplus(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Evaluate my_softplus element-wise.

    log(1 + exp(x)).

    f = log(exp(x) + 1)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
    """
    out, x = _prepare('my_softplus', out, x)
    b1, = _scratch(out.shape, 1, out.dtype)
    np.maximum(x, 0, out=out)
    np.abs(x, out=b1)
    np.negative(b1, out=b1)
    np.exp(b1, out=b1)
    np.log1p(b1, out=b1)
    np.add(out, b1, out=out)
    return out


def my_softplus_grad(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return dmy_softplus/dx element-wise.

    f = log(exp(x) + 1)
    df/dx = sigmoid(x)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        t0 = np.exp(-np.abs(x))
        return np.maximum(t0, (x >= 0) * 1.0) / (t0 + 1)
    """
    out, x = _prepare('my_softplus_grad', out, x)
    b0, = _scratch(out.shape, 1, out.dtype)
    np.abs(x, out=b0)
    np.negative(b0, out=b0)
    np.exp(b0, out=b0)  # t0
    np.greater_equal(x, 0, out=out)
    np.maximum(b0, out, out=out)
    np.add(b0, 1, out=b0)
    np.divide(out, b0, out=out)
    return out


def my_softplus_hess(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return d2my_softplus/dx2 element-wise.

    d2f/dx2 = sigmoid(-x)*sigmoid(x)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return 0.5 / (np.cosh(x) + 1)
    """
    out, x = _prepare('my_softplus_hess', out, x)
    with np.errstate(over="ignore"):  # inf where 1/(2 + 2 cosh) is 0
        np.cosh(x, out=out)
    np.add(out, 1, out=out)
    np.divide(0.5, out, out=out)
    return out
