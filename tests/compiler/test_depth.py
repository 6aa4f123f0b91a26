"""Deep compositions: emitted code grows linearly with depth, and generation stays fast."""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

import symgrad as sg


def _tanh_chain(depth: int):
    def chain(x):
        e = x
        for _ in range(depth):
            e = sp.tanh(e)
        return e

    return sg.activation(chain, name="chain")


def _code_lines(depth: int) -> int:
    source = sg.compile(_tanh_chain(depth)).__source__
    body = source.split("def chain_grad")[1].split('"""')[2].split("\ndef ")[0]
    return len(body.strip().splitlines())


def test_code_size_is_linear_in_depth():
    sizes = [_code_lines(d) for d in (4, 8, 16)]
    assert sizes[2] - sizes[1] == 2 * (sizes[1] - sizes[0])  # constant lines per level


def test_deep_chain_generates_quickly_and_is_right():
    start = time.perf_counter()
    k = sg.compile(_tanh_chain(24))
    assert time.perf_counter() - start < 20  # exponential before memoized rewriting: hours
    x = np.linspace(-2, 2, 7)
    h = 1e-6
    fd = (k.chain(x + h) - k.chain(x - h)) / (2 * h)
    np.testing.assert_allclose(k.chain_grad(x), fd, rtol=1e-6, atol=1e-9)
