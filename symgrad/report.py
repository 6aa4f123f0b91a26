"""Count what generate did and own the exit code, the way black's Report does."""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK, EXIT_CHANGED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 123


@dataclass
class Report:
    """Changed, unchanged and failed counts, plus whether files were only checked."""

    check: bool = False
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def return_code(self) -> int:
        if self.failed:
            return EXIT_USAGE
        if self.check and self.changed:
            return EXIT_CHANGED
        return EXIT_OK

    def summary(self) -> str:
        verb = "would be regenerated" if self.check else "regenerated"
        parts = []
        if self.changed:
            parts.append(f"{len(self.changed)} file{'s' * (len(self.changed) != 1)} {verb}")
        if self.unchanged:
            n = len(self.unchanged)
            parts.append(
                f"{n} file{'s' * (n != 1)} {'would be ' if self.check else ''}left unchanged"
            )
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts) or "nothing to do"
