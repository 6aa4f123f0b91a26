"""Linear, logistic, softmax and MLP models whose objectives backpropagate through generated kernels.

Every model is a small configuration object with three pure functions of a parameter dict::

    model = LogisticRegression(regularizer=("l2", {"lam": 1e-3}))
    params = model.init(0, n_features=X.shape[1])
    loss, grads = model.objective(params, X, y)     # what symgrad.fit minimises
    labels = model.predict(params, X)

Losses, activations and regularizers are given as a built-in name, a user's own
:class:`~symgrad.compiler.spec.Spec` (compiled on first use and cached), or a pair
``(name_or_spec, {hyper-parameter: value})``. Losses are means over samples and regularizers
are added once per weight matrix (never to biases), so the objective is
``mean loss + sum over W of R(W)``; with ``("l2", {"lam": lam})`` that is
``mean loss + lam / 2 * ||W||^2``. ``objective``, ``hessian``, ``hvp`` and ``hvp_operator`` take
``sample_weight=`` (one per sample): the mean becomes the weighted mean
``sum_i w_i l_i / sum_i w_i`` (the loss kernels' ``weight=``). Mappings to scikit-learn
(``n`` samples):

* ``Ridge(alpha)`` minimises ``||y - Xw - b||^2 + alpha ||w||^2``; divided by ``n`` that is
  ``mse + (alpha / n) ||w||^2``, so ``lam = 2 * alpha / n``.
* ``LogisticRegression(C)`` minimises ``C * sum(logloss) + 1/2 ||w||^2``; divided by ``C n``
  that is ``mean logloss + 1 / (2 C n) ||w||^2``, so ``lam = 1 / (C * n)``.

Classifiers take integer labels (one-hot encoded internally) or target rows; the output
activation is fused with the loss (``binary_cross_entropy_with_logits``,
``softmax_cross_entropy``, or :func:`symgrad.compose` for ``MLP(output=...)``), so the
gradient at the logits is ``p - y``, finite at any logit.

Second order, exact and from the emitted ``_hess``/``_hvp`` kernels: ``hessian(params, X, y)``
is the dense Hessian over :func:`flatten`'s order (closed form for the linear models, e.g.
``[X 1].T diag(p (1 - p) / n) [X 1] + lam I_W`` for logistic regression);
``hvp(params, X, y, v)`` and ``hvp_operator(params, X, y)`` give Hessian-vector products
(Pearlmutter's R-operator for the MLP). :mod:`symgrad.newton` fits with them.
"""

from __future__ import annotations

from symgrad.models._kernels import kernel_spec
from symgrad.models._linear import LinearRegression, LogisticRegression, SoftmaxRegression
from symgrad.models._mlp import MLP
from symgrad.models._protocol import KernelChoice, Model, ModelFacts, Params
from symgrad.tree import ravel as flatten
from symgrad.tree import unravel as unflatten

__all__ = [
    "MLP",
    "KernelChoice",
    "LinearRegression",
    "LogisticRegression",
    "Model",
    "ModelFacts",
    "Params",
    "SoftmaxRegression",
    "flatten",
    "kernel_spec",
    "unflatten",
]
