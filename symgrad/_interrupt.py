"""Ctrl-C while the ``symgrad`` command is still starting: one line and exit code 130.

Also, ``python -m symgrad`` puts the working directory first on ``sys.path``, so a user's
``numpy.py`` or ``inspect.py`` there would shadow the real module while symgrad imports; the
command drops that entry, as the console script never had it (module targets are still looked
up in the working directory, explicitly, by ``symgrad.cli.targets``).

Python turns a SIGINT that arrives while modules are being imported into a traceback. When the
process is the ``symgrad`` command (the console script or ``python -m symgrad``), the package
installs this handler before it imports numpy; the CLI's ``main`` puts Python's default back
once it runs, so later interrupts unwind normally (temporary files removed) and still exit 130.
"""

from __future__ import annotations

import os
import signal
import sys


def cli_starting() -> bool:
    """Tell whether this process is the symgrad command line, not a program importing symgrad."""
    argv = list(getattr(sys, "orig_argv", ()))
    if "-m" in argv:
        return argv[argv.index("-m") + 1 : argv.index("-m") + 2] == ["symgrad"]
    return os.path.basename(sys.argv[0] if sys.argv else "") in ("symgrad", "symgrad.exe")


def _exit_interrupted(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def guard() -> None:
    """Exit with one line and code 130 on Ctrl-C until :func:`release`, and keep the working
    directory off ``sys.path`` (the CLI only)."""
    if not cli_starting():
        return
    if "-m" in getattr(sys, "orig_argv", ()) and sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_interrupted)


def release() -> None:
    """Restore Python's KeyboardInterrupt if :func:`guard` installed the early handler."""
    if signal.getsignal(signal.SIGINT) is _exit_interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
