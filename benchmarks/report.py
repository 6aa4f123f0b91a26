"""Format results: the ratio table as text and Markdown, and the ratios as a log-scale bar chart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.codesize import CHAINS, Chain
from benchmarks.columns import REFERENCE
from benchmarks.generation import GenerationTimes
from benchmarks.timing import RTOL, Cell

FLAGS = {"non-finite": " NaN!", "mismatch": " WRONG!"}


@dataclass
class Row:
    """One workload's results."""

    name: str
    title: str
    shape: str
    cells: list[Cell]

    def cell(self, column: str) -> Cell | None:
        """Return the cell of ``column``, if any."""
        return next((c for c in self.cells if c.column == column), None)

    def ratio(self, column: str, stat: str = "median") -> float | None:
        """Return ``column``'s time over hand numpy's (median by default), None if untimed."""
        cell, ref = self.cell(column), self.cell(REFERENCE)
        if cell is None or ref is None or not cell.timed or not ref.timed:
            return None
        return getattr(cell, stat) / getattr(ref, stat)


@dataclass
class Results:
    """Everything one run measured."""

    size: str
    repeat: int
    rows: list[Row] = field(default_factory=list)
    generation: GenerationTimes | None = None
    chains: list[Chain] = field(default_factory=list)
    environment: dict[str, object] = field(default_factory=dict)
    elapsed: float = 0.0

    def columns(self) -> list[str]:
        """Return the columns with at least one timed cell, in suite order."""
        seen: list[str] = []
        for row in self.rows:
            for cell in row.cells:
                if cell.timed and cell.column not in seen:
                    seen.append(cell.column)
        return seen

    def skipped(self) -> dict[str, str]:
        """Return columns that timed nothing, with the first reason given."""
        timed = set(self.columns())
        out: dict[str, str] = {}
        for row in self.rows:
            for cell in row.cells:
                if cell.column not in timed and cell.column not in out:
                    out[cell.column] = cell.note or cell.status
        return out


def fmt_time(seconds: float) -> str:
    """Return a time in ms with three significant digits (s beyond 10 s)."""
    ms = seconds * 1e3
    if ms >= 10_000:
        return f"{seconds:.1f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms"


def fmt_ratio(ratio: float | None) -> str:
    """Return a ratio like ``1.05x``."""
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x" if ratio < 1e4 else f"{ratio:.1e}x"


def cell_text(row: Row, column: str, markdown: bool = False) -> str:
    """Return a wide-table cell: median time and ratio to hand numpy, or why there is none."""
    cell = row.cell(column)
    if cell is None:
        return ""
    if not cell.timed:
        return "n/a" if cell.status == "n/a" else cell.status
    ratio = "" if column == REFERENCE else " " + fmt_ratio(row.ratio(column))
    text = f"{fmt_time(cell.median)}{ratio}{FLAGS.get(cell.status, '')}"
    return f"**{text}**" if markdown and column == "symgrad" else text


def _grid(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    line.append("  ".join("-" * w for w in widths))
    line += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return line


def _md(header: Sequence[str], body: Sequence[Sequence[str]], align: str = "l") -> list[str]:
    sep = "|" + "|".join(":---" if i == 0 or align == "l" else "---:" for i in range(len(header)))
    return [
        "| " + " | ".join(header) + " |",
        sep + "|",
        *("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body),
    ]


def _ratio_rows(results: Results, markdown: bool) -> tuple[list[str], list[list[str]]]:
    cols = results.columns()
    header = ["workload", "size", *cols]
    body = [
        [row.name, row.shape, *(cell_text(row, c, markdown) for c in cols)] for row in results.rows
    ]
    return header, body


def _notes(results: Results) -> list[str]:
    notes = [
        f"Median time per call over up to {results.repeat} repeats, after warm-up and a check "
        f"that every result matches hand numpy to {RTOL:g} relative; `Nx` = median / hand "
        "numpy's median (below 1 is faster). hand numpy and symgrad columns are timed "
        "interleaved in one process; lambdify, jax, torch and autograd each in their own.",
        "`NaN!` = the implementation returned inf/NaN on this data (timed anyway); "
        "`WRONG!` = it disagrees with hand numpy.",
    ]
    notes += [f"column `{c}` not run: {why}" for c, why in results.skipped().items()]
    return notes


def _generation_lines(g: GenerationTimes) -> list[str]:
    return [
        f"fresh interpreter (median of {g.runs}): {g.wall:.2f} s wall = "
        f"{g.imports:.2f} s importing symgrad + sympy, {g.generate:.2f} s generating, "
        "the rest interpreter start-up",
        f"in process: {g.in_process:.2f} s first time, {g.in_process_again:.2f} s again "
        "(sympy caches warm)",
        f"output: {g.lines:,} lines, {g.chars:,} characters in "
        "generated/{activations,losses,regularizers}.py",
    ]


def _chain_table(chains: Sequence[Chain]) -> tuple[list[str], list[list[str]]]:
    depths = sorted({r["depth"] for c in chains for r in c.rows})
    header = ["depth"]
    for c in chains:
        header += [f"{c.kind} lines", f"{c.kind} chars", f"{c.kind} doc+code", f"{c.kind} gen s"]
    body = []
    for d in depths:
        line = [str(d)]
        for c in chains:
            r = next((r for r in c.rows if r["depth"] == d), None)
            line += (
                [str(r["lines"]), str(r["chars"]), str(r["func_chars"]), f"{r['seconds']:.2f}"]
                if r
                else ["-"] * 4
            )
        body.append(line)
    return header, body


def _chain_lines(chains: Sequence[Chain]) -> list[str]:
    out = []
    for c in chains:
        inc = c.increments("chars")
        grow = f"{min(inc):.0f}..{max(inc):.0f}" if inc else "-"
        out.append(
            f"{c.kind} ({CHAINS.get(c.kind, c.kind)}): slope {c.slope('lines'):.2f} lines and "
            f"{c.slope('chars'):.1f} chars of code per level (per-level growth {grow} chars)"
            + (f"; stopped: {c.stopped}" if c.stopped else "")
        )
    return out


def text_report(results: Results) -> str:
    """Return the whole report as plain text for the terminal."""
    lines = [f"symgrad benchmark ({results.size} sizes, float64)", ""]
    lines += _grid(*_ratio_rows(results, markdown=False))
    lines += ["", *_notes(results)]
    if results.generation:
        lines += ["", "Generating the built-in library:", *_generation_lines(results.generation)]
    if results.chains:
        lines += ["", "Emitted gradient size against chain depth (code after the docstring):"]
        lines += _grid(*_chain_table(results.chains))
        lines += _chain_lines(results.chains)
    env = results.environment
    if env:
        versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())  # type: ignore[union-attr]
        lines += ["", f"Python {env.get('python')}, {env.get('cpus')} CPUs; {versions}"]
        lines += [str(p) for p in env.get("threadpools", [])]  # type: ignore[union-attr]
        lines += [str(p) for p in env.get("settings", [])]  # type: ignore[union-attr]
    lines += ["", f"total {results.elapsed:.0f} s"]
    return "\n".join(lines)


def _detail_rows(results: Results) -> tuple[list[str], list[list[str]]]:
    header = ["workload", "implementation", "median", "min", "ratio (median)", "ratio (min)"]
    header += ["repeats x calls", "max rel. error", "note"]
    body = []
    for row in results.rows:
        for c in row.cells:
            if not c.timed:
                if c.status != "n/a" or "not implemented" not in c.note:
                    body.append([row.name, c.column, "", "", "", "", "", "", c.note or c.status])
                continue
            err = "" if c.column == REFERENCE or math.isinf(c.error) else f"{c.error:.1e}"
            body.append(
                [
                    row.name,
                    c.column,
                    fmt_time(c.median),
                    fmt_time(c.best),
                    fmt_ratio(row.ratio(c.column)),
                    fmt_ratio(row.ratio(c.column, "best")),
                    f"{len(c.times)} x {c.number}",
                    err,
                    c.note,
                ]
            )
    return header, body


def markdown_report(results: Results) -> str:
    """Return the report as Markdown: ratio table, details, generation, code size, environment."""
    lines = [f"# symgrad benchmark ({results.size} sizes, float64)", ""]
    lines += [f"- {row.name}: {row.title}, {row.shape}" for row in results.rows]
    lines += ["", *_md(*_ratio_rows(results, markdown=True)), ""]
    lines += [f"- {n}" for n in _notes(results)]
    lines += ["", "## Details", "", *_md(*_detail_rows(results))]
    if results.generation:
        lines += ["", "## Generating the built-in library", ""]
        lines += [f"- {s}" for s in _generation_lines(results.generation)]
    if results.chains:
        lines += ["", "## Emitted gradient size against chain depth", ""]
        lines += [
            "`lines`/`chars`: the gradient function's code after its docstring; `doc+code`: the "
            "whole function including the docstring, which prints the derivative without CSE; "
            "`gen s`: seconds for `sg.compile` of the chain.",
            "",
        ]
        lines += _md(*_chain_table(results.chains))
        lines += ["", *(f"- {s}" for s in _chain_lines(results.chains))]
    env = results.environment
    if env:
        lines += ["", "## Environment", ""]
        lines += [f"- Python {env.get('python')} on {env.get('platform')}, {env.get('cpus')} CPUs"]
        versions = env.get("versions", {})
        lines += ["- " + ", ".join(f"{k} {v}" for k, v in versions.items())]  # type: ignore[union-attr]
        lines += [f"- {p}" for p in env.get("threadpools", [])]  # type: ignore[union-attr]
        lines += [f"- {p}" for p in env.get("settings", [])]  # type: ignore[union-attr]
    lines += ["", f"Total run time {results.elapsed:.0f} s.", ""]
    return "\n".join(lines)


def _ratios_from_json(old: dict) -> dict[tuple[str, str], float]:
    """Return {(workload, column): median ratio to hand numpy} from a saved results.json."""
    out = {}
    for row in old.get("rows", []):
        medians = {
            c["column"]: statistics.median(c["times"]) for c in row["cells"] if c.get("times")
        }
        ref = medians.get(REFERENCE)
        for column, median in medians.items():
            if ref:
                out[(row["name"], column)] = median / ref
    return out


def comparison_report(results: Results, old: dict) -> str:
    """Return a table of each ratio to hand numpy in an earlier run (``old``) and in this one."""
    before = _ratios_from_json(old)
    cols = [c for c in results.columns() if c != REFERENCE]
    header = ["workload", *cols]
    body = []
    for row in results.rows:
        cells = [row.name]
        for col in cols:
            now, then = row.ratio(col), before.get((row.name, col))
            cells.append(
                f"{fmt_ratio(then) or '-'} -> {fmt_ratio(now) or '-'}" if now or then else ""
            )
        body.append(cells)
    return "\n".join(["Ratio to hand numpy, earlier run -> this run:", *_grid(header, body)])


def bar_chart(results: Results, path: Path) -> bool:
    """Write the ratios to hand numpy as a log-scale grouped bar chart; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols = [c for c in results.columns() if c != REFERENCE]
    rows = results.rows
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(rows)), 5))
    width = 0.8 / max(1, len(cols))
    for i, col in enumerate(cols):
        xs, ys, hatch = [], [], []
        for j, row in enumerate(rows):
            ratio = row.ratio(col)
            if ratio is not None:
                xs.append(j - 0.4 + (i + 0.5) * width)
                ys.append(ratio)
                cell = row.cell(col)
                hatch.append("//" if cell and cell.status != "ok" else "")
        bars = ax.bar(xs, ys, width, label=col)
        for bar, h in zip(bars, hatch, strict=True):
            bar.set_hatch(h)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r.name for r in rows], rotation=20, ha="right")
    ax.set_ylabel("median time / hand numpy (log scale; < 1 is faster)")
    ax.set_title(f"symgrad benchmark ({results.size} sizes, float64); hatched: wrong or non-finite")
    ax.legend(fontsize="small", ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
