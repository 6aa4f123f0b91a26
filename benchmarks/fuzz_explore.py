"""Compile many random user-style specs and classify what goes wrong (exploratory, slow).

Each verified spec is also run under np.errstate(over/divide/invalid="raise"): a floating-point
error where the result is finite (and the plain formula raises none) is a failure class too.

Usage: python benchmarks/fuzz_explore.py [N] [SEED0] [--fast] [--strict] [--contract] [-v]
(from the repo root, PYTHONPATH=.): --fast compiles without safe mode; --strict also counts a
floating-point error where the plain formula raises one too (the exact result being a float64
number); --contract also counts the specs that keep the floor but break the stronger contract
(a few ulps times the function's own condition number, ``check.outside_contract``) somewhere.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
from fuzz_grammar import RandomDraw, random_spec  # noqa: E402

import symgrad as sg  # noqa: E402
from symgrad.compiler import check  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed0 = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    safe = "--fast" not in sys.argv
    classes: Counter = Counter()
    slow = []
    rng = np.random.default_rng(seed0)
    for seed in range(seed0, seed0 + n):
        try:
            spec = random_spec(RandomDraw(seed))
        except sg.SpecError:
            classes["invalid draw"] += 1
            continue
        t0 = time.process_time()  # CPU time: the wall clock of a shared machine misleads
        try:
            module = sg.compile(spec, safe=safe) if safe else sg.compile(spec, safe=False)
        except Exception as exc:  # noqa: BLE001
            kind = f"compile {type(exc).__name__}"
            classes[kind] += 1
            print(seed, kind, str(exc)[:300], "|", sp.sstr(spec.expr)[:300])
            if "-v" in sys.argv:
                traceback.print_exc()
            continue
        dt = time.process_time() - t0
        if dt > 5:
            slow.append((seed, dt))
            print(seed, f"slow {dt:.1f}s", sp.sstr(spec.expr)[:300])
        xs = check.POINTS + tuple(rng.normal(0, 5, 6))
        try:
            fp = check.STRICT if "--strict" in sys.argv else True
            fails = check.check_module(spec, module, pts=check.points(spec, xs), fp=fp)
        except Exception as exc:  # noqa: BLE001
            classes[f"run {type(exc).__name__}"] += 1
            print(seed, "run", type(exc).__name__, str(exc)[:300], "|", sp.sstr(spec.expr)[:300])
            continue
        for f in fails.values():
            kind = f.why.split(" (")[0].split(" vs")[0][:40]
            classes[kind] += 1
            print(seed, f"{spec.role}: {sp.sstr(spec.expr)[:300]}\n    {f}")
            break
        else:
            contract = "--contract" in sys.argv
            outside = contract and check.outside_contract(spec, module, check.points(spec, xs))
            if outside:
                finite = all(np.isfinite(got) for _, _, got, _, _ in outside)
                classes[f"outside the stronger contract{'' if finite else ' (non-finite)'}"] += 1
                name, point, got, exact, condition = next(
                    (o for o in outside if not np.isfinite(o[2])), outside[0]
                )
                print(
                    seed,
                    f"{spec.role}: {sp.sstr(spec.expr)[:300]}\n    contract: {name} at",
                    f"{point}: {got!r} vs {exact!r} (condition {condition:.3g})",
                )
            else:
                classes["ok"] += 1
    print(dict(classes), "slow:", slow)


if __name__ == "__main__":
    main()
