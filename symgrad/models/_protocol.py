"""The Model protocol every caller uses, and the types the model modules share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from symgrad.kernels import KernelInfo

Params = dict[str, np.ndarray]
HVP = Callable[[Params], Params]
#: A built-in name, a user's ``symgrad.Spec``, or either paired with hyper-parameter values.
KernelChoice = str | Any | tuple[str | Any, Mapping[str, float]]


class ModelFacts(NamedTuple):
    """What the solver policy (:func:`symgrad.solvers.choose`) reads from a model: its loss
    and regularizer kernels' facts, and whether its outputs are linear in its parameters
    (then the objective is convex when both kernels are)."""

    loss: KernelInfo
    regularizer: KernelInfo | None
    linear: bool


@runtime_checkable
class Model(Protocol):
    """What every caller (``fit``, the solvers, scipy, scikit-learn, Dask, the CLI) uses of a
    model; the families implement it, and no caller switches on a model's class.

    ``params`` are a dict of arrays (:func:`symgrad.tree.ravel` gives the flat order of
    ``hessian``). ``objective`` returns ``(mean loss + penalty, grads)``; with ``count=`` and
    ``penalty=False`` a block of rows returns its exact share of the full objective.
    """

    def init(self, seed: int = 0, **kwargs: Any) -> Params:
        """Return starting parameters (shapes given as keywords for the linear family)."""
        ...

    def init_for(self, X: Any, y: Any, seed: int = 0) -> Params:
        """Return starting parameters shaped for data like ``X, y`` (zero rows will do)."""
        ...

    def objective(self, params: Params, X: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        """Return ``(loss, grads)``."""
        ...

    def hessian(self, params: Params, X: Any, y: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        """Return the dense Hessian over the flat parameter order."""
        ...

    def hvp_operator(self, params: Params, X: Any, y: Any, *args: Any, **kwargs: Any) -> HVP:
        """Return ``v -> H v`` at ``params`` (one forward pass, reused for every product)."""
        ...

    def hvp(self, params: Params, X: Any, y: Any, v: Params, *args: Any, **kwargs: Any) -> Params:
        """Return the Hessian at ``params`` times ``v``."""
        ...

    def decision_function(self, params: Params, X: Any) -> Any:
        """Return the model's raw outputs (logits for a classifier)."""
        ...

    def predict(self, params: Params, X: Any) -> Any:
        """Return predictions (labels for a classifier)."""
        ...

    def facts(self) -> ModelFacts:
        """Return what the solver policy reads: kernels' facts and linearity in params."""
        ...
