"""Received instances on disk, durably, before the sender hears Success.

Each instance is written to ``OUT/incoming/<study>/<series>/<sop>.dcm`` (folder names are
short digests of the UIDs, so a UID never becomes a path): to a temporary file, fsync, rename,
fsync of the folder. A UID that is not a DICOM UID (PS3.5 9.1: digits and dots, at most 64
characters, no empty or zero-led component) is refused before anything is written. The same
SOP Instance received again with the same bytes is stored once; the bytes are kept under a
byte budget, beyond which a store is refused (the caller answers 0xA700, out of resources).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from io import BytesIO
from pathlib import Path

import numpy as np

#: a DICOM UID (PS3.5 9.1): components of digits, no leading zero unless the component is 0
UID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


class StoreRefused(Exception):
    """The instance cannot be stored: ``status`` is the DIMSE status to answer."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def valid_uid(uid: object) -> bool:
    """Whether ``uid`` is a DICOM UID.

    >>> valid_uid("1.2.840.10008.5.1.4.1.1.2"), valid_uid("1.02.3"), valid_uid("../x")
    (True, False, False)
    """
    return isinstance(uid, str) and 0 < len(uid) <= 64 and UID_RE.fullmatch(uid) is not None


def digest(uid: str) -> str:
    """The folder name of a UID: 16 hex digits of its sha256."""
    return hashlib.sha256(uid.encode("ascii")).hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_instance(a: bytes, b: bytes) -> bool:
    """Whether two encodings hold the same instance: the same data elements and the same
    pixels, whatever the transfer syntax (a sender may resend in implicit VR what it first sent
    explicit, PS3.5 A.1/A.2); the file meta (the syntax itself) is left out."""
    import pydicom  # lazy: only when an instance arrives a second time with other bytes

    try:
        da, db = (pydicom.dcmread(BytesIO(x), force=True) for x in (a, b))
        for ds in (da, db):
            ds.decode()
        keys = {e.tag for e in da if e.tag != 0x7FE00010} | {e.tag for e in db
                                                            if e.tag != 0x7FE00010}
        for tag in keys:
            if tag not in da or tag not in db or da[tag].value != db[tag].value:
                return False
        if ("PixelData" in da) != ("PixelData" in db):
            return False
        return "PixelData" not in da or bool(np.array_equal(da.pixel_array, db.pixel_array))
    except Exception:  # noqa: BLE001 - unreadable either way: not the same instance
        return False


#: a full store counts the space on disk again at most this often (seconds): space an operator
#: frees is seen within this time, and a sender retrying a refused store costs no folder walk
RECOUNT_S = 5.0


class InstanceStore:
    """The folder of received instances, with its byte budget."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._bytes = self._used()
        self._counted = time.monotonic()

    def _used(self) -> int:
        total = 0
        for p in self.root.rglob("*.dcm"):
            try:
                total += p.stat().st_size
            except OSError:  # removed while counting
                pass
        return total

    def path_of(self, study: str, series: str, sop: str) -> Path:
        return self.root / digest(study) / digest(series) / f"{digest(sop)}.dcm"

    def put(self, study: str, series: str, sop: str, data: bytes) -> tuple[Path, bool]:
        """Store one instance's bytes (a DICOM file with its meta header); returns its path
        and whether it was new. Raises StoreRefused with the status to answer."""
        for name, uid in (("StudyInstanceUID", study), ("SeriesInstanceUID", series),
                          ("SOPInstanceUID", sop)):
            if not valid_uid(uid):
                raise StoreRefused(f"{name} {str(uid)[:80]!r} is not a DICOM UID", 0xA900)
        path = self.path_of(study, series, sop)
        with self._lock:
            if path.exists():
                old = path.read_bytes()
                if old == data or same_instance(old, data):
                    return path, False
                raise StoreRefused(f"SOP Instance {sop} was received before with other "
                                   "content; the first is kept", 0xA900)
            if self._bytes + len(data) > self.max_bytes and \
                    time.monotonic() - self._counted >= RECOUNT_S:
                self._bytes = self._used()  # space freed since: count it again (at most
                self._counted = time.monotonic()  # every RECOUNT_S: a full store is refused
                # many times a second, and a count walks the whole folder)
            if self._bytes + len(data) > self.max_bytes:
                raise StoreRefused(f"storage full ({self._bytes} of {self.max_bytes} bytes "
                                   "used): raise listen.max_bytes or free OUT/incoming", 0xA700)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            self._bytes += len(data)
        return path, True
