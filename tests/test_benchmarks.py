"""Smoke test of benchmarks/: the whole suite at tiny sizes, checked for agreement, not speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import run as bench
from benchmarks.columns import REFERENCE
from benchmarks.timing import compare
from benchmarks.workloads import WORKLOADS

#: The plain textbook formula evaluates 0 * log(0) at the confident logits of this row.
EXPECTED_NON_FINITE = {("bce_logits", "sympy lambdify")}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    args = bench.parse_args(["--size", "tiny", "--repeat", "1", "--out", str(out)])
    results = bench.run(args)
    return results, bench.write(results, out), out


def test_every_implementation_agrees_with_hand_numpy(tiny_run):
    results, _, _ = tiny_run
    assert [row.name for row in results.rows] == [w.name for w in WORKLOADS]
    for row in results.rows:
        ref = row.cell(REFERENCE)
        assert ref is not None and ref.status == "ok" and len(ref.times) == 1
        for cell in row.cells:
            where = (row.name, cell.column)
            if where in EXPECTED_NON_FINITE:
                assert cell.status == "non-finite", (where, cell.note)
            elif cell.status == "n/a":
                assert cell.note, where  # skipped cleanly, with a reason
            else:
                assert cell.status == "ok", (where, cell.status, cell.note)
                assert cell.error <= 1e-8 and cell.times, where
    symgrad = [row.cell("symgrad") for row in results.rows]
    assert all(c is not None and c.status == "ok" for c in symgrad)


def test_reports_are_written(tiny_run, capsys):
    results, written, out = tiny_run
    names = {p.name for p in written}
    assert {"results.md", "results.json"} <= names
    markdown = (out / "results.md").read_text()
    assert "| workload | size | hand numpy | symgrad |" in markdown
    for w in WORKLOADS:
        assert f"| {w.name} |" in markdown
    assert "## Generating the built-in library" in markdown
    assert "## Emitted gradient size against chain depth" in markdown
    data = json.loads((out / "results.json").read_text())
    assert len(data["rows"]) == len(WORKLOADS)
    if "results.png" in names:
        assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = bench.text_report(results)
    assert "hand numpy" in text and "sigmoid_grad" in text


def test_comparison_with_an_earlier_run(tiny_run):
    results, _, out = tiny_run
    earlier = json.loads((out / "results.json").read_text())
    table = bench.comparison_report(results, earlier)
    assert "sigmoid_grad" in table and "x -> " in table


def test_generation_and_code_size_are_measured(tiny_run):
    results, _, _ = tiny_run
    gen = results.generation
    assert gen is not None and gen.generate > 0 and gen.lines > 100
    assert {c.kind for c in results.chains} == {"tanh", "softplus_sigmoid"}
    for chain in results.chains:
        assert [r["depth"] for r in chain.rows] == [1, 2], chain.stopped
        assert chain.rows[1]["chars"] > chain.rows[0]["chars"] > 0


def test_compare_flags_wrong_and_non_finite_results():
    want = (np.array([1.0, 2.0]),)
    assert compare((np.array([1.0, 2.0 + 1e-12]),), want)[0] == "ok"
    assert compare((np.array([1.0, 2.1]),), want)[0] == "mismatch"
    assert compare((np.array([1.0, np.nan]),), want)[0] == "non-finite"
    assert compare((np.array([1.0]),), want)[0] == "mismatch"


def test_cli_rejects_unknown_names():
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "nope"])
    args = bench.parse_args(["--quick", "--only", "mlp,codesize", "--repeat", "2"])
    assert args.size == "quick" and args.only == ["mlp", "codesize"] and args.repeat == 2
