"""The hostile corpus shared by the tests in this package: each string tries to break out of
the generated text or the one-line error promise. Injected code would create ``PWNED`` in the
working directory; the tests assert it never exists."""

from __future__ import annotations

#: the statement every injection attempt tries to run
PAYLOAD = 'open("PWNED", "w").write("x")'

#: strings that try to break out of a comment, a string literal or a docstring
BREAKOUTS = [
    f"a\n{PAYLOAD}\n#",
    f'a"""\n{PAYLOAD}\n"""',
    f"a'''\n{PAYLOAD}\n'''",
    f"a\r{PAYLOAD}",
    f"a\u2028{PAYLOAD}",
    f"a\x0c{PAYLOAD}",
    "a\\x",
    "a\\N{",
    "a\\",
    'a"',
    "a'",
    "\ud800",
    "a\x00b",
    "tab\there",
    "ünï cødé ✓",
    "sp ace",
    "#{{ jinja }}{% raw %}",
]

#: kernel and parameter names that are not safe identifiers in the emitted module
BAD_NAMES = [
    "",
    "1x",
    "x-y",
    "x y",
    "x\ny",
    "_private",
    "__all__",
    "ünï",
    "class",
    "lambda",
    "match",
    "np",
    "out",
    "count",
    "inv_n",
    "weight",
    "rows",
    "KERNELS",
    "t0",
    "b1",
    "value0",
    "float",
    "any",
    "len",
    "isinstance",
    "print",
    "sum",
    "ValueError",
    "x():\n    import os\ndef y",
]

#: hyper-parameter defaults that are not finite numbers
BAD_DEFAULTS = [float("nan"), float("inf"), -float("inf"), 10**400, True, "1.0", None, 1j, [1.0]]

#: directory names for spec files and ``-o DIR`` (created on disk by the tests)
BAD_DIRS = [
    f"d\n{PAYLOAD}\n#",
    'q"""',
    "bs\\x",
    "it's",
    "ünï cødé",
    "sp ace",
    "{{ x }}",
]
