"""Bad specs give one clear error naming the spec and the problem, never a sympy traceback."""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg


def test_free_symbol():
    with pytest.raises(sg.SpecError, match=r"spec 'bad'.*free symbol 'k' is neither"):

        @sg.loss
        def bad(yhat, y):
            return (yhat - y) * sp.Symbol("k")


def test_symbol_with_other_assumptions_gets_a_hint():
    with pytest.raises(sg.SpecError, match="use real=True"):

        @sg.activation
        def bad(x):
            return sp.Symbol("x") ** 2


def test_invalid_name_and_keyword():
    def f(x):
        return x

    with pytest.raises(sg.SpecError, match="not a valid Python identifier"):
        sg.activation(f, name="not-valid")
    with pytest.raises(sg.SpecError, match="is a Python keyword"):
        sg.activation(f, name="lambda")
    with pytest.raises(sg.SpecError, match="reserved"):
        sg.activation(f, name="np")


def test_injection_through_names_is_impossible():
    def f(x):
        return x

    with pytest.raises(sg.SpecError):
        sg.activation(f, name="x():\n    import os\ndef y")


def test_unlowerable_function_is_named():
    with pytest.raises(sg.SpecError, match=r"function 'besselj' cannot be lowered"):

        @sg.activation
        def bessel(x):
            return sp.besselj(0, x)


def test_gamma_is_rejected_up_front():
    with pytest.raises(sg.SpecError, match="function 'gamma' cannot be lowered"):

        @sg.activation
        def shifted_gamma(x):
            return sp.gamma(x)


def test_unlowerable_function_in_derivative():
    @sg.activation
    def arc(x):
        return sp.atan(x)

    sg.compile(arc)  # atan and its derivative lower fine


def test_undefined_function():
    with pytest.raises(sg.SpecError, match="cannot be lowered"):

        @sg.activation
        def f(x):
            return sp.Function("g")(x)


def test_non_real_expression():
    with pytest.raises(sg.SpecError, match="not real-valued"):

        @sg.activation
        def f(x):
            return sp.I * x


def test_non_scalar_expression():
    with pytest.raises(sg.SpecError, match="scalar sympy expression, got"):

        @sg.activation
        def f(x):
            return sp.Matrix([x, x])

    with pytest.raises(sg.SpecError, match="scalar sympy expression, got"):

        @sg.activation
        def g(x):
            return x > 0


def test_non_sympy_result():
    with pytest.raises(sg.SpecError, match="expected a sympy expression"):

        @sg.activation
        def f(x):
            return "x"


def test_user_exception_is_wrapped():
    with pytest.raises(sg.SpecError, match="building the expression raised ZeroDivisionError"):

        @sg.activation
        def f(x):
            return 1 / 0


def test_docstring_breakout_rejected():
    with pytest.raises(sg.SpecError, match="docstring would break out"):

        @sg.activation
        def f(x):
            '''Sneaky """ quote.'''
            return x


def test_bad_hyper_default_and_arity():
    with pytest.raises(sg.SpecError, match="hyper-parameter 'k' has default 'a'"):

        @sg.activation
        def f(x, k="a"):
            return x

    with pytest.raises(sg.SpecError, match="exactly one array input"):

        @sg.activation
        def g(x, y):
            return x * y

    with pytest.raises(sg.SpecError, match="use plain named parameters"):

        @sg.activation
        def h(*xs):
            return xs[0]


def test_class_axis_loss_must_reduce():
    with pytest.raises(sg.SpecError, match="outside a reduction"):

        @sg.loss
        def f(yhat, y):
            return yhat - sg.logsumexp(yhat)


def test_clashing_function_names_in_one_module():
    @sg.loss
    def a(yhat, y):
        return yhat * y

    @sg.loss(name="a_grad")
    def b(yhat, y):
        return yhat

    with pytest.raises(sg.SpecError, match="clashes"):
        sg.compile(a, b)


@pytest.mark.parametrize("bad", ["out", "count", "b1", "m0", "r2", "rm0", "value0", "threading"])
def test_names_the_emitted_body_uses_are_reserved(bad):
    with pytest.raises(sg.SpecError, match=f"{bad!r} is reserved for generated code"):
        sg.activation(eval(f"lambda {bad}: {bad}**2"), name="square")
