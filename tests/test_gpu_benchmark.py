"""benchmarks.gpu says clearly why it cannot run on a machine without CuPy or a GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.gpu import NO_GPU, gpu_problem


def test_exits_with_a_clear_message_without_a_gpu():
    if gpu_problem() is None:
        pytest.skip("a GPU is present: run python -m benchmarks.gpu instead")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--size", "1000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(NO_GPU)
    assert "cupy" in done.stderr
