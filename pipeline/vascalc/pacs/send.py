"""Sending result objects to destinations: a DICOM node by C-STORE (``AET@HOST:PORT``,
pynetdicom) or a DICOMweb server by STOW-RS (``http(s)://.../studies`` root URL, PS3.18
10.5), each item acknowledged one by one into the outbox.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

#: AE titles (PS3.5 6.2: at most 16 characters of the default repertoire, no backslash)
AET_RE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")


@dataclass(frozen=True)
class Destination:
    """Where results go: a DICOM node or a STOW-RS URL (``key`` names it in the outbox)."""

    key: str
    aet: str = ""
    host: str = ""
    port: int = 0
    url: str = ""


def parse_destination(text: str) -> Destination:
    """``AET@HOST:PORT`` or an http(s) STOW-RS URL.

    >>> parse_destination("ORTHANC@127.0.0.1:4242").port
    4242
    >>> parse_destination("http://pacs/dicom-web").url
    'http://pacs/dicom-web'
    """
    if text.startswith(("http://", "https://")):
        return Destination(key=text, url=text.rstrip("/"))
    m = re.fullmatch(r"(.+)@([^:@]+):(\d{1,5})", text)
    if not m or not AET_RE.fullmatch(m.group(1).strip()) or not 0 < int(m.group(3)) < 65536:
        raise UsageError(f"destination {text!r} is neither AET@HOST:PORT (an AE title of at most "
                         "16 characters) nor an http(s) STOW-RS URL",
                         hint="e.g. --send-to ORTHANC@pacs.example.org:4242")
    return Destination(key=text, aet=m.group(1).strip(), host=m.group(2), port=int(m.group(3)))


def send_items(dest: Destination, items: list[tuple[int, str, str]], *, calling_aet: str,
               timeout_s: float, on_ok, on_error) -> None:
    """Send ``items`` (outbox id, path, SOP Instance UID) to ``dest``; ``on_ok(id)`` after each
    acknowledgement, ``on_error(id, message)`` for each item that was not acknowledged."""
    if dest.url:
        for item, path, _ in items:
            try:
                _stow(dest.url, Path(path).read_bytes(), timeout_s)
            except (OSError, urllib.error.URLError, ValueError) as err:
                on_error(item, f"STOW-RS: {err}")
            else:
                on_ok(item)
        return
    _c_store(dest, items, calling_aet=calling_aet, timeout_s=timeout_s, on_ok=on_ok,
             on_error=on_error)


def _stow(root: str, data: bytes, timeout_s: float) -> None:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        root + "/studies", data=body, method="POST",
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                 "Accept": "application/dicom+json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (http(s) only)
        if resp.status not in (200, 202):
            raise ValueError(f"HTTP {resp.status}")


def _c_store(dest: Destination, items, *, calling_aet: str, timeout_s: float, on_ok,
             on_error) -> None:
    import pydicom  # lazy: only the DICOM node
    from pynetdicom import AE  # lazy: only the DICOM node

    datasets = []
    for item, path, _ in items:
        try:
            datasets.append((item, pydicom.dcmread(path)))
        except (OSError, pydicom.errors.InvalidDicomError) as err:
            on_error(item, f"cannot read {path}: {err}")
    if not datasets:
        return
    try:  # a destination that is down: said plainly (and pynetdicom's own path leaks a socket)
        socket.create_connection((dest.host, dest.port), timeout=timeout_s).close()
    except OSError as err:
        for item, _ in datasets:
            on_error(item, f"cannot connect to {dest.key} for an association: {err}")
        return
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for cls in sorted({str(ds.SOPClassUID) for _, ds in datasets}):
        ae.add_requested_context(cls)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.aet)
    if not assoc.is_established:
        for item, _ in datasets:
            on_error(item, f"association with {dest.key} not established (rejected, aborted "
                     "or no answer)")
        return
    try:
        for item, ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is not None and (code == 0 or 0xB000 <= code <= 0xBFFF):
                on_ok(item)  # success, or success with a warning (coercion)
            else:
                on_error(item, f"C-STORE status {'none' if code is None else hex(code)}")
    finally:
        assoc.release()
