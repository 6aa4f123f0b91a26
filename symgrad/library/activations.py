"""Built-in activations, defined as torch.nn.functional defines them."""

import sympy as sp

from symgrad.compiler.primitives import softmax as _softmax
from symgrad.compiler.spec import activation

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@activation
def identity(x):
    """f(x) = x."""
    return x


@activation
def sigmoid(x):
    """Logistic function."""
    return 1 / (1 + sp.exp(-x))


@activation
def tanh(x):
    """Hyperbolic tangent."""
    return sp.tanh(x)


@activation
def relu(x):
    """max(x, 0); relu'(0) = 0 as in PyTorch."""
    return sp.Max(x, 0)


@activation
def leaky_relu(x, alpha=0.01):
    """x for x > 0, alpha * x otherwise (torch's negative_slope)."""
    return sp.Piecewise((x, x > 0), (alpha * x, True))


@activation
def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True))


@activation
def selu(x):
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return SELU_SCALE * sp.Piecewise((x, x > 0), (SELU_ALPHA * (sp.exp(x) - 1), True))


@activation(domains={"beta": "positive"})
def softplus(x, beta=1.0):
    """log(1 + exp(beta * x)) / beta."""
    return sp.log(1 + sp.exp(beta * x)) / beta


@activation
def silu(x):
    """x * sigmoid(x), also called swish."""
    return x / (1 + sp.exp(-x))


@activation
def gelu(x):
    """x * Phi(x) with the exact normal CDF (torch's approximate='none')."""
    return x / 2 * (1 + sp.erf(x / sp.sqrt(2)))


@activation
def gelu_tanh(x):
    """GELU with torch's approximate='tanh'."""
    return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 1000000) * x**3)))


@activation
def mish(x):
    """x * tanh(softplus(x))."""
    return x * sp.tanh(sp.log(1 + sp.exp(x)))


@activation
def softsign(x):
    """x / (1 + |x|)."""
    return x / (1 + sp.Abs(x))


@activation(link="softmax")
def softmax(x):
    """exp(x) / sum(exp(x)) over the last axis, shifted by the max so it never overflows."""
    return _softmax(x)


SPECS = (
    identity,
    sigmoid,
    tanh,
    relu,
    leaky_relu,
    elu,
    selu,
    softplus,
    silu,
    gelu,
    gelu_tanh,
    mish,
    softsign,
    softmax,
)
