"""Rule: integer powers are products or np.square; a regularizer is summed."""

import sympy as sp

import symgrad as sg


@sg.regularizer
def quartic(w, lam=0.1):
    """lam * w**4 + |w|**3."""
    return lam * w**4 + sp.Abs(w) ** 3


# output
def quartic(w: np.ndarray, *, lam: float = 0.1) -> float:
    r"""Evaluate quartic, summed over all elements.

    lam * w**4 + |w|**3.

    R = sum(lam*w**4 + w**2*Abs(w))

    As plain numpy (the body runs this one ufunc at a time, into reused buffers):

        return float(lam * np.sum((w ** 2) ** 2) + np.vdot(w ** 2, np.abs(w)))
    """
    b0, w = _prepare('quartic', None, w)
    lam = _hyper('quartic', 'lam', lam, 'real')
    b1, = _scratch(b0.shape, 1, b0.dtype)
    np.square(w, out=b0)
    np.square(b0, out=b0)
    value0 = lam*np.sum(b0)
    np.square(w, out=b0)
    np.abs(w, out=b1)
    value0 += np.vdot(b0, b1)
    return float(value0)


def quartic_grad(w: np.ndarray, *, lam: float = 0.1, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return dR/dw.

    dR/dw = w*(4*lam*w**2 + w*sign(w) + 2*Abs(w))

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return w * (np.abs(w) * 2 + w * np.sign(w) + w ** 2 * (4 * lam))
    """
    out, w = _prepare('quartic_grad', out, w)
    lam = _hyper('quartic_grad', 'lam', lam, 'real')
    b1, = _scratch(out.shape, 1, out.dtype)
    np.abs(w, out=out)
    np.multiply(out, 2, out=out)
    np.sign(w, out=b1)
    np.multiply(w, b1, out=b1)
    np.add(out, b1, out=out)
    np.square(w, out=b1)
    np.multiply(b1, 4*lam, out=b1)
    np.add(out, b1, out=out)
    np.multiply(w, out, out=out)
    return out


def quartic_hess(w: np.ndarray, *, lam: float = 0.1, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return the diagonal of d2R/dw2 (R is separable, so that is all of it).

    d2R/dw2 = 12*lam*w**2 + 4*w*sign(w) + 2*Abs(w)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return np.abs(w) * 2 + w * np.sign(w) * 4 + w ** 2 * (12 * lam)
    """
    out, w = _prepare('quartic_hess', out, w)
    lam = _hyper('quartic_hess', 'lam', lam, 'real')
    b1, = _scratch(out.shape, 1, out.dtype)
    np.abs(w, out=out)
    np.multiply(out, 2, out=out)
    np.sign(w, out=b1)
    np.multiply(w, b1, out=b1)
    np.multiply(b1, 4, out=b1)
    np.add(out, b1, out=out)
    np.square(w, out=b1)
    np.multiply(b1, 12*lam, out=b1)
    np.add(out, b1, out=out)
    return out
