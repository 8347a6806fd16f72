"""Atomic writes: every file vascalc writes goes through here (temporary file beside the
target, fsync, rename), so a reader or a run killed at any instant sees the old file or the
new one, whole, with the mode the user's umask gives."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from .errors import OutputError


@lru_cache(maxsize=1)
def file_mode() -> int:
    """The mode of everything vascalc writes: 0666 under the user's umask, as open() gives (a
    temporary file alone would be 0600 and hide the tables from the user's group). The umask
    can only be read by setting it, so it is read once, on the first write, not at import."""
    old = os.umask(0o022)
    os.umask(old)
    return 0o666 & ~old


def _staged(path: Path, data: str | bytes) -> str:
    """``data`` in a temporary file beside ``path``, fsynced, with the normal file mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync and rename,
    so a reader (or a run killed at any instant) sees the old file or the new one, whole."""
    os.replace(_staged(path, data), path)


def write_all(files: dict[Path, str | bytes | None]) -> None:
    """Write a set of files all or none: every file is staged first, and only when all are
    staged (a full disk fails here) are they renamed into place. A path given None is
    removed after the renames (a table the run no longer writes: never left to pass for
    this run's). Raises OutputError."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            if data is not None:
                staged.append((_staged(path, data), path))
    except OSError as err:
        for tmp, _ in staged:
            os.unlink(tmp)
        raise OutputError(f"cannot write {err.filename or 'the tables'}: {err.strerror}; no "
                          "table was changed", path=str(next(iter(files)).parent)) from None
    for tmp, path in staged:
        os.replace(tmp, path)
    for path in (p for p, data in files.items() if data is None):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
