"""Central finite differences in float64, with a kink detector, for gradient checks."""

from __future__ import annotations

import numpy as np


def fd_grad(f, x: np.ndarray, rel_step: float = 1e-6):
    """Return (central, left, right) difference quotients of scalar ``f`` at every element."""
    x = np.asarray(x, dtype=float)
    central = np.empty_like(x)
    left = np.empty_like(x)
    right = np.empty_like(x)
    f0 = f(x)
    for idx in np.ndindex(x.shape):
        h = rel_step * max(1.0, abs(x[idx]))
        xp = x.copy()
        xm = x.copy()
        xp[idx] += h
        xm[idx] -= h
        fp, fm = f(xp), f(xm)
        central[idx] = (fp - fm) / (2 * h)
        left[idx] = (f0 - fm) / h
        right[idx] = (fp - f0) / h
    return central, left, right


def check_gradient(
    f, grad, x, rtol: float = 2e-5, atol: float = 1e-8, rel_step: float = 1e-6
) -> float:
    """Assert ``grad`` matches finite differences of ``f`` away from kinks; return the largest
    error relative to max(1, |slope|).

    Where the one-sided quotients disagree the point is a kink: there the emitted value must be
    a subgradient (between the one-sided slopes), which is what PyTorch's conventions give.
    """
    g = np.asarray(grad, dtype=float)
    central, left, right = fd_grad(f, x, rel_step)
    fine = fd_grad(f, x, rel_step / 4)[0]
    scale = np.maximum(1.0, np.abs(central))
    # a jump in f (e.g. sign(x) at 0 when checking |x|'') makes the quotient grow like 1/h
    jump = np.abs(fine - central) > 1e-2 * scale
    kink = (np.abs(left - right) > 1e-3 * scale) & ~jump
    smooth = ~kink & ~jump
    assert np.all(np.isfinite(g)), "emitted derivative is not finite"
    assert np.all(np.isfinite(central)), "finite differences left the domain: use a smaller step"
    err = np.abs(g - central)
    bad = smooth & (err > atol + rtol * scale)
    assert not bad.any(), (
        f"gradient mismatch at x={np.asarray(x)[bad][:5]}: emitted {g[bad][:5]}, fd {central[bad][:5]}"
    )
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    tol = 1e-6 * scale
    # near a kink (within one step) the side the point lies on gives the one-sided slope
    one_sided = (np.abs(g - left) <= 1e-4 * scale) | (np.abs(g - right) <= 1e-4 * scale)
    not_sub = kink & ((g < lo - tol) | (g > hi + tol)) & ~one_sided
    assert not not_sub.any(), f"not a subgradient at {np.asarray(x)[not_sub][:5]}"
    rel = err / scale
    return float(rel[smooth].max()) if smooth.any() else 0.0
