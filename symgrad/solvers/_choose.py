"""The one solver policy: which solver fits a model, from the facts in the ``KERNELS`` table."""

from __future__ import annotations

from typing import Any

import numpy as np

#: parameters above which "auto" avoids the dense Hessian of Newton's method
DENSE_LIMIT = 2000


def choose(
    model: Any,
    X: Any,
    y: Any,
    requested: str = "auto",
    *,
    params: Any = None,
    first_order: bool = True,
) -> str:
    """Return the solver for ``model`` on ``X, y``: ``requested``, or for ``"auto"`` one that
    suits the model, read from its kernels' ``KERNELS`` facts (never from a Hessian):

    * a network with hidden layers (not linear in its parameters): ``"adam"`` (or, when
      ``first_order=False`` as on a cluster, ``"lbfgs"``);
    * more than :data:`DENSE_LIMIT` parameters, or a kinked loss or regularizer (``l1``,
      ``hinge``, ``huber``, ...: zero curvature on whole regions): ``"lbfgs"``;
    * a smooth loss and regularizer both declared convex: ``"newton"``;
    * otherwise (non-convex, or unknown like a user's spec): ``"damped_newton"``
      (Levenberg-Marquardt, safe where curvature is flat or negative).

    ``params`` (the start) saves building one to count the parameters. The names are
    :data:`symgrad.solvers.METHODS` names plus ``"adam"``.
    """
    if not isinstance(requested, str):
        raise ValueError(f"requested must be a solver name or 'auto', got {requested!r}")
    if requested.lower() != "auto":
        return requested.lower()
    facts = model.facts()
    if not facts.linear:
        return "adam" if first_order else "lbfgs"
    if params is None:
        from symgrad.scipy import initial_params

        params = initial_params(model, X, y)
    n_params = sum(int(np.size(leaf)) for leaf in params.values())
    kernels = [k for k in (facts.loss, facts.regularizer) if k is not None]
    if n_params > DENSE_LIMIT or any(k.curvature == "kinked" for k in kernels):
        return "lbfgs"
    if all(k.convex for k in kernels):
        return "newton"
    return "damped_newton"
