"""One table of function spellings per lowering target: numpy, the Array API standard, C.

Every printer and the buffer-reusing lowering read their names from here (sympy's
``_known_functions_numpy`` style), so a function is added for every target in one place.
"""

from __future__ import annotations

from types import MappingProxyType

#: sympy function name -> (numpy ufunc, Array API function, C function). A C name starting
#: with ``sg_`` is a helper the C target defines in its preamble.
SPELLINGS = MappingProxyType(
    {
        "exp": ("exp", "exp", "exp"),
        "log": ("log", "log", "log"),
        "sin": ("sin", "sin", "sin"),
        "cos": ("cos", "cos", "cos"),
        "tan": ("tan", "tan", "tan"),
        "asin": ("arcsin", "asin", "asin"),
        "acos": ("arccos", "acos", "acos"),
        "atan": ("arctan", "atan", "atan"),
        "atan2": ("arctan2", "atan2", "atan2"),
        "sinh": ("sinh", "sinh", "sinh"),
        "cosh": ("cosh", "cosh", "cosh"),
        "tanh": ("tanh", "tanh", "tanh"),
        "asinh": ("arcsinh", "asinh", "asinh"),
        "acosh": ("arccosh", "acosh", "acosh"),
        "atanh": ("arctanh", "atanh", "atanh"),
        "Abs": ("abs", "abs", "fabs"),
        "sign": ("sign", "sign", "sg_sign"),
        "floor": ("floor", "floor", "floor"),
        "ceiling": ("ceil", "ceil", "ceil"),
        "log1p": ("log1p", "log1p", "log1p"),
        "expm1": ("expm1", "expm1", "expm1"),
        "logaddexp": ("logaddexp", "logaddexp", "sg_logaddexp"),
        "erf": ("_erf", "_erf", "erf"),
        "erfc": ("_erfc", "_erfc", "erfc"),
    }
)

#: the table's columns
NUMPY, ARRAY_API, C = 0, 1, 2


def spellings(target: int) -> dict[str, str]:
    """Return sympy function name -> spelling for one target column, helpers excluded."""
    return {k: v[target] for k, v in SPELLINGS.items() if not v[target].startswith("_")}
