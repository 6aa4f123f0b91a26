"""Time one optimizer update against a hand-written in-place numpy Adam step, same run.

``python -m benchmarks.optim_step [--repeat N]`` prints, for a small (64-32-10) and a wide
(784-256-10) MLP parameter dict, microseconds per ``opt.update`` for every registered
optimizer and for ``chain(clip_by_global_norm, adam)``, with the ratio to the hand Adam step.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from symgrad import optim

SIZES = {"small 64-32-10": (64, 32, 10), "wide 784-256-10": (784, 256, 10)}


def mlp_params(sizes: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return W0, b0, W1, b1, ... for an MLP with these layer widths, normally distributed."""
    out = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        out[f"W{i}"], out[f"b{i}"] = rng.normal(size=(a, b)), rng.normal(size=b)
    return out


def hand_adam(params: dict, lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999):
    """Return a step function doing Adam in place on preallocated buffers (the baseline)."""
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    tmp = {k: np.empty_like(v) for k, v in params.items()}

    def step(grads: dict, t: int = 1) -> None:
        c1, c2 = 1 - b1**t, (1 - b2**t) ** 0.5
        for k, g in grads.items():
            m[k] *= b1
            m[k] += (1 - b1) * g
            v2[k] *= b2
            np.multiply(g, g, out=tmp[k])
            tmp[k] *= 1 - b2
            v2[k] += tmp[k]
            np.sqrt(v2[k], out=tmp[k])
            tmp[k] /= c2
            tmp[k] += 1e-8
            np.divide(m[k], tmp[k], out=tmp[k])
            params[k] -= (lr / c1) * tmp[k]

    return step


def best_seconds(fn, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for label, sizes in SIZES.items():
        params = mlp_params(sizes, rng)
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        number = 200 if label.startswith("small") else 20
        step = hand_adam({k: v.copy() for k, v in params.items()})
        base = best_seconds(lambda s=step, g=grads: s(g), number, args.repeat)
        print(f"{label}: hand numpy Adam {base * 1e6:.0f} us per update")
        opts = {name: optim.get(name) for name in optim.OPTIMIZERS}
        opts["clip+adam"] = optim.as_optimizer(
            optim.chain(optim.clip_by_global_norm(1.0), optim.adam())
        )
        for name, opt in opts.items():
            state = opt.init(params)
            run = lambda o=opt, s=state, g=grads, p=params: o.update(g, s, p)  # noqa: E731
            sec = best_seconds(run, number, args.repeat)
            print(f"  {name:10s} {sec * 1e6:8.0f} us  x{sec / base:5.2f} hand Adam")


if __name__ == "__main__":
    main()
