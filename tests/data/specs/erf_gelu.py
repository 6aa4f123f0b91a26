"""Rule: erf is evaluated by the emitted plain-numpy polynomial helper."""

import sympy as sp

import symgrad as sg


@sg.activation
def my_gelu(x):
    """x * Phi(x)."""
    return x * (1 + sp.erf(x / sp.sqrt(2))) / 2


# output
def my_gelu(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Evaluate my_gelu element-wise.

    x * Phi(x).

    f = x*(erf(sqrt(2)*x/2) + 1)/2

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return x * (0.5 * _erfc(-0.7071067811865476 * x))
    """
    out, x = _prepare('my_gelu', out, x)
    np.copyto(out, 0.5*_erfc(-0.7071067811865476*x))
    np.multiply(x, out, out=out)
    return out


def my_gelu_grad(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return dmy_gelu/dx element-wise.

    f = x*(erf(sqrt(2)*x/2) + 1)/2
    df/dx = sqrt(2)*x*exp(-x**2/2)/(2*sqrt(pi)) + ncdf(x)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        return x * np.exp(x ** 2 * -0.5) * 0.3989422804014327 + 0.5 * _erfc(-0.7071067811865476 * x)
    """
    out, x = _prepare('my_gelu_grad', out, x)
    b1, = _scratch(out.shape, 1, out.dtype)
    np.square(x, out=out)
    np.multiply(out, -0.5, out=out)
    np.exp(out, out=out)
    np.multiply(x, out, out=out)
    np.multiply(out, 0.3989422804014327, out=out)
    np.copyto(b1, 0.5*_erfc(-0.7071067811865476*x))
    np.add(out, b1, out=out)
    return out


def my_gelu_hess(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""Return d2my_gelu/dx2 element-wise.

    d2f/dx2 = sqrt(2)*(1 - Min(40, Max(-40, x))**2/2)*exp(-Min(40, Max(-40, x))**2/2)/sqrt(pi)

    As plain numpy (the body runs this one ufunc at a time, into ``out`` and reused buffers):

        t0 = np.clip(x, -40, 40) ** 2 * 0.5
        return (1 - t0) * np.exp(-t0) * 0.7978845608028654
    """
    out, x = _prepare('my_gelu_hess', out, x)
    b0, = _scratch(out.shape, 1, out.dtype)
    np.clip(x, -40, 40, out=b0)
    np.square(b0, out=b0)
    np.multiply(b0, 0.5, out=b0)  # t0
    np.subtract(1, b0, out=out)
    np.negative(b0, out=b0)
    np.exp(b0, out=b0)
    np.multiply(out, b0, out=out)
    np.multiply(out, 0.7978845608028654, out=out)
    return out
