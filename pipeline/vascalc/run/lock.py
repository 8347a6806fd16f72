"""The output folder's lock: one vascalc run (or rescore, or merge) writes into a folder at a
time; a second is refused by name."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import BusyOutputError, OutputError

_HELD: set[str] = set()  # output folders this process holds the lock of


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold OUT/.vascalc.lock for the run: a second run into the same folder is refused by
    name (it would delete the first one's temporary files and interleave its results).
    Re-entrant within one process (the CLI holds it around discovery and the run)."""
    key = str(out.resolve())
    if key in _HELD:
        yield
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        fh = open(out / ".vascalc.lock", "a+", encoding="utf-8")
    except OSError as err:
        raise OutputError(f"cannot use the output folder: {err.strerror}", path=str(out)) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            raise BusyOutputError(f"another vascalc run is writing here ({fh.read().strip()})",
                                  path=str(out)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(fh, fcntl.LOCK_UN)
