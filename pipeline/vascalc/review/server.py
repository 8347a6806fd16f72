"""vascalc review OUT: a local web app where readers label the candidate lesions of a run.

Served by the standard library's threading HTTP server on 127.0.0.1 (by default). Every
server start makes a new token (as Jupyter does); the URL printed carries it, and every API
request must send it (header ``X-Vascalc-Token``, ``Authorization: token ...`` or
``Bearer ...``, ``?token=``, or the cookie the page gets when opened with it): 403 otherwise. The Host
header must name this server (a page of another site cannot reach it by DNS rebinding).
Reads go to OUT/reads.sqlite (:mod:`vascalc.review.store`) before the answer is sent.

Readers are isolated and blinded, as an agreement study needs: every reader gets a token of
their own, the token fixes who reads and writes (a ``reader`` in a body or a query that names
someone else is refused with 403), and no answer shows another reader's labels. Only an
adjudicator (``--adjudicator NAME``, a token of its own) sees every reader's labels and may
look at one reader's work with ``?reader=``; the adjudicator's own labels are kept under the
adjudicator's name, like any reader's.

API (JSON; the page uses it, scripts and tests can too):

- ``GET /api/config``: labels (name, title, class, key, colour), the reader, risk bounds;
- ``GET /api/cases``: every case with its status, lesion count and this reader's progress;
- ``GET /api/cases/{case_id}``: the scan's shape and spacing, slices with lesions;
- ``GET /api/cases/{case_id}/lesions``: each lesion (``lesion_id`` as in lesions.csv) with
  its slices, Agatston, volume, suggested label, this reader's ``label`` and slice labels,
  and (for the adjudicator only) ``labels``: every reader's label of the lesion;
- ``GET /api/cases/{case_id}/scores``: this reader's per-label and coronary scores;
- ``GET /api/cases/{case_id}/image/{k}`` and ``.../lesionmap/{k}``: slice k as little-endian
  int16 HU and int32 lesion ids (0 = none), row by row;
- ``PUT /api/cases/{case_id}/lesions/{lesion_id}`` with ``{"label": "LAD"}`` (an empty
  label clears the read), and ``.../lesions/{lesion_id}/slices/{k}`` for one slice;
- ``PUT /api/cases/{case_id}/done`` with ``{"done": true}``: refused (409, with
  ``needs_confirmation`` and the unlabelled amount) while calcium stays unlabelled, unless the
  reader confirms in the same request that what remains is not coronary
  (``{"done": true, "rest_not_coronary": true}``, kept with the mark and its time); refused
  (409) while a read is stale.

A write (label or done) on a case whose run was redone under the server (`vascalc run` into
the served OUT: another lesion set in result.json) is refused with 409 and ``reload`` (the
server reopens the run; the page reloads).

Unknown case, lesion or slice: 404; an unknown label: 400 with the allowed labels; a failed
case: 409; no or a wrong token, or a reader the token is not for: 403.
"""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..results.document import scan_of
from ..values import json_depth
from .cases import reader_scores
from .hosts import host_names
from .service import CACHED_VIEWS, HttpError, Identity, ReviewApp

__all__ = ["CACHED_VIEWS", "HttpError", "Identity", "ReviewApp", "make_server", "url_of",
           "urls_of"]

PAGE = Path(__file__).with_name("page.html")


class _Handler(BaseHTTPRequestHandler):
    app: ReviewApp
    port: int
    hosts: set[str]
    server_version = "vascalc-review"

    def log_message(self, fmt: str, *args: Any) -> None:  # no request log (ids in paths)
        return

    def _page_cookie(self) -> str | None:
        """Opened with a right token: a cookie that carries it (this port's, same-site only),
        so the page and a browser session need not repeat it."""
        given = (parse_qs(urlsplit(self.path).query).get("token") or [""])[0]
        if given and self.app.identity(given) is not None:
            return f"vascalc_token_{self.port}={given}; HttpOnly; SameSite=Strict; Path=/"
        return None

    def _send(self, status: int, body: bytes, ctype: str, cookie: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        # no other site may frame the page (clickjacking a reader into labelling)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def _guard(self) -> tuple[str, dict[str, list[str]], Identity | None]:
        if (self.headers.get("Host") or "") not in self.hosts:
            raise HttpError(403, "this server answers only to its own address (Host header)")
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        who = self.app.identity(self._token(query))
        if url.path.startswith("/api/") and who is None:
            raise HttpError(403, "missing or wrong token: open the URL vascalc review "
                                 "printed for you (it carries your token)")
        return url.path, query, who

    def _token(self, query: dict[str, list[str]]) -> str:
        """The token a request carries: X-Vascalc-Token, Authorization (token or Bearer), the
        query's token=, or the cookie the page set when it was opened with the token."""
        auth = (self.headers.get("Authorization") or "").split()
        if len(auth) == 2 and auth[0].lower() in ("token", "bearer"):
            return auth[1]
        cookies = SimpleCookie(self.headers.get("Cookie") or "")
        cookie = cookies.get(f"vascalc_token_{self.port}")
        return (self.headers.get("X-Vascalc-Token") or (query.get("token") or [""])[0]
                or (cookie.value if cookie else ""))

    def _handle(self, method: str) -> None:
        try:
            path, query, who = self._guard()
            if path in ("/", "/index.html"):
                self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8",
                           cookie=self._page_cookie())
                return
            if who is None:
                raise HttpError(404, f"no such resource {path!r}")
            if method == "GET":
                given = query.get("reader")
                self._get(path, self.app.viewer(given[0] if given else None, who), who)
            else:
                self._put(path, who)
        except HttpError as err:
            self._json(err.status, {"error": str(err), **err.extra})
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, the server keeps serving
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._handle("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self._json(405, {"error": "use GET or PUT"})

    def _get(self, path: str, reader: str, who: Identity) -> None:
        app = self.app
        if path == "/api/config":
            self._json(200, {"reader": reader, "me": who.reader, "adjudicator": who.adjudicator,
                             "readers": app.store.readers() if who.adjudicator else [who.reader],
                             "labels": [{"name": lab.name, "title": lab.title or lab.name,
                                         "class": lab.label_class, "key": lab.key,
                                         "colour": lab.colour} for lab in app.config.review.labels],
                             "risk_upper_bounds": list(app.config.risk.agatston_upper_bounds)})
            return
        if path == "/api/cases":
            self._json(200, app.case_list(reader))
            return
        m = re.fullmatch(r"/api/cases/([^/]+)(?:/(lesions|scores|image|lesionmap)(?:/([^/]+))?)?",
                         path)
        if not m:
            raise HttpError(404, f"no such resource {path!r}")
        cid, what, arg = m.groups()
        if what is None:
            view = app.view(cid)
            self._json(200, {"case_id": cid, "shape": list(view.hu.shape),
                             "spacing_mm": list(view.spacing_mm),
                             "lesion_slices": sorted({k for (_, k) in view.parts}),
                             "scope": scan_of(app.doc(cid)).get("scope") or ""})
        elif what == "lesions" and arg is None:
            self._json(200, app.lesions(cid, reader, adjudicator=who.adjudicator))
        elif what == "scores" and arg is None:
            self._json(200, reader_scores(app.view(cid), app.store.reads(reader, cid), app.config))
        elif what in ("image", "lesionmap") and arg is not None:
            view = app.view(cid)
            if not re.fullmatch(r"[0-9]{1,9}", arg) or int(arg) >= view.hu.shape[0]:
                raise HttpError(404, f"case {cid} has no slice {arg!r}")
            data = (view.hu if what == "image" else view.lesion_labels)[int(arg)]
            self._send(200, data.astype("<i2" if what == "image" else "<i4").tobytes(),
                       "application/octet-stream")
        else:
            raise HttpError(404, f"no such resource {path!r}")

    def _body(self) -> dict[str, Any]:
        """The request's JSON object: a Content-Length from 0 to MAX_BODY bytes (a negative or
        missing length is not read to the end of the stream), nested at most
        MAX_BODY_DEPTH deep, flat values only (a label is a string); else 400."""
        raw_length = self.headers.get("Content-Length")
        try:
            n = int(raw_length) if raw_length not in (None, "") else 0
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if not 0 <= n <= MAX_BODY:
            raise HttpError(400 if n < 0 else 413, f"Content-Length {n} is outside 0 to "
                            f"{MAX_BODY} bytes")
        raw = self.rfile.read(n) if n else b"{}"
        if json_depth(raw) > MAX_BODY_DEPTH:
            raise HttpError(400, f"the body is nested deeper than {MAX_BODY_DEPTH} levels")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        bad = [k for k, v in body.items() if isinstance(v, (dict, list))]
        if bad:
            raise HttpError(400, f"{bad[0]!r} must be a string, a number or true/false")
        return body

    def _put(self, path: str, who: Identity) -> None:
        body = self._body()
        m = re.fullmatch(r"/api/cases/([^/]+)/lesions/([^/]+)(?:/slices/([^/]+))?", path)
        if m:
            self._json(200, self.app.put(m.group(1), m.group(2), m.group(3), body, who))
            return
        m = re.fullmatch(r"/api/cases/([^/]+)/done", path)
        if m:
            self._json(200, self.app.mark_done(m.group(1), body, who))
            return
        raise HttpError(404, f"no such resource {path!r}")


#: a request body larger than this is refused (a label is a few bytes)
MAX_BODY = 65536
#: JSON nesting deeper than this is refused before it is parsed
MAX_BODY_DEPTH = 8
#: seconds a connection may stay silent before it is closed (a half-sent request would
#: hold a thread for ever)
REQUEST_TIMEOUT_S = 30


def make_server(app: ReviewApp, *, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """The HTTP server (not yet serving); its port is the one bound (port 0: any free one)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    bound = server.server_address[1]
    names = host_names(host)
    handler = type("Handler", (_Handler,), {"app": app, "port": bound,
                                            "hosts": {f"{h}:{bound}" for h in names},
                                            "timeout": REQUEST_TIMEOUT_S})
    server.RequestHandlerClass = handler
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer, app: ReviewApp, reader: str | None = None) -> str:
    """The URL that opens the page as ``reader`` (default: the first reader); the page takes
    the token out of the address bar once it has it."""
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    return f"http://{host}:{port}/?token={app.token_of(reader or app.reader)}"


def urls_of(server: ThreadingHTTPServer, app: ReviewApp) -> list[tuple[Identity, str]]:
    """Every reader's (and the adjudicator's) own URL."""
    return [(who, url_of(server, app, who.reader)) for who in app.identities.values()]
