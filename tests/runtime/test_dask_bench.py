"""benchmarks/dask_logistic.py at tiny size: it completes and prints every table (not timed)."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")
pytest.importorskip("dask_glm")
pytest.importorskip("psutil")
pytest.importorskip("sklearn")

from benchmarks import dask_logistic  # noqa: E402


def test_tiny_benchmark_prints_every_table(capsys):
    assert dask_logistic.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    assert "| in-memory numpy, 1 thread |" in out
    for solver in ("symgrad.dask newton", "dask-glm lbfgs", "dask-glm newton", "symgrad in memory"):
        assert f"| {solver}" in out
    assert out.count(dask_logistic.HEADER) == 2
    assert "**Out of core**" in out and "idle / peak RSS" in out
    assert "kernels' share on top of producing" in out
    assert "**From persisted arrays**" in out and "checked aligned and C-contiguous" in out
    for row in ("| L-BFGS, per iteration |", "| Newton, per iteration |", "| one value+gradient"):
        assert row in out
