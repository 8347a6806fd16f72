"""The Host header names the review server answers to (everything else is refused 403: a page
of another site that resolves its own name to this machine cannot talk to it)."""

from __future__ import annotations

import socket


def host_names(host: str) -> set[str]:
    """The names a browser may put in the Host header for a server bound to ``host``: the
    loopback names for a loopback bind; for a LAN name or address, that name, the machine's
    names and the addresses they resolve to; for a wildcard bind (0.0.0.0, ::) every one of
    them. Anything else is answered 403 (DNS rebinding)."""
    loopback = {"127.0.0.1", "localhost"}
    if host in loopback:
        return loopback
    names = {host, socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(socket.gethostbyname_ex(name)[2])
        except OSError:
            pass
    if host in ("0.0.0.0", "::", ""):
        names |= loopback
    return {n for n in names if n and n not in ("0.0.0.0", "::")}
