"""``symgrad train``: load data, build a model from flags, fit it, report metrics, save the model.

Defaults follow scikit-learn's estimators so that a bare ``symgrad train --data NAME`` scores
at least as well as they do: convex models (linear, logistic, softmax) are solved to
convergence by Newton's method (``--optimizer lbfgs`` runs scipy's L-BFGS-B), the
classifiers carry scikit-learn's default L2 penalty (``C=1``), features are standardized,
and an MLP regressor learns standardized targets (predictions and metrics are reported in
the original units). The work is done by ``symgrad.data`` (load, split, scale, metrics),
``cli.build`` (the model), ``cli.fitting`` (solver policy and fit) and ``cli.saved`` (the file).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symgrad import data
from symgrad.cli.build import Built, build, encode
from symgrad.cli.files import check_output, write_atomic
from symgrad.cli.fitting import Guard, Problem, Solver, choose_solver, fit, quiet_numpy
from symgrad.cli.report import EXIT_OK, diverged, error, say
from symgrad.cli.train_flags import add_arguments
from symgrad.errors import OutputError, SymgradError

__all__ = ["add_arguments", "run"]


@dataclass
class Plan:
    """Everything ``run`` prepared before training: data, model, solver and output paths."""

    data: data.Dataset
    parts: data.Split
    built: Built
    y: np.ndarray
    y_val: np.ndarray | None
    target: data.Scaling
    solver: Solver
    seed: int
    out: Path
    png: Path | None

    def problem(self) -> Problem:
        """Return what the fit needs: the model and the training and validation arrays."""
        val = None if self.y_val is None else (self.parts.X_val, self.y_val)
        return Problem(self.built, self.parts.X, self.y, val, self.seed)


def _outputs(args: argparse.Namespace) -> tuple[Path, Path | None]:
    out = check_output(args.output, "-o", args.force)
    if args.no_plot:
        return out, None
    default = str(out.with_name(f"{out.stem}_loss.png"))
    png = check_output(args.plot or default, "--plot", args.force)
    if png.resolve() == out.resolve():
        raise OutputError(f"{png.as_posix()}: the model and the loss curve need two files")
    return out, png


def prepare(args: argparse.Namespace) -> Plan:
    """Check the flags and outputs, load and split the data, build the model and solver."""
    out, png = _outputs(args)
    loaded = data.load(args.data, args.label)
    classes = data.label_classes(loaded.y) if args.model != "linear" else None
    parts = data.split(loaded.X, loaded.y, args.val_fraction, args.seed, args.standardize, classes)
    built = build(args, loaded.y, loaded.X.shape[1], len(parts.X))
    y = encode(parts.y, built.classes)
    y_val = None if parts.y_val is None else encode(parts.y_val, built.classes)
    target = data.Scaling()
    if data.scales_targets(built.model, args.standardize):
        target = data.Scaling.fitted(y)
    built.model.objective(built.init, parts.X[:2], target.forward(y[:2]))  # shape problems
    solver = choose_solver(args, built, parts.X, target.forward(y))
    y_val = None if y_val is None else target.forward(y_val)
    return Plan(loaded, parts, built, target.forward(y), y_val, target, solver, args.seed, out, png)


def _announce(plan: Plan) -> None:
    classes = plan.built.classes
    n_val = 0 if plan.parts.X_val is None else len(plan.parts.X_val)
    what = f"{len(classes)} classes" if classes is not None else "regression"
    say(
        f"data   {plan.data.name}: {len(plan.data.X)} samples, {plan.parts.X.shape[1]} "
        f"features, {what} ({len(plan.parts.X)} train / {n_val} validation)"
    )
    scaled = " (targets standardized)" if plan.target.scaled else ""
    say(f"model  {plan.built.model!r}{scaled}")
    say(f"fit    {plan.solver.describe()}")


def metrics(plan: Plan, params: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return the objective, then accuracy and log-loss (classifiers) or RMSE, R^2, MAE and
    median absolute error (regressors; ``y`` and the predictions in original units)."""
    model, target = plan.built.model, plan.target
    out = {"loss": float(model.objective(params, X, target.forward(y))[0])}
    pred = np.asarray(model.predict(params, X))
    if plan.built.task == "classify":
        return out | data.classification_metrics(y, pred, model.predict_proba(params, X))
    return out | data.regression_metrics(y, target.inverse(pred.reshape(y.shape)))


def _scores(plan: Plan, params: Any) -> dict[str, dict[str, float]]:
    """Return the metrics on the training and the validation part (original units)."""
    unscale = (lambda v: v) if plan.built.task == "classify" else plan.target.inverse
    scores = {"train": metrics(plan, params, plan.parts.X, unscale(plan.y))}
    if plan.y_val is not None:
        scores["validation"] = metrics(plan, params, plan.parts.X_val, unscale(plan.y_val))
    return scores


def _stop_line(plan: Plan, result: Any, guard: Guard, seconds: float) -> str:
    if plan.solver.second_order:
        done = f"stopped after {result.n_epochs} iterations, {seconds:.2f} s: "
    else:
        done = f"stopped after {result.n_epochs} epochs, {result.n_steps} steps, {seconds:.2f} s: "
    why = result.message
    if guard.stalled:
        why = "converged: no step decreases the loss further"
    elif plan.solver.name == "newton" and result.stop_reason == "tol":
        why = f"converged: gradient norm {result.history.grad_norm[-1]:.3g}"
    elif plan.solver.second_order and result.stop_reason == "epochs":
        why = f"not converged within {plan.solver.epochs} iterations (raise --epochs)"
    return done + (why or result.stop_reason)


def _table(scores: dict[str, dict[str, float]]) -> list[str]:
    train, val = scores["train"], scores.get("validation", {})
    lines = [f"{'metric':<10} {'train':>12} {'validation':>12}"]
    for key, value in train.items():
        other = f"{val[key]:>12.6g}" if key in val else f"{'-':>12}"
        lines.append(f"{key:<10} {value:>12.6g} {other}")
    return lines


def _metadata(plan: Plan, scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Return the model file's description of the model, data, kernels and metrics."""
    from symgrad.cli import saved

    n_outputs = plan.y.shape[1] if plan.y.ndim == 2 else None
    return saved.describe_model(plan.built, n_outputs) | {
        "data": plan.data.name,
        "features": list(plan.data.feature_names),
        "named_features": plan.data.named,
        "label": plan.data.label_name,
        "standardized": {"features": plan.parts.scaling.scaled, "targets": plan.target.scaled},
        "metrics": {part: saved.finite_metrics(m) for part, m in scores.items()},
    }


def _save(plan: Plan, result: Any, scores: dict[str, dict[str, float]]) -> None:
    from symgrad.cli import saved
    from symgrad.cli.plot import plot

    arrays = {"x_mean": plan.parts.mean, "x_scale": plan.parts.scale}
    arrays |= {"y_mean": plan.target.mean, "y_scale": plan.target.scale}
    arrays["classes"] = plan.built.classes
    blob = saved.encode(_metadata(plan, scores), result.params, arrays)
    write_atomic(plan.out, lambda fh: fh.write(blob))
    say(f"wrote {plan.out.as_posix()}")
    if plan.png is None:
        return
    title = f"{plan.data.name}: {type(plan.built.model).__name__}, {plan.solver.name}"
    if plot(result.history, plan.png, title):
        say(f"wrote {plan.png.as_posix()}")
    else:
        say('no loss curve: matplotlib is not installed (pip install "symgrad[train]")')


def _diverged(plan: Plan, result: Any, guard: Guard, scores: dict) -> str | None:
    """Return why the fit failed (divergence, a non-finite loss or metric), or None."""
    if guard.diverged is not None:
        return guard.diverged
    if result.stop_reason == "non_finite":
        return result.message.split(";")[0]
    values = {k: v for part in scores.values() for k, v in part.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v) and k != "r2"]
    return f"the final {bad[0]} is not finite" if bad else None


def run(args: argparse.Namespace) -> int:
    """Run ``symgrad train`` (in memory) and return its exit code."""
    with quiet_numpy():
        try:
            plan = prepare(args)
        except (SymgradError, ValueError, TypeError) as exc:
            return error(str(exc))
        _announce(plan)
        start_loss = float(plan.built.model.objective(plan.built.init, plan.parts.X, plan.y)[0])
        guard = Guard(start_loss)
        start = time.perf_counter()
        result = fit(plan.problem(), plan.solver, guard, args.progress)
        seconds = time.perf_counter() - start
        scores = _scores(plan, result.params)
    reason = _diverged(plan, result, guard, scores)
    if reason is not None:
        hint = "a smaller --lr" if plan.solver.lr is not None else "--regularizer l2"
        return diverged(f"{reason}; try {hint}")
    print("\n".join([_stop_line(plan, result, guard, seconds), *_table(scores)]), flush=True)
    try:
        _save(plan, result, scores)
    except OutputError as exc:
        return error(str(exc))
    except OSError as exc:
        return error(f"{exc.filename or plan.out}: cannot write: {exc.strerror or exc}")
    return EXIT_OK
