"""The numpy erf/erfc emitted into generated modules: reproducible coefficients, accuracy."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.compiler.special import (
    ERF_SOURCE,
    ERF_TAYLOR,
    ERFC_COEFFICIENTS,
    ERFC_SOURCE,
    erf_taylor,
    erfc_polynomial,
)


@pytest.fixture(scope="module")
def special():
    namespace = {"np": np}
    exec(ERFC_SOURCE, namespace)
    exec(ERF_SOURCE, namespace)
    return namespace["_erf"], namespace["_erfc"]


def test_coefficients_are_what_the_fit_computes():
    assert erfc_polynomial() == ERFC_COEFFICIENTS
    assert erf_taylor() == ERF_TAYLOR


def test_erfc_and_erf_agree_with_mpmath(special):
    erf, erfc = special
    xs = np.concatenate([np.linspace(-6, 27, 6601), [0.0, 1e-8, -1e-8, 0.4999, 0.5, 0.5001]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        got_c, got = erfc(xs), erf(xs)
    with mp.workdps(30):
        for x, c, e in zip(xs, got_c, got, strict=True):
            want_c = mp.erfc(mp.mpf(x))
            if want_c > 1e-300:  # relative precision down to the subnormal range
                assert abs(c - want_c) <= 2e-15 * want_c, x
            want = mp.erf(mp.mpf(x))
            assert abs(e - want) <= 1e-15 * abs(want), x


def test_special_values_and_shapes(special):
    erf, erfc = special
    x = np.array([np.inf, -np.inf, 1e300, -1e300, 40.0, -40.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        np.testing.assert_array_equal(erfc(x), [0.0, 2.0, 0.0, 2.0, 0.0, 2.0])
        np.testing.assert_array_equal(erf(x), [1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    assert np.isnan(erfc(np.array([np.nan]))[0])
    assert erfc(np.float64(0.3)).shape == ()
    grid = np.linspace(-3, 3, 40000).reshape(200, 200, 1)  # more than one block, 3-D
    np.testing.assert_allclose(erfc(grid), np.vectorize(math.erfc)(grid), rtol=1e-15)


def test_a_spec_using_erf_compiles_to_numpy_only():
    kernels = sg.compile(sg.activation(lambda x: sp.erf(x) * x, name="xerf"))
    assert "import math" not in kernels.__source__
    x = np.linspace(-4, 4, 101)
    want = np.array([math.erf(v) * v for v in x])
    np.testing.assert_allclose(kernels.xerf(x), want, rtol=1e-15, atol=1e-300)
    slope = np.array([math.erf(v) + 2 * v * math.exp(-v * v) / math.sqrt(math.pi) for v in x])
    np.testing.assert_allclose(kernels.xerf_grad(x), slope, rtol=1e-14)
