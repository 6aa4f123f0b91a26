"""Rule: xlogy(y, p) is 0 where y is 0, so 0 log 0 = 0."""

import symgrad as sg


@sg.loss
def my_bce(yhat, y):
    """Binary cross-entropy on probabilities."""
    return -(sg.xlogy(y, yhat) + sg.xlogy(1 - y, 1 - yhat))


# output
def my_bce(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
) -> float:
    r"""Evaluate my_bce(yhat, y), the mean over elements.

    Binary cross-entropy on probabilities.

    L = mean over elements of -xlogy(y, yhat) - xlogy(1 - y, 1 - yhat)

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = 1 - y
        return (
            float(-np.sum(t0 * np.log(np.where(t0 == 0, 1, 1 - yhat)) + y * np.log(np.where(y == 0,
            1, yhat))) * inv_n)
        )
    """
    b0, yhat, y = _prepare('my_bce', None, yhat, y)
    weight, inv_n = _weighting('my_bce', weight, b0.shape, count, False)
    b1, = _scratch(b0.shape, 1, b0.dtype)
    m0, = _scratch(b0.shape, 1, bool)
    np.subtract(1, y, out=b0)  # t0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.equal(b0, 0, out=m0)
        np.subtract(1, yhat, out=b1)
    np.copyto(b1, 1, where=m0)
    np.log(b1, out=b1)
    np.multiply(b0, b1, out=b0)
    np.equal(y, 0, out=m0)
    np.copyto(b1, yhat)
    np.copyto(b1, 1, where=m0)
    np.log(b1, out=b1)
    np.multiply(y, b1, out=b1)
    np.add(b0, b1, out=b0)
    value0 = -_total(weight, b0)
    value0 *= inv_n
    return float(value0)


def my_bce_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return dL/dyhat of the mean loss (the 1/n is included).

    dL/dyhat = (-xdivy(y, yhat) + xdivy(1 - y, 1 - yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = 1 - y
        return (t0 / np.where(t0 == 0, 1, 1 - yhat) - y / np.where(y == 0, 1, yhat)) * inv_n
    """
    out, yhat, y = _prepare('my_bce_grad', out, yhat, y)
    weight, inv_n = _weighting('my_bce_grad', weight, out.shape, count, False)
    b1, = _scratch(out.shape, 1, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    np.subtract(1, y, out=out)  # t0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.equal(out, 0, out=m0)
        np.subtract(1, yhat, out=b1)
    np.copyto(b1, 1, where=m0)
    np.divide(out, b1, out=out)
    np.equal(y, 0, out=m0)
    np.copyto(b1, yhat)
    np.copyto(b1, 1, where=m0)
    np.divide(y, b1, out=b1)
    np.subtract(out, b1, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_bce_value_and_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    r"""Return the mean loss and its gradient, computed with shared work.

    L = mean over elements of -xlogy(y, yhat) - xlogy(1 - y, 1 - yhat)
    dL/dyhat = (-xdivy(y, yhat) + xdivy(1 - y, 1 - yhat)) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = np.where(y == 0, 1, yhat)
        t1 = 1 - y
        t2 = np.where(t1 == 0, 1, 1 - yhat)
        return (
            (float((-np.vdot(t1, np.log(t2)) - np.vdot(y, np.log(t0))) * inv_n), (t1 / t2 - y / t0)
            * inv_n)
        )
    """
    out, yhat, y = _prepare('my_bce_value_and_grad', out, yhat, y)
    weight, inv_n = _weighting('my_bce_value_and_grad', weight, out.shape, count, False)
    b0, b2, b3 = _scratch(out.shape, 3, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    np.equal(y, 0, out=m0)
    np.copyto(b0, yhat)
    np.copyto(b0, 1, where=m0)  # t0
    np.subtract(1, y, out=out)  # t1
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.equal(out, 0, out=m0)
        np.subtract(1, yhat, out=b2)
    np.copyto(b2, 1, where=m0)  # t2
    np.log(b2, out=b3)
    value0 = -_total(weight, out, b3)
    np.log(b0, out=b3)
    value0 -= _total(weight, y, b3)
    value0 *= inv_n
    np.divide(out, b2, out=out)
    np.divide(y, b0, out=b0)
    np.subtract(out, b0, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return float(value0), out


def my_bce_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the diagonal of d2L/dyhat2 (the loss is separable, so that is all of it).

    diag d2L/dyhat2 = (y/yhat**2 - (y - 1)/(1 - yhat)**2) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return (y / yhat / yhat - (y - 1) / (1 - yhat) / (1 - yhat)) * inv_n
    """
    out, yhat, y = _prepare('my_bce_hess', out, yhat, y)
    weight, inv_n = _weighting('my_bce_hess', weight, out.shape, count, False)
    b1, b2 = _scratch(out.shape, 2, out.dtype)
    np.divide(y, yhat, out=out)
    np.divide(out, yhat, out=out)
    np.subtract(y, 1, out=b1)
    np.subtract(1, yhat, out=b2)
    np.divide(b1, b2, out=b1)
    np.divide(b1, b2, out=b1)
    np.subtract(out, b1, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_bce_grad_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the gradient and Hessian diagonal, computed with shared work.

    dL/dyhat = (-xdivy(y, yhat) + xdivy(1 - y, 1 - yhat)) / n_elements
    diag d2L/dyhat2 = (y/yhat**2 - (y - 1)/(1 - yhat)**2) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y * inv_n
        t1 = y - 1
        t2 = -t1
        t3 = 1 - yhat
        return (
            (t2 / np.where(t2 == 0, 1, t3) * inv_n - t0 / np.where(y == 0, 1, yhat), t0 / yhat /
            yhat + t1 / t3 / t3 * -inv_n)
        )
    """
    out, out1, yhat, y = _prepare('my_bce_grad_hess', out, yhat, y, forms=('grad', 'hess'))
    weight, inv_n = _weighting('my_bce_grad_hess', weight, out.shape, count, False)
    b1, b3, b4 = _scratch(out.shape, 3, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    np.multiply(y, inv_n, out=out1)  # t0
    np.subtract(y, 1, out=b1)  # t1
    np.negative(b1, out=out)  # t2
    np.subtract(1, yhat, out=b3)  # t3
    np.equal(out, 0, out=m0)
    np.copyto(b4, b3)
    np.copyto(b4, 1, where=m0)
    np.divide(out, b4, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    np.equal(y, 0, out=m0)
    np.copyto(b4, yhat)
    np.copyto(b4, 1, where=m0)
    np.divide(out1, b4, out=b4)
    np.subtract(out, b4, out=out)
    np.divide(out1, yhat, out=out1)
    np.divide(out1, yhat, out=out1)
    np.divide(b1, b3, out=b1)
    np.divide(b1, b3, out=b1)
    np.multiply(b1, -inv_n, out=b1)
    np.add(out1, b1, out=out1)
    if weight is not None:
        np.multiply(out, weight, out=out)
        np.multiply(out1, weight, out=out1)
    return out, out1


def my_bce_per_sample(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the loss per element, before the mean (times ``weight`` if given).

    l = -xlogy(y, yhat) - xlogy(1 - y, 1 - yhat)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        t0 = 1 - y
        return (
            -(t0 * np.log(np.where(t0 == 0, 1, 1 - yhat)) + y * np.log(np.where(y == 0, 1, yhat)))
        )
    """
    out, yhat, y = _prepare('my_bce_per_sample', out, yhat, y)
    weight = _weights('my_bce_per_sample', weight, out.shape, False)
    b1, = _scratch(out.shape, 1, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    np.subtract(1, y, out=out)  # t0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.equal(out, 0, out=m0)
        np.subtract(1, yhat, out=b1)
    np.copyto(b1, 1, where=m0)
    np.log(b1, out=b1)
    np.multiply(out, b1, out=out)
    np.equal(y, 0, out=m0)
    np.copyto(b1, yhat)
    np.copyto(b1, 1, where=m0)
    np.log(b1, out=b1)
    np.multiply(y, b1, out=b1)
    np.add(out, b1, out=out)
    np.negative(out, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out
