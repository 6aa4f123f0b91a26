"""Rule: log(cosh(r)) is |r| + log1p(exp(-2|r|)) - log 2, finite for any r."""

import sympy as sp

import symgrad as sg


@sg.loss
def my_log_cosh(yhat, y):
    """log(cosh(yhat - y))."""
    return sp.log(sp.cosh(yhat - y))


# output
def my_log_cosh(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
) -> float:
    r"""Evaluate my_log_cosh(yhat, y), the mean over elements.

    log(cosh(yhat - y)).

    L = mean over elements of log(cosh(y - yhat))

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y - yhat
        t1 = np.abs(t0)
        return (
            float(np.sum(np.where(t1 < 2, np.log1p(np.sinh(np.minimum(t1, 2) * 0.5) ** 2 * 2),
            np.logaddexp(-t0, t0) - 0.6931471805599453)) * inv_n)
        )
    """
    b0, yhat, y = _prepare('my_log_cosh', None, yhat, y)
    weight, inv_n = _weighting('my_log_cosh', weight, b0.shape, count, False)
    b1, b2 = _scratch(b0.shape, 2, b0.dtype)
    m0, = _scratch(b0.shape, 1, bool)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=b0)  # t0
        np.abs(b0, out=b1)  # t1
        np.less(b1, 2, out=m0)
        np.minimum(b1, 2, out=b1)
        np.multiply(b1, 0.5, out=b1)
        np.sinh(b1, out=b1)
        np.square(b1, out=b1)
        np.multiply(b1, 2, out=b1)
        np.log1p(b1, out=b1)
        np.negative(b0, out=b2)
        np.logaddexp(b2, b0, out=b2)
        np.subtract(b2, 0.6931471805599453, out=b2)
    np.copyto(b2, b1, where=m0)
    value0 = _total(weight, b2)
    value0 *= inv_n
    return float(value0)


def my_log_cosh_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return dL/dyhat of the mean loss (the 1/n is included).

    dL/dyhat = (-tanh(y - yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return np.tanh(y - yhat) * -inv_n
    """
    out, yhat, y = _prepare('my_log_cosh_grad', out, yhat, y)
    weight, inv_n = _weighting('my_log_cosh_grad', weight, out.shape, count, False)
    np.subtract(y, yhat, out=out)
    np.tanh(out, out=out)
    np.multiply(out, -inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_log_cosh_value_and_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    r"""Return the mean loss and its gradient, computed with shared work.

    L = mean over elements of log(cosh(y - yhat))
    dL/dyhat = (-tanh(y - yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y - yhat
        t1 = np.abs(t0)
        return (
            (float(np.sum(np.where(t1 < 2, np.log1p(np.sinh(np.minimum(t1, 2) * 0.5) ** 2 * 2),
            np.logaddexp(-t0, t0) - 0.6931471805599453)) * inv_n), np.tanh(t0) * -inv_n)
        )
    """
    out, yhat, y = _prepare('my_log_cosh_value_and_grad', out, yhat, y)
    weight, inv_n = _weighting('my_log_cosh_value_and_grad', weight, out.shape, count, False)
    b1, b2 = _scratch(out.shape, 2, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    np.subtract(y, yhat, out=out)  # t0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.abs(out, out=b1)  # t1
        np.less(b1, 2, out=m0)
        np.minimum(b1, 2, out=b1)
        np.multiply(b1, 0.5, out=b1)
        np.sinh(b1, out=b1)
        np.square(b1, out=b1)
        np.multiply(b1, 2, out=b1)
        np.log1p(b1, out=b1)
        np.negative(out, out=b2)
        np.logaddexp(b2, out, out=b2)
        np.subtract(b2, 0.6931471805599453, out=b2)
    np.copyto(b2, b1, where=m0)
    value0 = _total(weight, b2)
    value0 *= inv_n
    np.tanh(out, out=out)
    np.multiply(out, -inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return float(value0), out


def my_log_cosh_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the diagonal of d2L/dyhat2 (the loss is separable, so that is all of it).

    diag d2L/dyhat2 = (4*sigmoid(-2*y + 2*yhat)*sigmoid(2*y - 2*yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return 2 * inv_n / (np.cosh(y * 2 - yhat * 2) + 1)
    """
    out, yhat, y = _prepare('my_log_cosh_hess', out, yhat, y)
    weight, inv_n = _weighting('my_log_cosh_hess', weight, out.shape, count, False)
    b1, = _scratch(out.shape, 1, out.dtype)
    np.multiply(y, 2, out=out)
    np.multiply(yhat, 2, out=b1)
    np.subtract(out, b1, out=out)
    with np.errstate(over="ignore"):  # inf where 1/(2 + 2 cosh) is 0
        np.cosh(out, out=out)
    np.add(out, 1, out=out)
    np.divide(2*inv_n, out, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_log_cosh_grad_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the gradient and Hessian diagonal, computed with shared work.

    dL/dyhat = (-tanh(y - yhat)) / n_elements
    diag d2L/dyhat2 = (4*sigmoid(-2*y + 2*yhat)*sigmoid(2*y - 2*yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return (np.tanh(y - yhat) * -inv_n, 2 * inv_n / (np.cosh(y * 2 - yhat * 2) + 1))
    """
    out, out1, yhat, y = _prepare('my_log_cosh_grad_hess', out, yhat, y, forms=('grad', 'hess'))
    weight, inv_n = _weighting('my_log_cosh_grad_hess', weight, out.shape, count, False)
    b2, = _scratch(out.shape, 1, out.dtype)
    np.subtract(y, yhat, out=out)
    np.tanh(out, out=out)
    np.multiply(out, -inv_n, out=out)
    np.multiply(y, 2, out=out1)
    np.multiply(yhat, 2, out=b2)
    np.subtract(out1, b2, out=out1)
    with np.errstate(over="ignore"):  # inf where 1/(2 + 2 cosh) is 0
        np.cosh(out1, out=out1)
    np.add(out1, 1, out=out1)
    np.divide(2*inv_n, out1, out=out1)
    if weight is not None:
        np.multiply(out, weight, out=out)
        np.multiply(out1, weight, out=out1)
    return out, out1


def my_log_cosh_per_sample(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the loss per element, before the mean (times ``weight`` if given).

    l = log(cosh(y - yhat))

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        t0 = y - yhat
        t1 = np.abs(t0)
        return (
            np.where(t1 < 2, np.log1p(np.sinh(np.minimum(t1, 2) * 0.5) ** 2 * 2), np.logaddexp(-t0,
            t0) - 0.6931471805599453)
        )
    """
    out, yhat, y = _prepare('my_log_cosh_per_sample', out, yhat, y)
    weight = _weights('my_log_cosh_per_sample', weight, out.shape, False)
    b0, b1 = _scratch(out.shape, 2, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=b0)  # t0
        np.abs(b0, out=b1)  # t1
        np.less(b1, 2, out=m0)
        np.minimum(b1, 2, out=b1)
        np.multiply(b1, 0.5, out=b1)
        np.sinh(b1, out=b1)
        np.square(b1, out=b1)
        np.multiply(b1, 2, out=b1)
        np.log1p(b1, out=b1)
        np.negative(b0, out=out)
        np.logaddexp(out, b0, out=out)
        np.subtract(out, 0.6931471805599453, out=out)
    np.copyto(out, b1, where=m0)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out
