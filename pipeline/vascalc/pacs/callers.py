"""Who may send studies to the node: a caller is admitted by its AE title and its address
together (``--allow AET@HOST``); a DICOM destination's AE title may call from its own host.
DICOM's association request carries only titles (PS3.8 7.1.1.3), which anyone can claim, so
the address is what makes the admission mean something."""

from __future__ import annotations

import socket

from ..errors import UsageError
from .send import AET_RE, Destination


def _addresses(host: str) -> frozenset[str]:
    """Every address a host name or address stands for (the name as given, when it does not
    resolve)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return frozenset({host})
    return frozenset({host, *(str(i[4][0]) for i in infos)})


def callers(allow: list[str], destinations: list[Destination]
            ) -> list[tuple[str, frozenset[str] | None]]:
    """Who may send studies: (AE title, the addresses it may call from, None = any). Each
    ``--allow`` is ``AET@HOST`` or ``AET``; a DICOM destination's AE title may call from its
    own host."""
    out: dict[str, set[str] | None] = {}
    for entry in allow:
        aet, _, host = entry.partition("@")
        aet = aet.strip()
        if not AET_RE.fullmatch(aet):
            raise UsageError(f"--allow {entry!r}: {aet!r} is not an AE title (at most 16 "
                             "characters)", hint="e.g. --allow ORTHANC@10.0.0.5")
        if not host:
            out[aet] = None
        elif out.get(aet, set()) is not None:
            out.setdefault(aet, set()).update(_addresses(host.strip()))  # type: ignore[union-attr]
    for d in destinations:
        if d.aet and out.get(d.aet, set()) is not None:
            out.setdefault(d.aet, set()).update(_addresses(d.host))  # type: ignore[union-attr]
    return [(a, None if h is None else frozenset(h)) for a, h in sorted(out.items())]


def admitted(allowed: list[tuple[str, frozenset[str] | None]], aet: str, address: str) -> bool:
    """Whether ``aet`` calling from ``address`` is allowed.

    >>> rules = [("ORTHANC", frozenset({"10.0.0.5"})), ("CT1", None)]
    >>> admitted(rules, "ORTHANC", "10.0.0.5"), admitted(rules, "ORTHANC", "10.0.0.6")
    (True, False)
    >>> admitted(rules, "CT1", "192.168.1.9"), admitted(rules, "STRANGER", "10.0.0.5")
    (True, False)
    """
    return any(a == aet and (hosts is None or address in hosts) for a, hosts in allowed)
