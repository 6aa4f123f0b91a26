"""Smooth and class-axis primitives that specs use and whose derivatives symgrad knows.

Sigmoid and softplus are kept as named functions while differentiating so that their
derivatives stay in closed form (sigmoid' = s(1-s)); they are lowered to overflow-free
numpy only when printing. Reductions over the last (class) axis are opaque to sympy's
``diff``; :mod:`symgrad.compiler.derive` applies their rules.
"""

from __future__ import annotations

import sympy as sp

from symgrad.compiler.traverse import has_node


def _real_arg(self: sp.Function) -> bool | None:
    return all(a.is_extended_real for a in self.args) or None


class Abs(sp.Function):
    """|x| of a real argument, with |x|'(0) = 0; sympy's Abs needs a provably real argument."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number or x.is_extended_nonnegative:
            return sp.Abs(x)
        if x.is_extended_nonpositive:
            return -x
        if x.could_extract_minus_sign():
            return cls(-x)
        return None

    def fdiff(self, argindex=1):
        return sign(self.args[0])

    _eval_is_extended_real = _real_arg

    def _eval_is_extended_nonnegative(self):
        return self.args[0].is_extended_real or None


class sign(sp.Function):  # noqa: N801
    """Sign of a real argument; its derivative is zero almost everywhere (and taken as zero)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number:
            return sp.sign(x)
        if x.could_extract_minus_sign():
            return -cls(-x)
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    _eval_is_extended_real = _real_arg


class sigmoid(sp.Function):  # noqa: N801 - printed name, like sympy's own exp/log
    """Logistic function 1 / (1 + exp(-x))."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    _eval_is_extended_real = _real_arg

    def _eval_is_positive(self):
        return self.args[0].is_extended_real or None

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(x)), lowered to np.logaddexp(0, x) so it never overflows."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    _eval_is_extended_real = _real_arg

    def _eval_is_positive(self):
        return self.args[0].is_extended_real or None

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.log)._eval_evalf(prec)


class xlogy(sp.Function):  # noqa: N801
    """x * log(y) with the convention 0 * log(0) = 0, as in scipy.special.xlogy."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_zero or b == 1:
            return sp.S.Zero
        if isinstance(b, sp.exp) and b.args[0].is_extended_real:
            return a * b.args[0]
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return sp.log(b) if argindex == 1 else xdivy(a, b)

    _eval_is_extended_real = _real_arg

    def _eval_rewrite_as_log(self, a, b, **kwargs):
        return a * sp.log(b)

    def _eval_evalf(self, prec):
        return self.rewrite(sp.log)._eval_evalf(prec)


class xdivy(sp.Function):  # noqa: N801
    """x / y with the convention 0 / y = 0, the derivative of xlogy in y."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_zero:
            return sp.S.Zero
        if b.is_positive:
            return a / b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return 1 / b if argindex == 1 else -a / b**2

    _eval_is_extended_real = _real_arg

    def _eval_evalf(self, prec):
        return (self.args[0] / self.args[1])._eval_evalf(prec)


class ncdf(sp.Function):  # noqa: N801
    """Standard normal CDF, (1 + erf(x / sqrt 2)) / 2, evaluated through erfc for the far tail."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)

    _eval_is_extended_real = _real_arg

    def _eval_rewrite_as_erf(self, x, **kwargs):
        return (1 + sp.erf(x / sp.sqrt(2))) / 2

    def _eval_evalf(self, prec):
        return self.rewrite(sp.erf)._eval_evalf(prec)


class axis_sum(sp.Function):  # noqa: N801
    """Sum over the last (class) axis, kept with keepdims so it broadcasts against classes."""

    nargs = 1
    _eval_is_extended_real = _real_arg


class logsumexp(sp.Function):  # noqa: N801
    """log(sum(exp(x))) over the last axis, lowered with the max shift so it never overflows."""

    nargs = 1
    _eval_is_extended_real = _real_arg


class axis_max(sp.Function):  # noqa: N801
    """Maximum over the last axis; appears only in lowered logsumexp/softmax."""

    nargs = 1
    _eval_is_extended_real = _real_arg


class exp_(sp.Function):  # noqa: N801
    """exp kept opaque after lowering, so sympy never folds exp(u)**2 into a second exp(2u)."""

    nargs = 1


class cosh_(sp.Function):  # noqa: N801
    """cosh that may overflow to inf: emitted only as 1/(2 + 2 cosh u), the logistic density
    sigmoid(u) sigmoid(-u), whose limit 0 the overflow gives exactly (numpy target only)."""

    nargs = 1


class step(sp.Function):  # noqa: N801
    """1.0 where the argument is >= 0, else 0.0; printed as a boolean mask numpy casts for free."""

    nargs = 1
    _eval_is_extended_real = _real_arg

    @classmethod
    def eval(cls, x):
        if x.is_extended_nonnegative:  # a constant argument folds (sigmoid(2) lowers to it)
            return sp.S.One
        if x.is_extended_negative:
            return sp.S.Zero
        return None

    def _eval_is_extended_nonnegative(self):
        return True


class where(sp.Function):  # noqa: N801
    """np.where(cond, a, b) kept opaque, so sympy never pushes powers or products into it."""

    nargs = 3


REDUCTIONS = (axis_sum, logsumexp)

#: Number of classes (length of the last axis); printed as ``np.shape(first_input)[-1]``.
N_CLASSES = sp.Symbol("n_classes", positive=True, integer=True)


def softmax(x: sp.Expr) -> sp.Expr:
    """Return softmax of ``x`` over the last axis, exp(x - logsumexp(x))."""
    return sp.exp(x - logsumexp(x))


def log_softmax(x: sp.Expr) -> sp.Expr:
    """Return log-softmax of ``x`` over the last axis."""
    return x - logsumexp(x)


def has_reduction(expr: sp.Expr) -> bool:
    """Tell whether ``expr`` reduces over the class axis anywhere."""
    return has_node(expr, *REDUCTIONS, N_CLASSES)
