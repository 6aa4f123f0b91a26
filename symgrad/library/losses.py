"""Built-in losses with torch.nn.functional's definitions and defaults (reduction = mean)."""

import sympy as sp

from symgrad.compiler.primitives import N_CLASSES, axis_sum, logsumexp, xlogy
from symgrad.compiler.spec import loss


@loss(convex=True)
def mse(yhat, y):
    """Mean squared error."""
    return (yhat - y) ** 2


@loss(convex=True)
def l1(yhat, y):
    """Mean absolute error; |r|'(0) = 0."""
    return sp.Abs(yhat - y)


@loss(domains={"delta": "positive"}, convex=True)
def huber(yhat, y, delta=1.0):
    """Quadratic within delta of the target, linear beyond (torch.nn.functional.huber_loss)."""
    r = yhat - y
    return sp.Piecewise((r**2 / 2, sp.Abs(r) < delta), (delta * (sp.Abs(r) - delta / 2), True))


@loss(domains={"beta": "positive"}, convex=True)
def smooth_l1(yhat, y, beta=1.0):
    """Huber scaled by 1/beta (torch.nn.functional.smooth_l1_loss)."""
    r = yhat - y
    return sp.Piecewise((r**2 / (2 * beta), sp.Abs(r) < beta), (sp.Abs(r) - beta / 2, True))


@loss(convex=True)
def log_cosh(yhat, y):
    """log(cosh(yhat - y)), evaluated without overflow."""
    return sp.log(sp.cosh(yhat - y))


@loss(domains={"tau": "unit"}, convex=True)
def pinball(yhat, y, tau=0.5):
    """Quantile loss: tau * r for r >= 0, (tau - 1) * r otherwise, with r = y - yhat."""
    r = y - yhat
    return sp.Piecewise((tau * r, r >= 0), ((tau - 1) * r, True))


@loss(domains={"yhat": "open_unit", "y": "unit"}, convex=True)
def binary_cross_entropy(yhat, y):
    """-(y log p + (1 - y) log(1 - p)) on probabilities p = yhat (0 log 0 = 0)."""
    return -(xlogy(y, yhat) + xlogy(1 - y, 1 - yhat))


@loss(domains={"y": "unit"}, link="sigmoid", convex=True)
def binary_cross_entropy_with_logits(yhat, y):
    """Binary cross-entropy on logits: the plain formula, stabilized by symgrad."""
    p = 1 / (1 + sp.exp(-yhat))
    return -(xlogy(y, p) + xlogy(1 - y, 1 - p))


@loss(domains={"y": "sign"}, convex=True)
def hinge(yhat, y):
    """max(0, 1 - y * yhat) for labels y in {-1, +1}."""
    return sp.Max(0, 1 - y * yhat)


@loss(domains={"y": "sign"}, convex=True)
def squared_hinge(yhat, y):
    """max(0, 1 - y * yhat)**2 for labels y in {-1, +1}."""
    return sp.Max(0, 1 - y * yhat) ** 2


@loss(domains={"y": "nonnegative"}, convex=True)
def poisson_nll(yhat, y):
    """exp(yhat) - y * yhat with yhat the log-rate (torch: log_input=True, full=False)."""
    return sp.exp(yhat) - y * yhat


@loss(domains={"y": "simplex", "label_smoothing": "unit"}, link="softmax", convex=True)
def softmax_cross_entropy(yhat, y, label_smoothing=0.0):
    """Cross-entropy of logits against probability targets (torch.nn.functional.cross_entropy)."""
    target = y * (1 - label_smoothing) + label_smoothing / N_CLASSES
    return -axis_sum(target * (yhat - logsumexp(yhat)))


@loss(domains={"yhat": "simplex", "y": "simplex"}, convex=True)
def categorical_cross_entropy(yhat, y):
    """-sum(y log p) over classes, on probabilities p = yhat."""
    return -axis_sum(xlogy(y, yhat))


@loss(domains={"yhat": "log_simplex", "y": "simplex"}, convex=True)
def kl_div(yhat, y):
    """sum(y (log y - yhat)) over classes with yhat = log q (torch: reduction='batchmean')."""
    return axis_sum(xlogy(y, y) - y * yhat)


@loss(domains={"y": "unit", "alpha": "unit", "gamma": "nonnegative"}, link="sigmoid", convex=False)
def sigmoid_focal(yhat, y, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss on logits, averaged."""
    p = 1 / (1 + sp.exp(-yhat))
    ce = -(xlogy(y, p) + xlogy(1 - y, 1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return alpha_t * ce * (1 - p_t) ** gamma


SPECS = (
    mse,
    l1,
    huber,
    smooth_l1,
    log_cosh,
    pinball,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    hinge,
    squared_hinge,
    poisson_nll,
    softmax_cross_entropy,
    categorical_cross_entropy,
    kl_div,
    sigmoid_focal,
)
