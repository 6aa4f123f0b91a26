"""The one atomic write every command uses: a temporary file beside the target, flushed to disk,
renamed over it; never through a symbolic link, never onto a device, FIFO or socket.

A new file gets the mode ``open()`` would give it (``0o666`` less the umask) because the
temporary is created with ``os.open(..., 0o666)`` and the kernel applies the umask: the process
umask is never read or changed, so a threaded host sees no window where it is 0. A replaced file
keeps its mode.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

from symgrad.errors import OutputError

#: O_NOFOLLOW and O_CLOEXEC where the platform has them (Windows has neither)
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_FLAGS |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def refuse_unwritable(path: Path, name: str | None = None) -> int | None:
    """Raise OutputError if ``path`` is a symbolic link or exists but is not a regular file;
    return the mode of the regular file there, or None when there is none."""
    name = path.as_posix() if name is None else name
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{name}: is a symbolic link; symgrad does not write through links")
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{name}: is a directory, expected a file name")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{name}: is not a regular file (a device, FIFO or socket)")
    return stat.S_IMODE(st.st_mode)


def _create_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """Create a new, empty, uniquely named file beside ``path``; return its descriptor and path."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name")


def stage(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write through ``write`` into a temporary file beside ``path``, flushed to disk, with the
    mode ``path`` will have; return the temporary's path (rename it with :func:`commit`)."""
    mode = refuse_unwritable(path)
    fd, tmp = _create_temporary(path, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # replacing a file: keep its mode
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(tmp: Path, path: Path) -> None:
    """Rename the staged ``tmp`` over ``path`` (removing ``tmp`` if that fails)."""
    try:
        refuse_unwritable(path)  # a link or FIFO put there since staging is refused too
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the rename to disk where the platform can open a folder (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the data itself is synced
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write`` all at once: readers see the old file or the new one."""
    commit(stage(path, write), path)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_atomic(path, lambda fh: fh.write(data))


def check_output(text: str, flag: str, force: bool = False) -> Path:
    """Return ``text`` as the path of a regular file to write, before any work is done; raise
    OutputError for an empty name, a folder, a link or special file, a missing or unwritable
    folder, or an existing file without ``force``."""
    if not text.strip():
        raise OutputError(f"{flag} {text!r}: empty file name")
    path, name = Path(text), text
    if text.endswith(("/", os.sep)):
        raise OutputError(f"{name}: is a directory, expected a file name")
    mode = refuse_unwritable(path, name)
    if mode is not None and not force:
        raise OutputError(f"{name}: already exists; pass --force to replace it")
    if mode is not None and not os.access(path, os.W_OK):
        raise OutputError(f"{name}: is read-only")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{name}: folder {folder.as_posix()} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{name}: folder {folder.as_posix()} is not writable")
    return path
