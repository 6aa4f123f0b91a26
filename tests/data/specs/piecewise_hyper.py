"""Rule: a Piecewise with a hyper-parameter in its condition selects, never multiplies."""

import sympy as sp

import symgrad as sg


@sg.loss
def my_huber(yhat, y, delta=1.0):
    """Huber with a user-chosen delta."""
    r = yhat - y
    return sp.Piecewise((r**2 / 2, sp.Abs(r) <= delta), (delta * (sp.Abs(r) - delta / 2), True))


# output
def my_huber(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    delta: float = 1.0,
    count: float | None = None,
    weight: np.ndarray | None = None,
) -> float:
    r"""Evaluate my_huber(yhat, y), the mean over elements.

    Huber with a user-chosen delta.

    L = mean over elements of Piecewise(((-y + yhat)**2/2, delta >= Abs(y - yhat)),
        (delta*(-delta/2 + Abs(y - yhat)), True))

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y - yhat
        t1 = np.abs(t0)
        return (
            float(np.sum(np.where(delta >= t1, t0 ** 2 * 0.5, (t1 - 0.5 * delta) * delta)) * inv_n)
        )
    """
    b0, yhat, y = _prepare('my_huber', None, yhat, y)
    delta = _hyper('my_huber', 'delta', delta, 'real')
    weight, inv_n = _weighting('my_huber', weight, b0.shape, count, False)
    b1, = _scratch(b0.shape, 1, b0.dtype)
    m0, = _scratch(b0.shape, 1, bool)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=b0)  # t0
        np.abs(b0, out=b1)  # t1
        np.greater_equal(delta, b1, out=m0)
        np.square(b0, out=b0)
        np.multiply(b0, 0.5, out=b0)
        np.subtract(b1, 0.5*delta, out=b1)
        if delta != 1:
            np.multiply(b1, delta, out=b1)
    np.copyto(b1, b0, where=m0)
    value0 = _total(weight, b1)
    value0 *= inv_n
    return float(value0)


def my_huber_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    delta: float = 1.0,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return dL/dyhat of the mean loss (the 1/n is included).

    dL/dyhat = (-Min(delta, Max(-delta, y - yhat))) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return np.clip(y - yhat, -delta, delta) * -inv_n
    """
    out, yhat, y = _prepare('my_huber_grad', out, yhat, y)
    delta = _hyper('my_huber_grad', 'delta', delta, 'real')
    weight, inv_n = _weighting('my_huber_grad', weight, out.shape, count, False)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=out)
    np.clip(out, -delta, delta, out=out)
    np.multiply(out, -inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_huber_value_and_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    delta: float = 1.0,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    r"""Return the mean loss and its gradient, computed with shared work.

    L = mean over elements of Piecewise(((-y + yhat)**2/2, delta >= Abs(y - yhat)),
        (delta*(-delta/2 + Abs(y - yhat)), True))
    dL/dyhat = (-Min(delta, Max(-delta, y - yhat))) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y - yhat
        t1 = np.abs(t0)
        return (
            (float(np.sum(np.where(delta >= t1, t0 ** 2 * 0.5, (t1 - 0.5 * delta) * delta)) *
            inv_n), np.clip(t0, -delta, delta) * -inv_n)
        )
    """
    out, yhat, y = _prepare('my_huber_value_and_grad', out, yhat, y)
    delta = _hyper('my_huber_value_and_grad', 'delta', delta, 'real')
    weight, inv_n = _weighting('my_huber_value_and_grad', weight, out.shape, count, False)
    b1, b2 = _scratch(out.shape, 2, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=out)  # t0
        np.abs(out, out=b1)  # t1
        np.greater_equal(delta, b1, out=m0)
        np.square(out, out=b2)
        np.multiply(b2, 0.5, out=b2)
        np.subtract(b1, 0.5*delta, out=b1)
        if delta != 1:
            np.multiply(b1, delta, out=b1)
    np.copyto(b1, b2, where=m0)
    value0 = _total(weight, b1)
    value0 *= inv_n
    np.clip(out, -delta, delta, out=out)
    np.multiply(out, -inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return float(value0), out


def my_huber_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    delta: float = 1.0,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the diagonal of d2L/dyhat2 (the loss is separable, so that is all of it).

    diag d2L/dyhat2 = (Piecewise((1, delta >= Abs(y - yhat)), (0, True))) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        return (delta >= np.abs(y - yhat)) * 1.0 * inv_n
    """
    out, yhat, y = _prepare('my_huber_hess', out, yhat, y)
    delta = _hyper('my_huber_hess', 'delta', delta, 'real')
    weight, inv_n = _weighting('my_huber_hess', weight, out.shape, count, False)
    np.subtract(y, yhat, out=out)
    np.abs(out, out=out)
    np.greater_equal(delta, out, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_huber_grad_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    delta: float = 1.0,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the gradient and Hessian diagonal, computed with shared work.

    dL/dyhat = (-Min(delta, Max(-delta, y - yhat))) / n_elements
    diag d2L/dyhat2 = (Piecewise((1, delta >= Abs(y - yhat)), (0, True))) / n_elements

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / np.size(yhat)
        t0 = y - yhat
        return (np.clip(t0, -delta, delta) * -inv_n, (delta >= np.abs(t0)) * 1.0 * inv_n)
    """
    out, out1, yhat, y = _prepare('my_huber_grad_hess', out, yhat, y, forms=('grad', 'hess'))
    delta = _hyper('my_huber_grad_hess', 'delta', delta, 'real')
    weight, inv_n = _weighting('my_huber_grad_hess', weight, out.shape, count, False)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=out1)  # t0
    np.clip(out1, -delta, delta, out=out)
    np.multiply(out, -inv_n, out=out)
    np.abs(out1, out=out1)
    np.greater_equal(delta, out1, out=out1)
    if inv_n != 1:
        np.multiply(out1, inv_n, out=out1)
    if weight is not None:
        np.multiply(out, weight, out=out)
        np.multiply(out1, weight, out=out1)
    return out, out1


def my_huber_per_sample(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    delta: float = 1.0,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the loss per element, before the mean (times ``weight`` if given).

    l = Piecewise(((-y + yhat)**2/2, delta >= Abs(y - yhat)), (delta*(-delta/2 + Abs(y - yhat)),
        True))

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        t0 = y - yhat
        t1 = np.abs(t0)
        return np.where(delta >= t1, t0 ** 2 * 0.5, (t1 - 0.5 * delta) * delta)
    """
    out, yhat, y = _prepare('my_huber_per_sample', out, yhat, y)
    delta = _hyper('my_huber_per_sample', 'delta', delta, 'real')
    weight = _weights('my_huber_per_sample', weight, out.shape, False)
    b0, = _scratch(out.shape, 1, out.dtype)
    m0, = _scratch(out.shape, 1, bool)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(y, yhat, out=b0)  # t0
        np.abs(b0, out=out)  # t1
        np.greater_equal(delta, out, out=m0)
        np.square(b0, out=b0)
        np.multiply(b0, 0.5, out=b0)
        np.subtract(out, 0.5*delta, out=out)
        if delta != 1:
            np.multiply(out, delta, out=out)
    np.copyto(out, b0, where=m0)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out
