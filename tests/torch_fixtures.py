"""torch.optim's trajectories, recorded once, so optimizer parity is tested without torch.

``tests/data/torch_optim.json`` holds, for every case below, the parameters torch reached after
each step on a small non-quadratic problem (and the learning rate each scheduler gave). The
tests replay symgrad's optimizers on the same problem and compare step by step; with torch
installed, one test also records afresh and compares with the file, so a torch release that
changes an update rule is noticed. Regenerate (torch and lion-pytorch installed)::

    python tests/torch_fixtures.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

PATH = Path(__file__).resolve().parent / "data" / "torch_optim.json"

#: (symgrad optimizer name, keyword arguments): torch.optim takes the same arguments
OPTIMIZER_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1, maximize=True)),
    ("adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.2, weight_decay=0.1)),
    ("adagrad", dict(maximize=True)),
    ("adadelta", dict()),
    ("adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("rmsprop", dict()),
    ("rmsprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.7, weight_decay=0.1)),
    ("rmsprop", dict(centered=True, maximize=True)),
    ("adam", dict(lr=0.1)),
    ("adam", dict(lr=0.1, betas=(0.8, 0.5), amsgrad=True, weight_decay=0.1)),
    ("adam", dict(maximize=True, amsgrad=True)),
    ("adamw", dict(lr=0.1)),
    ("adamw", dict(lr=0.1, betas=(0.9, 0.5), amsgrad=True, weight_decay=0.3)),
    ("adamax", dict(lr=0.1)),
    ("adamax", dict(lr=0.1, betas=(0.8, 0.9), weight_decay=0.1, maximize=True)),
    ("nadam", dict(lr=0.1)),
    ("nadam", dict(lr=0.1, weight_decay=0.1, momentum_decay=0.01)),
    ("nadam", dict(lr=0.1, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]
OPTIMIZER_STEPS = 20
TORCH_NAMES = dict(
    sgd="SGD", adagrad="Adagrad", adadelta="Adadelta", rmsprop="RMSprop", adam="Adam",
    adamw="AdamW", adamax="Adamax", nadam="NAdam",
)  # fmt: skip

#: symgrad schedule (name, arguments) -> torch scheduler (name, arguments after the optimizer),
#: stepped once per update of SGD(lr, momentum=0.5)
SCHEDULE_CASES = [
    (("step_decay", (0.1, 3, 0.5)), ("StepLR", (3, 0.5), {})),
    (("cosine_annealing", (0.1, 7, 0.01)), ("CosineAnnealingLR", (7, 0.01), {})),
    (("exponential", (0.1, 0.9)), ("ExponentialLR", (0.9,), {})),
    (("linear_warmup", (0.1, 5)), ("LinearLR", (), {"total_iters": 5})),
]
SCHEDULE_STEPS = 20

#: lion-pytorch's Lion (decay p by 1 - lr * wd, then the sign step)
LION_CASES = [dict(lr=0.05), dict(lr=0.02, betas=(0.8, 0.95), weight_decay=0.2)]
LION_STEPS = 25

STARTS = {"u": [0.7, -1.3], "v": [-0.2, 2.0]}


def coupled_grad(w: np.ndarray) -> np.ndarray:
    """Gradient of a non-separable, non-quadratic test function."""
    a = np.array([[3.0, 0.5], [0.5, 1.0]])
    return a @ w - np.array([1.0, -2.0]) + 0.3 * np.sin(3 * w)


def case_id(name: str, kwargs: dict[str, Any]) -> str:
    """Return the name a case goes by in the file and in test ids."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(kwargs.items()))})"


def load() -> dict[str, Any]:
    """Return the recorded trajectories (lists of floats; tuples were written as lists)."""
    return json.loads(PATH.read_text())


def _track(torch: Any, topt: Any, tparams: list, n_steps: int, sched: Any = None) -> dict:
    """Step ``topt`` on ``coupled_grad`` and return each step's parameters (and lr)."""
    out: dict[str, list] = {k: [] for k in STARTS}
    lrs = []
    for _ in range(n_steps):
        lrs.append(topt.param_groups[0]["lr"])
        for t in tparams:
            t.grad = torch.from_numpy(coupled_grad(t.detach().numpy().copy()))
        topt.step()
        if sched is not None:
            sched.step()
        for k, t in zip(STARTS, tparams, strict=True):
            out[k].append(t.detach().numpy().tolist())
    return {"params": out, "lr": lrs} if sched is not None else {"params": out}


def record() -> dict[str, Any]:
    """Run every case through torch (float64) and return the trajectories."""
    import lion_pytorch
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # float64 step / mu_product scalars in torch state

    def params() -> list:
        return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in STARTS.values()]

    try:
        data: dict[str, Any] = {"torch": torch.__version__, "starts": STARTS}
        data["optimizers"] = {}
        for name, kwargs in OPTIMIZER_CASES:
            p = params()
            topt = getattr(torch.optim, TORCH_NAMES[name])(p, **kwargs)
            data["optimizers"][case_id(name, kwargs)] = _track(torch, topt, p, OPTIMIZER_STEPS)
        data["schedules"] = {}
        for (ours, args), (theirs, targs, tkw) in SCHEDULE_CASES:
            p = params()
            topt = torch.optim.SGD(p, lr=args[0], momentum=0.5)
            sched = getattr(torch.optim.lr_scheduler, theirs)(topt, *targs, **tkw)
            data["schedules"][f"{ours}{args}"] = _track(torch, topt, p, SCHEDULE_STEPS, sched)
        data["lion-pytorch"] = {}
        for kwargs in LION_CASES:
            p = params()
            topt = lion_pytorch.Lion(p, **kwargs)
            data["lion-pytorch"][case_id("lion", kwargs)] = _track(torch, topt, p, LION_STEPS)
    finally:
        torch.set_default_dtype(previous)
    return data


def main() -> int:
    """Record the trajectories and write them to ``PATH``."""
    text = json.dumps(record(), indent=1, sort_keys=True)
    # one line per step: [u0, u1] rather than a line per number
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: f"[{' '.join(m[1].split())}]", text)
    PATH.write_text(text + "\n")
    print(f"wrote {PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
