"""Render targets to files: compare with what is on disk, diff, and write atomically."""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from symgrad.codegen import generate_source
from symgrad.targets import Target


@dataclass(frozen=True)
class Output:
    """One file symgrad would write, with what is on disk now (None if absent)."""

    path: Path
    text: str
    current: str | None

    @property
    def changed(self) -> bool:
        return self.text != self.current

    def diff(self, label: str | None = None) -> str:
        """Return a unified diff from the file on disk to the generated text, without timestamps."""
        name = label or self.path.as_posix()
        return "".join(
            difflib.unified_diff(
                (self.current or "").splitlines(True),
                self.text.splitlines(True),
                f"{name} (on disk)",
                f"{name} (generated)",
            )
        )


def command_for(targets_given: list[str], out_dir: str | None) -> str:
    """Return the command line that regenerates these files, for the generated header."""
    parts = ["symgrad generate", *targets_given]
    if out_dir:
        parts += ["-o", out_dir]
    return " ".join(parts)


def render_targets(targets: list[Target], out_dir: Path, command: str) -> list[Output]:
    """Render every target (all before any file is touched) and pair each with the disk copy."""
    outputs = []
    for target in targets:
        text = generate_source(
            target.specs, source=target.source, command=command, title=target.title
        )
        path = out_dir / f"{target.stem}.py"
        current = path.read_text(encoding="utf-8") if path.exists() else None
        outputs.append(Output(path, text, current))
    return outputs


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
