"""Built-in regularizers, summed over all weights."""

import sympy as sp

from symgrad.compiler.spec import regularizer


@regularizer(domains={"lam": "nonnegative"}, convex=True)
def l1(w, lam=1e-2):
    """lam * sum(|w|)."""
    return lam * sp.Abs(w)


@regularizer(domains={"lam": "nonnegative"}, convex=True)
def l2(w, lam=1e-2):
    """lam / 2 * sum(w**2), so its gradient is lam * w, like weight decay."""
    return lam / 2 * w**2


@regularizer(domains={"lam": "nonnegative", "l1_ratio": "unit"}, convex=True)
def elastic_net(w, lam=1e-2, l1_ratio=0.5):
    """lam * (l1_ratio * |w| + (1 - l1_ratio) / 2 * w**2), as scikit-learn defines it."""
    return lam * (l1_ratio * sp.Abs(w) + (1 - l1_ratio) / 2 * w**2)


SPECS = (l1, l2, elastic_net)
