"""Rule: |r| differentiates to sign(r) with |r|'(0) = 0."""

import sympy as sp

import symgrad as sg


@sg.loss
def mae(yhat, y):
    """Mean absolute error."""
    return sp.Abs(yhat - y)


# output
def mae(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
) -> float:
    r"""Evaluate mae(yhat, y), the mean over elements.

    Mean absolute error.

    L = mean over elements of Abs(y - yhat)

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        inv_n = 1 / np.size(yhat)
        return float(np.sum(np.abs(y - yhat)) * inv_n)
    """
    b0, yhat, y = _prepare('mae', None, yhat, y)
    weight, inv_n = _weighting('mae', weight, b0.shape, count, False)
    np.subtract(y, yhat, out=b0)
    np.abs(b0, out=b0)
    value0 = _total(weight, b0)
    value0 *= inv_n
    return float(value0)


def mae_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return dL/dyhat of the mean loss (the 1/n is included).

    dL/dyhat = (-sign(y - yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return np.sign(y - yhat) * -inv_n
    """
    out, yhat, y = _prepare('mae_grad', out, yhat, y)
    weight, inv_n = _weighting('mae_grad', weight, out.shape, count, False)
    np.subtract(y, yhat, out=out)
    np.sign(out, out=out)
    np.multiply(out, -inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def mae_value_and_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    r"""Return the mean loss and its gradient, computed with shared work.

    L = mean over elements of Abs(y - yhat)
    dL/dyhat = (-sign(y - yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y - yhat
        return (float(np.sum(np.abs(t0)) * inv_n), np.sign(t0) * -inv_n)
    """
    out, yhat, y = _prepare('mae_value_and_grad', out, yhat, y)
    weight, inv_n = _weighting('mae_value_and_grad', weight, out.shape, count, False)
    b1, = _scratch(out.shape, 1, out.dtype)
    np.subtract(y, yhat, out=out)  # t0
    np.abs(out, out=b1)
    value0 = _total(weight, b1)
    value0 *= inv_n
    np.sign(out, out=out)
    np.multiply(out, -inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return float(value0), out


def mae_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the diagonal of d2L/dyhat2 (the loss is separable, so that is all of it).

    diag d2L/dyhat2 = (0) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.full(np.shape(yhat), 0.0)
    """
    out, yhat, y = _prepare('mae_hess', out, yhat, y)
    weight, inv_n = _weighting('mae_hess', weight, out.shape, count, False)
    np.copyto(out, 0)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def mae_grad_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the gradient and Hessian diagonal, computed with shared work.

    dL/dyhat = (-sign(y - yhat)) / n_elements
    diag d2L/dyhat2 = (0) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return (np.sign(y - yhat) * -inv_n, np.full(np.shape(yhat), 0.0))
    """
    out, out1, yhat, y = _prepare('mae_grad_hess', out, yhat, y, forms=('grad', 'hess'))
    weight, inv_n = _weighting('mae_grad_hess', weight, out.shape, count, False)
    np.subtract(y, yhat, out=out)
    np.sign(out, out=out)
    np.multiply(out, -inv_n, out=out)
    np.copyto(out1, 0)
    if weight is not None:
        np.multiply(out, weight, out=out)
        np.multiply(out1, weight, out=out1)
    return out, out1


def mae_per_sample(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the loss per element, before the mean (times ``weight`` if given).

    l = Abs(y - yhat)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.abs(y - yhat)
    """
    out, yhat, y = _prepare('mae_per_sample', out, yhat, y)
    weight = _weights('mae_per_sample', weight, out.shape, False)
    np.subtract(y, yhat, out=out)
    np.abs(out, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out
