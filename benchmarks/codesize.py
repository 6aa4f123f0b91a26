"""Emitted code size against expression depth for chains of composed activations.

``python -m benchmarks.codesize KIND DEPTH...`` compiles each chain and prints one JSON line
per depth; the parent reads them with a time limit per depth, because deriving a deep chain
can take very long, and the table records where it stopped.
"""

from __future__ import annotations

import inspect
import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from benchmarks.generation import ROOT, child_env

CHAINS = {"tanh": "tanh(tanh(...tanh(x)))", "softplus_sigmoid": "...sigmoid(softplus(x))"}


def chain_spec(kind: str, depth: int):
    """Return an activation spec composing ``depth`` activations: tanh, or softplus/sigmoid."""
    import sympy as sp

    import symgrad as sg

    def fn(x):
        e = x
        for i in range(depth):
            if kind == "tanh":
                e = sp.tanh(e)
            elif i % 2 == 0:
                e = sp.log(1 + sp.exp(e))  # softplus
            else:
                e = 1 / (1 + sp.exp(-e))  # sigmoid
        return e

    return sg.activation(fn, name=f"chain{depth}", doc=f"{kind} chain of depth {depth}")


def measure(kind: str, depth: int) -> dict:
    """Compile one chain; return the size of its emitted gradient's code (after the docstring).

    ``func_lines`` and ``func_chars`` count the whole function, docstring included (the
    docstring prints the derivative without CSE, so it is not expected to stay linear).
    """
    import symgrad as sg

    start = time.perf_counter()
    module = sg.compile(chain_spec(kind, depth))
    seconds = time.perf_counter() - start
    grad = inspect.getsource(getattr(module, f"chain{depth}_grad"))
    body = [ln for ln in grad.splitlines() if ln.startswith("    ")]
    code = body[body.index('    """') + 1 :] if '    """' in body else body
    return {
        "depth": depth,
        "seconds": seconds,
        "lines": len(code),
        "chars": sum(len(ln.strip()) for ln in code),
        "func_lines": len(grad.splitlines()),
        "func_chars": len(grad),
    }


@dataclass
class Chain:
    """Sizes of one chain kind by depth; ``stopped`` says why larger depths are missing."""

    kind: str
    rows: list[dict] = field(default_factory=list)
    stopped: str = ""

    def slope(self, key: str) -> float:
        """Return the least-squares slope of ``key`` (lines or chars) against depth."""
        xs = [r["depth"] for r in self.rows]
        ys = [r[key] for r in self.rows]
        if len(xs) < 2:
            return float("nan")
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx

    def increments(self, key: str) -> list[float]:
        """Return the growth of ``key`` per unit depth between consecutive measured depths."""
        pairs = zip(self.rows, self.rows[1:], strict=False)
        return [(b[key] - a[key]) / (b["depth"] - a["depth"]) for a, b in pairs]


def measure_chain(kind: str, depths: list[int], timeout: float) -> Chain:
    """Measure ``depths`` in order in one child interpreter, giving each ``timeout`` seconds."""
    chain = Chain(kind)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.codesize", kind, *map(str, depths)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=child_env(),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        for depth in depths:
            # the first depth also pays for importing sympy and symgrad
            limit = timeout + (10.0 if depth == depths[0] else 0.0)
            try:
                line = lines.get(timeout=limit)
            except queue.Empty:
                chain.stopped = f"depth {depth} did not finish within {timeout:g} s"
                break
            if line is None:
                err = proc.stderr.read().strip().splitlines()  # type: ignore[union-attr]
                chain.stopped = f"depth {depth} failed: {err[-1] if err else 'no output'}"
                break
            chain.rows.append(json.loads(line))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return chain


def main(argv: list[str]) -> None:
    """Print one JSON line per depth for the chain kind in ``argv[0]``."""
    kind, depths = argv[0], [int(d) for d in argv[1:]]
    for depth in depths:
        print(json.dumps(measure(kind, depth)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
