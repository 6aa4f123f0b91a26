"""Count what a command did, print its status lines to stderr, and own the exit code (like black)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

#: 0 nothing to do (or done), 1 would change (``--check``) or a check failed (``verify``, a
#: diverged ``train``), 2 bad usage, a bad spec or target, bad data or an unwritable output,
#: 123 internal error, 130 interrupted.
EXIT_OK, EXIT_CHANGED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 123, 130
EXIT_FAILED = EXIT_CHANGED


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def one_line(message: str) -> str:
    """Return ``message`` with newlines and other unprintable characters escaped, so a status
    line stays one line whatever path or name it quotes."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in message)


def say(message: str) -> None:
    """Print one status line to stderr."""
    print(one_line(message), file=sys.stderr, flush=True)


def error(message: str) -> int:
    """Print ``error: message`` to stderr and return the bad-usage exit code."""
    report = Report()
    report.bad_input(message)
    return report.return_code


def diverged(reason: str) -> int:
    """Print ``diverged: reason`` (a failed training run) and return its exit code, 1."""
    report = Report()
    report.failed_checks.append(reason)
    say(f"diverged: {reason}")
    return report.return_code


@dataclass
class Report:
    """What a command did: files changed, left alone, orphaned or failed; checks that failed;
    bad input; internal errors. Its ``return_code`` is every command's exit code."""

    check: bool = False
    write: bool = True
    quiet: bool = False
    verbose: bool = False
    changed_files: list[str] = field(default_factory=list)
    created_files: list[str] = field(default_factory=list)
    unchanged_files: list[str] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)
    #: checks that found something wrong: a derivative (``verify``), a diverged fit (``train``)
    failed_checks: list[str] = field(default_factory=list)
    bad_inputs: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    interrupted: bool = False

    def _out(self, message: str) -> None:
        if not self.quiet:
            say(message)

    def changed(self, name: str, created: bool = False, note: str = "") -> None:
        """Record a file that was (or would be) written; ``created`` if it did not exist.

        ``note`` says why it may differ (other sympy/symgrad versions wrote it).
        """
        (self.created_files if created else self.changed_files).append(name)
        verb = "created" if created else "regenerated"
        self._out(f"{verb} {name}{note}" if self.write else f"would {verb[:-1]} {name}{note}")

    def unchanged(self, name: str) -> None:
        """Record a file already up to date."""
        self.unchanged_files.append(name)
        if self.verbose:
            self._out(f"{name} already up to date")

    def orphan(self, name: str, source: str, removed: bool) -> None:
        """Record a generated file whose spec source is gone (removed with ``--prune``)."""
        why = f"its spec source {source} is gone"
        if removed and self.write:
            self.removed_files.append(name)
            self._out(f"removed {name} ({why})")
            return
        self.orphan_files.append(name)
        if removed:
            self._out(f"would remove {name} ({why})")
        else:
            self._out(f"orphan {name}: {why}; `symgrad generate --prune` removes it")

    def failed(self, name: str, message: str) -> None:
        """Record a file that could not be written or removed (always printed)."""
        self.failed_files.append(name)
        say(f"error: {name}: {message}")

    def check_failed(self, what: str) -> None:
        """Record a check that found something wrong (always printed, as ``FAIL what``)."""
        self.failed_checks.append(what)
        say(f"FAIL {what}")

    def bad_input(self, message: str) -> None:
        """Record input symgrad cannot use: one ``error:`` line naming it."""
        self.bad_inputs.append(message)
        say(f"error: {message}")

    def internal_error(self, message: str) -> None:
        """Record a bug in symgrad itself (black's 123)."""
        self.internal_errors.append(message)
        say(f"internal error: {message} (please report it; SYMGRAD_TRACEBACK=1 shows where)")

    def interrupt(self) -> None:
        """Record Ctrl-C."""
        self.interrupted = True
        say("interrupted")

    @property
    def return_code(self) -> int:
        """Return the exit code: 130, 123, 2, 1 or 0, the most serious outcome first."""
        stale = self.check and (self.changed_files or self.created_files or self.orphan_files)
        for code, happened in (
            (EXIT_INTERRUPTED, self.interrupted),
            (EXIT_INTERNAL, self.internal_errors),
            (EXIT_USAGE, self.failed_files or self.bad_inputs),
            (EXIT_CHANGED, self.failed_checks or stale),
        ):
            if happened:
                return code
        return EXIT_OK

    def summary(self) -> str:
        """Return one line counting what happened, in black's words."""
        would = "" if self.write else "would be "
        parts = []
        if self.created_files:
            parts.append(f"{_plural(len(self.created_files), 'file')} {would}created")
        if self.changed_files:
            parts.append(f"{_plural(len(self.changed_files), 'file')} {would}regenerated")
        if self.removed_files:
            parts.append(f"{_plural(len(self.removed_files), 'orphan')} removed")
        if self.orphan_files:
            parts.append(f"{_plural(len(self.orphan_files), 'orphan')} found")
        if self.unchanged_files:
            parts.append(f"{_plural(len(self.unchanged_files), 'file')} {would}left unchanged")
        if self.failed_files:
            parts.append(f"{len(self.failed_files)} failed")
        return ", ".join(parts) or "nothing to do"

    def finish(self) -> int:
        """Print the summary line (unless quiet) and return the exit code."""
        if not self.quiet or self.failed_files:
            say(self.summary())
        return self.return_code
