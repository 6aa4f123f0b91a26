"""Run every example's main() (and each as a script) and check the outcome it promises."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NAMES = ["linear_regression_gd", "logistic_breast_cancer", "mlp_digits", "custom_loss"]


def load(name: str):
    """Import examples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(NAMES)


def test_linear_regression_gd_ends_near_0_and_2(capsys):
    out = load("linear_regression_gd").main()
    assert out["epochs"] == 1000
    assert abs(out["theta0"]) < 0.05 and abs(out["theta1"] - 2) < 0.02
    assert out["final_loss"] < 1e-3
    assert np.all(np.diff(out["losses"]) < 0)  # gradient descent never goes uphill here
    printed = capsys.readouterr().out
    assert printed.count("loss") >= 11  # epoch 1, then every 100 epochs, then the summary


def test_logistic_breast_cancer_matches_sklearn():
    out = load("logistic_breast_cancer").main(verbose=False)
    assert out["stop_reason"] == "tol"
    assert out["coef_rel_error"] < 1e-4
    assert out["final_loss"] <= out["sklearn_loss"] + 1e-12
    assert out["test_accuracy"] >= 0.95
    assert out["test_accuracy"] == out["sklearn_test_accuracy"]


def test_mlp_digits_reaches_95_percent():
    out = load("mlp_digits").main(verbose=False)
    assert out["test_accuracy"] >= 0.95
    assert out["seconds"] < 30


def test_custom_loss_beats_mse_on_outliers():
    out = load("custom_loss").main(verbose=False)
    robust, mse = out["cauchy"]["coef_rel_error"], out["mse"]["coef_rel_error"]
    assert robust < 0.02
    assert robust < mse / 10
    assert robust < 2 * out["mse_inliers_only"]["coef_rel_error"]


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_as_a_script(name):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "epochs" in proc.stdout
