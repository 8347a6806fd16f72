"""Zip archives of DICOM files, extracted safely.

Every member name is reduced to a relative path inside the destination (absolute paths,
drive letters and '..' parts are refused, never followed), symbolic links are skipped, and the
bytes actually written are capped (the sizes an archive declares can lie: a zip bomb is
stopped when the real output passes the cap, not when the declared total does).
"""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import ArchiveError

CHUNK = 1 << 20


def _safe_member(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and (":" in p.parts[0])) or ".." in p.parts:
        return None
    parts = [x for x in p.parts if x not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def extract_zip(archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int,
                max_files: int) -> list[Path]:
    """Extract ``archive`` into ``dest``; returns the files written."""
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise ArchiveError(f"not a readable zip archive ({err})", path=str(archive)) from None
    written: list[Path] = []
    total = 0
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise ArchiveError(f"{len(members)} files, more than the cap of {max_files}",
                               path=str(archive))
        for m in members:
            if (m.external_attr >> 16) & 0o170000 == 0o120000:
                continue  # a symbolic link: never followed
            rel = _safe_member(m.filename)
            if rel is None:
                raise ArchiveError(f"member {m.filename!r} would be written outside the "
                                   "extraction folder", path=str(archive))
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(m) as src, open(target, "wb") as dst:
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > max_bytes:
                            raise ArchiveError(
                                f"more than {max_bytes} bytes when extracted (a zip bomb?)",
                                path=str(archive),
                                hint="raise input.max_archive_bytes if the archive is genuine")
                        dst.write(chunk)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as err:
                raise ArchiveError(f"member {m.filename!r} is unreadable ({err})",
                                   path=str(archive)) from None
            # the member's own time, so that a rerun sees the same input fingerprint
            stamp = time.mktime(m.date_time + (0, 0, -1))
            os.utime(target, (stamp, stamp))
            written.append(target)
    return written
