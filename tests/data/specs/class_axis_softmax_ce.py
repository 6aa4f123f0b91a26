"""Rule: class sums become row reductions; logsumexp is shifted by the row max."""

import symgrad as sg


@sg.loss
def my_softmax_ce(yhat, y):
    """Cross-entropy of logits against probability targets."""
    return -sg.axis_sum(y * (yhat - sg.logsumexp(yhat)))


# output
def my_softmax_ce(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
) -> float:
    r"""Evaluate my_softmax_ce(yhat, y), the mean over samples.

    Cross-entropy of logits against probability targets.

    L = mean over samples of -axis_sum(y*(yhat - logsumexp(yhat)))

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        inv_n = 1 / (np.size(yhat) / np.shape(yhat)[-1])
        t0 = np.max(yhat, axis=-1, keepdims=True)
        return (
            float((-np.vdot(y, yhat) + np.vdot(t0 + np.log(np.einsum('...i->...', np.exp(t0 * -1 +
            yhat))[..., None]), np.einsum('...i->...', y)[..., None])) * inv_n)
        )
    """
    b0, yhat, y = _prepare('my_softmax_ce', None, yhat, y, classes=True)
    weight, inv_n = _weighting('my_softmax_ce', weight, b0.shape, count, True)
    r0, r1 = _scratch(b0.shape[:-1] + (1,), 2, b0.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)  # t0
    value0 = -_total(weight, y, yhat)
    np.multiply(r0, -1, out=r1)
    np.add(r1, yhat, out=b0)
    np.exp(b0, out=b0)
    np.einsum('...i->...', b0, out=r1[..., 0])
    np.log(r1, out=r1)
    np.add(r0, r1, out=r0)
    np.einsum('...i->...', y, out=r1[..., 0])
    value0 += _total(weight, r0, r1)
    value0 *= inv_n
    return float(value0)


def my_softmax_ce_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return dL/dyhat of the mean loss (the 1/n is included).

    dL/dyhat = (-y + exp(yhat - logsumexp(yhat))*axis_sum(y)) / n_samples

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / (np.size(yhat) / np.shape(yhat)[-1])
        t0 = np.exp(np.max(yhat, axis=-1, keepdims=True) * -1 + yhat)
        return (
            (t0 * (np.einsum('...i->...', y)[..., None] / np.einsum('...i->...', t0)[..., None]) -
            y) * inv_n
        )
    """
    out, yhat, y = _prepare('my_softmax_ce_grad', out, yhat, y, classes=True)
    weight, inv_n = _weighting('my_softmax_ce_grad', weight, out.shape, count, True)
    r0, r1 = _scratch(out.shape[:-1] + (1,), 2, out.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)
    np.multiply(r0, -1, out=r0)
    np.add(r0, yhat, out=out)
    np.exp(out, out=out)  # t0
    np.einsum('...i->...', y, out=r0[..., 0])
    np.einsum('...i->...', out, out=r1[..., 0])
    np.divide(r0, r1, out=r0)
    np.multiply(out, r0, out=out)
    np.subtract(out, y, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_softmax_ce_value_and_grad(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    r"""Return the mean loss and its gradient, computed with shared work.

    L = mean over samples of -axis_sum(y*(yhat - logsumexp(yhat)))
    dL/dyhat = (-y + exp(yhat - logsumexp(yhat))*axis_sum(y)) / n_samples

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / (np.size(yhat) / np.shape(yhat)[-1])
        t1 = np.max(yhat, axis=-1, keepdims=True)
        t2 = np.exp(t1 * -1 + yhat)
        t0 = np.einsum('...i->...', y)[..., None]
        t3 = np.einsum('...i->...', t2)[..., None]
        return (
            (float((-np.vdot(y, yhat) + np.vdot(t0, t1 + np.log(t3))) * inv_n), (t2 * (t0 / t3) - y)
            * inv_n)
        )
    """
    out, yhat, y = _prepare('my_softmax_ce_value_and_grad', out, yhat, y, classes=True)
    weight, inv_n = _weighting('my_softmax_ce_value_and_grad', weight, out.shape, count, True)
    r0, r1, r2, r3 = _scratch(out.shape[:-1] + (1,), 4, out.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)  # t1
    np.multiply(r0, -1, out=r1)
    np.add(r1, yhat, out=out)
    np.exp(out, out=out)  # t2
    value0 = -_total(weight, y, yhat)
    np.einsum('...i->...', y, out=r1[..., 0])  # t0
    np.einsum('...i->...', out, out=r2[..., 0])  # t3
    np.log(r2, out=r3)
    np.add(r0, r3, out=r0)
    value0 += _total(weight, r1, r0)
    value0 *= inv_n
    np.divide(r1, r2, out=r1)
    np.multiply(out, r1, out=out)
    np.subtract(out, y, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return float(value0), out


def my_softmax_ce_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the diagonal of d2L/dyhat2 (per sample; my_softmax_ce_hvp applies the whole
    per-sample Hessian).

    diag d2L/dyhat2 = ((exp(yhat - logsumexp(yhat)) - exp(2*yhat -
        2*logsumexp(yhat)))*axis_sum(y)) / n_samples

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / (np.size(yhat) / np.shape(yhat)[-1])
        t0 = np.max(yhat, axis=-1, keepdims=True)
        t1 = np.exp(t0 * -1 + yhat)
        t2 = np.einsum('...i->...', t1)[..., None]
        return (
            (t1 * (1.0 / t2) + np.exp(t0 * -2 + yhat * 2) * (-1 / t2 ** 2)) *
            (np.einsum('...i->...', y)[..., None] * inv_n)
        )
    """
    out, yhat, y = _prepare('my_softmax_ce_hess', out, yhat, y, classes=True)
    weight, inv_n = _weighting('my_softmax_ce_hess', weight, out.shape, count, True)
    b1, = _scratch(out.shape, 1, out.dtype)
    r0, r1, r2, r3 = _scratch(out.shape[:-1] + (1,), 4, out.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)  # t0
    np.multiply(r0, -1, out=r1)
    np.add(r1, yhat, out=out)
    np.exp(out, out=out)  # t1
    np.einsum('...i->...', y, out=r1[..., 0])
    np.multiply(r1, inv_n, out=r1)
    np.einsum('...i->...', out, out=r2[..., 0])  # t2
    np.divide(1.0, r2, out=r3)
    np.multiply(out, r3, out=out)
    np.square(r2, out=r2)
    np.divide(-1, r2, out=r2)
    np.multiply(r0, -2, out=r0)
    np.multiply(yhat, 2, out=b1)
    np.add(r0, b1, out=b1)
    np.exp(b1, out=b1)
    np.multiply(b1, r2, out=b1)
    np.add(out, b1, out=out)
    np.multiply(out, r1, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_softmax_ce_grad_hess(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the gradient and Hessian diagonal, computed with shared work.

    dL/dyhat = (-y + exp(yhat - logsumexp(yhat))*axis_sum(y)) / n_samples
    diag d2L/dyhat2 = ((exp(yhat - logsumexp(yhat)) - exp(2*yhat -
        2*logsumexp(yhat)))*axis_sum(y)) / n_samples

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / (np.size(yhat) / np.shape(yhat)[-1])
        t1 = np.max(yhat, axis=-1, keepdims=True)
        t2 = np.exp(t1 * -1 + yhat)
        t3 = np.einsum('...i->...', t2)[..., None]
        t4 = 1.0 / t3
        t0 = np.einsum('...i->...', y)[..., None]
        return (
            ((t2 * (t0 * t4) - y) * inv_n, (t2 * t4 + np.exp(t1 * -2 + yhat * 2) * (-1 / t3 ** 2)) *
            (t0 * inv_n))
        )
    """
    out, out1, yhat, y = (
        _prepare('my_softmax_ce_grad_hess', out, yhat, y, classes=True, forms=('grad', 'hess'))
    )
    weight, inv_n = _weighting('my_softmax_ce_grad_hess', weight, out.shape, count, True)
    b2, = _scratch(out.shape, 1, out.dtype)
    r0, r1, r2, r3, r4 = _scratch(out.shape[:-1] + (1,), 5, out.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)  # t1
    np.multiply(r0, -1, out=r1)
    np.add(r1, yhat, out=out1)
    np.exp(out1, out=out1)  # t2
    np.einsum('...i->...', out1, out=r1[..., 0])  # t3
    np.divide(1.0, r1, out=r2)  # t4
    np.einsum('...i->...', y, out=r3[..., 0])  # t0
    np.multiply(r3, r2, out=r4)
    np.multiply(out1, r4, out=out)
    np.subtract(out, y, out=out)
    if inv_n != 1:
        np.multiply(out, inv_n, out=out)
    np.multiply(r3, inv_n, out=r3)
    np.multiply(out1, r2, out=out1)
    np.square(r1, out=r1)
    np.divide(-1, r1, out=r1)
    np.multiply(r0, -2, out=r0)
    np.multiply(yhat, 2, out=b2)
    np.add(r0, b2, out=b2)
    np.exp(b2, out=b2)
    np.multiply(b2, r1, out=b2)
    np.add(out1, b2, out=out1)
    np.multiply(out1, r3, out=out1)
    if weight is not None:
        np.multiply(out, weight, out=out)
        np.multiply(out1, weight, out=out1)
    return out, out1


def my_softmax_ce_hvp(
    yhat: np.ndarray,
    y: np.ndarray,
    vector: np.ndarray,
    *,
    count: float | None = None,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the Hessian of the mean loss in yhat times ``vector``, per sample.

    Hv = ((vector - axis_sum(vector*exp(yhat - logsumexp(yhat))))*exp(yhat -
        logsumexp(yhat))*axis_sum(y)) / n_samples

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        inv_n = 1 / (np.size(yhat) / np.shape(yhat)[-1])
        t0 = np.exp(np.max(yhat, axis=-1, keepdims=True) * -1 + yhat)
        t1 = t0 * (1.0 / np.einsum('...i->...', t0)[..., None])
        return (
            t1 * (np.einsum('...i,...i->...', t1, vector)[..., None] * -1 + vector) *
            (np.einsum('...i->...', y)[..., None] * inv_n)
        )
    """
    out, yhat, y, vector = _prepare('my_softmax_ce_hvp', out, yhat, y, vector, classes=True)
    weight, inv_n = _weighting('my_softmax_ce_hvp', weight, out.shape, count, True)
    b1, = _scratch(out.shape, 1, out.dtype)
    r0, r1 = _scratch(out.shape[:-1] + (1,), 2, out.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)
    np.multiply(r0, -1, out=r0)
    np.add(r0, yhat, out=out)
    np.exp(out, out=out)  # t0
    np.einsum('...i->...', out, out=r0[..., 0])
    np.divide(1.0, r0, out=r0)
    np.multiply(out, r0, out=out)  # t1
    np.einsum('...i->...', y, out=r0[..., 0])
    np.multiply(r0, inv_n, out=r0)
    np.einsum('...i,...i->...', out, vector, out=r1[..., 0])
    np.multiply(r1, -1, out=r1)
    np.add(r1, vector, out=b1)
    np.multiply(out, b1, out=out)
    np.multiply(out, r0, out=out)
    if weight is not None:
        np.multiply(out, weight, out=out)
    return out


def my_softmax_ce_per_sample(
    yhat: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the loss per sample, before the mean (times ``weight`` if given).

    l = -axis_sum(y*(yhat - logsumexp(yhat)))

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        t0 = np.max(yhat, axis=-1, keepdims=True)
        return (
            (np.einsum('...i,...i->...', y, yhat)[..., None] * -1 + (t0 +
            np.log(np.einsum('...i->...', np.exp(t0 * -1 + yhat))[..., None])) *
            np.einsum('...i->...', y)[..., None])[..., 0]
        )
    """
    b0, yhat, y = _prepare('my_softmax_ce_per_sample', None, yhat, y, classes=True)
    out, rows = _row_out('my_softmax_ce_per_sample', out, b0.shape, b0.dtype)
    weight = _weights('my_softmax_ce_per_sample', weight, b0.shape, True)
    r0, r2 = _scratch(b0.shape[:-1] + (1,), 2, b0.dtype)
    np.max(yhat, axis=-1, keepdims=True, out=r0)  # t0
    np.einsum('...i,...i->...', y, yhat, out=rows[..., 0])
    np.multiply(rows, -1, out=rows)
    np.multiply(r0, -1, out=r2)
    np.add(r2, yhat, out=b0)
    np.exp(b0, out=b0)
    np.einsum('...i->...', b0, out=r2[..., 0])
    np.log(r2, out=r2)
    np.add(r0, r2, out=r0)
    np.einsum('...i->...', y, out=r2[..., 0])
    np.multiply(r0, r2, out=r0)
    np.add(rows, r0, out=rows)
    if weight is not None:
        np.multiply(rows, weight, out=rows)
    return out
