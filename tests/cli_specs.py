"""A small spec file shared by the CLI tests (and the generate --backend test)."""

SPECS = '''\
"""Two kernels for the CLI tests."""

import sympy as sp
import symgrad as sg


@sg.loss
def cauchy(yhat, y, c=1.0):
    """Cauchy loss."""
    r = (yhat - y) / c
    return c**2 / 2 * sp.log(1 + r**2)


@sg.activation
def swish(x, beta=1.0):
    """x * sigmoid(beta * x)."""
    return x / (1 + sp.exp(-beta * x))
'''
