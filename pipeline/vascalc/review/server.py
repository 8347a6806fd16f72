"""vascalc review OUT: a local web app where readers label the candidate lesions of a run.

Served by the standard library's threading HTTP server on 127.0.0.1 (by default). Every
server start makes a new token (as Jupyter does); the URL printed carries it, and every API
request must send it (header ``X-Vascalc-Token``, ``Authorization: token ...`` or
``Bearer ...``, ``?token=``, or the cookie the page gets when opened with it): 403 otherwise. The Host
header must name this server (a page of another site cannot reach it by DNS rebinding).
Reads go to OUT/reads.sqlite (:mod:`vascalc.review.store`) before the answer is sent.

API (JSON; the page uses it, scripts and tests can too):

- ``GET /api/config``: labels (name, title, class, key, colour), the reader, risk bounds;
- ``GET /api/cases``: every case with its status, lesion count and this reader's progress;
- ``GET /api/cases/{case_id}``: the scan's shape and spacing, slices with lesions;
- ``GET /api/cases/{case_id}/lesions``: each lesion (``lesion_id`` as in lesions.csv) with
  its slices, Agatston, volume, suggested label, this reader's ``label`` and slice labels,
  and ``labels``: every reader's label of the lesion;
- ``GET /api/cases/{case_id}/scores``: this reader's per-label and coronary scores;
- ``GET /api/cases/{case_id}/image/{k}`` and ``.../lesionmap/{k}``: slice k as little-endian
  int16 HU and int32 lesion ids (0 = none), row by row;
- ``PUT /api/cases/{case_id}/lesions/{lesion_id}`` with ``{"label": "LAD", "reader": "r1"}``
  (an empty label clears the read), and ``.../lesions/{lesion_id}/slices/{k}`` for one slice;
- ``PUT /api/cases/{case_id}/done`` with ``{"done": true, "reader": "r1"}``.

Unknown case, lesion or slice: 404; an unknown label: 400 with the allowed labels; a failed
case: 409; no or a wrong token: 403. ``?reader=`` chooses the reader of GETs.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
from collections import OrderedDict
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..config.schema import Config
from ..errors import VascalcError
from ..results.document import is_ok, scan_of
from ..values import json_depth
from .cases import (
    CaseView,
    lesion_ids,
    lesion_signature,
    load_view,
    open_run,
    reader_scores,
    stale_reads,
)
from .hosts import host_names
from .store import Reads, ReadStore, check_reader

PAGE = Path(__file__).with_name("page.html")
#: case views kept in memory (a 512 x 512 x 300 scan takes about 240 MB with its labels)
CACHED_VIEWS = 2


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.extra = status, extra


class ReviewApp:
    """The state behind the server: the run, its cases, the reads, a small view cache."""

    def __init__(self, out: Path, *, reader: str):
        self.out = Path(out)
        self.reader = check_reader(reader)
        opened = open_run(self.out)
        self.config: Config = opened.config
        self.cases, self.docs = opened.cases, opened.docs
        self.store = ReadStore(self.out)
        self.token = secrets.token_urlsafe(24)
        self.labels = self.config.review.by_name()
        self._views: OrderedDict[str, CaseView] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    # --- data ---------------------------------------------------------------------------

    def doc(self, case_id: str) -> dict[str, Any]:
        if case_id not in self.docs:
            raise HttpError(404, f"no case {case_id!r} in this run")
        return self.docs[case_id]

    def view(self, case_id: str) -> CaseView:
        doc = self.doc(case_id)
        if not is_ok(doc):
            scan = scan_of(doc)
            raise HttpError(409, f"case {case_id} failed ({scan['error_code']}): "
                                 f"{scan['error']}")
        if case_id not in self.cases:
            raise HttpError(409, f"case {case_id} is no longer among the run's inputs")
        with self._lock:
            if case_id in self._views:
                self._views.move_to_end(case_id)
                return self._views[case_id]
            loading = self._loading.setdefault(case_id, threading.Lock())
        with loading:  # one load per case, however many requests ask at once
            with self._lock:
                if case_id in self._views:
                    return self._views[case_id]
            try:
                view = load_view(self.cases[case_id], self.config, doc)
            except VascalcError as err:
                raise HttpError(409, str(err)) from None
            with self._lock:
                self._views[case_id] = view
                while len(self._views) > CACHED_VIEWS:
                    self._views.popitem(last=False)
            return view

    def case_list(self, reader: str) -> list[dict[str, Any]]:
        out = []
        for cid, doc in self.docs.items():
            ids = lesion_ids(doc)
            reads = self.store.reads(reader, cid)
            done_ids = set(reads.lesion) | {les for les, _ in reads.slices}
            scan = scan_of(doc)
            out.append({"case_id": cid, "status": scan["status"],
                        "patient_id": scan.get("patient_id") or "",
                        "n_lesions": len(ids), "labelled": len(done_ids & set(ids)),
                        "progress": (len(done_ids & set(ids)) / len(ids)) if ids else 1.0,
                        "done": reads.done, "scope": scan.get("scope") or ""})
        return out

    def lesions(self, case_id: str, reader: str) -> list[dict[str, Any]]:
        view = self.view(case_id)
        others = {r: self.store.reads(r, case_id) for r in self.store.readers()}
        mine = others.get(reader) or Reads()
        stale = set(stale_reads(mine, self.doc(case_id)))
        rows = []
        for le in view.lesions:
            lid = le["lesion_id"]
            rows.append({**le, "label": mine.lesion.get(lid, ""),
                         "slice_labels": {str(k): lab for (les, k), lab in mine.slices.items()
                                          if les == lid},
                         "parts": [{"slice": k, "agatston": view.parts[(lid, k)][0],
                                    "volume_mm3": view.parts[(lid, k)][1]}
                                   for k in le["slices"]],
                         "labels": {r: rd.lesion[lid] for r, rd in others.items()
                                    if rd.lesion.get(lid)},
                         # this reader's read was made on another lesion of that number
                         "read_on_other_lesion": lid in stale})
        return rows

    def put(self, case_id: str, lesion_id: str, slice_index: str | None,
            body: dict[str, Any]) -> dict[str, Any]:
        view = self.view(case_id)
        if not re.fullmatch(r"[0-9]{1,9}", lesion_id) or not view.slices_of(int(lesion_id)):
            raise HttpError(404, f"case {case_id} has no lesion {lesion_id!r}")
        lid = int(lesion_id)
        k = None
        if slice_index is not None:
            if not re.fullmatch(r"[0-9]{1,9}", slice_index) or int(slice_index) not in \
                    view.slices_of(lid):
                raise HttpError(404, f"lesion {lid} of case {case_id} is not on slice "
                                     f"{slice_index!r} (its slices: {view.slices_of(lid)})")
            k = int(slice_index)
        label = self.label(body.get("label"))
        reader = self.reader_name(body.get("reader"))
        rid = self.store.add(reader=reader, case_id=case_id, lesion_id=lid, slice_index=k,
                             label=label, signature=lesion_signature(self.doc(case_id), lid))
        return {"ok": True, "read_id": rid,
                "scores": reader_scores(view, self.store.reads(reader, case_id), self.config)}

    def label(self, given: Any) -> str:
        """A label's name from its name, or from its name or title written another way
        ('aortic valve', 'noise/artefact', 'lad'); '' clears. Anything else: 400."""
        if given == "" or given in self.labels:
            return given
        if isinstance(given, str):
            key = _norm(given)
            hits = {lab.name for lab in self.labels.values()
                    if key in (_norm(lab.name), _norm(lab.title or lab.name))}
            if len(hits) == 1:
                return hits.pop()
        raise HttpError(400, f"unknown label {given!r}; allowed: {', '.join(self.labels)}",
                        allowed=list(self.labels))

    def reader_name(self, given: Any) -> str:
        name = self.reader if given in (None, "") else given
        try:
            return check_reader(name)
        except ValueError as err:
            raise HttpError(400, str(err)) from None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


class _Handler(BaseHTTPRequestHandler):
    app: ReviewApp
    port: int
    hosts: set[str]
    server_version = "vascalc-review"

    def log_message(self, fmt: str, *args: Any) -> None:  # no request log (ids in paths)
        return

    def _page_cookie(self) -> str | None:
        """Opened with the right token: a cookie that carries it (this port's, same-site only),
        so the page and a browser session need not repeat it."""
        given = (parse_qs(urlsplit(self.path).query).get("token") or [""])[0]
        if given and hmac.compare_digest(given.encode(), self.app.token.encode()):
            return (f"vascalc_token_{self.port}={self.app.token}; HttpOnly; SameSite=Strict; "
                    "Path=/")
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

    def _guard(self) -> tuple[str, dict[str, list[str]]]:
        if (self.headers.get("Host") or "") not in self.hosts:
            raise HttpError(403, "this server answers only to its own address (Host header)")
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path.startswith("/api/"):
            if not hmac.compare_digest(self._token(query).encode(), self.app.token.encode()):
                raise HttpError(403, "missing or wrong token: open the URL vascalc review "
                                     "printed (it carries the token)")
        return url.path, query

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
            path, query = self._guard()
            given = query.get("reader")
            reader = self.app.reader_name(given[0] if given else None)
            if method == "GET":
                self._get(path, reader)
            else:
                self._put(path)
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

    def _get(self, path: str, reader: str) -> None:
        app = self.app
        if path in ("/", "/index.html"):
            self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8",
                       cookie=self._page_cookie())
            return
        if path == "/api/config":
            self._json(200, {"reader": reader, "readers": app.store.readers(),
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
            self._json(200, app.lesions(cid, reader))
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

    def _put(self, path: str) -> None:
        body = self._body()
        m = re.fullmatch(r"/api/cases/([^/]+)/lesions/([^/]+)(?:/slices/([^/]+))?", path)
        if m:
            self._json(200, self.app.put(m.group(1), m.group(2), m.group(3), body))
            return
        m = re.fullmatch(r"/api/cases/([^/]+)/done", path)
        if m:
            self.app.doc(m.group(1))
            if not isinstance(body.get("done"), bool):
                raise HttpError(400, "give {\"done\": true or false}")
            self.app.store.mark(reader=self.app.reader_name(body.get("reader")),
                                case_id=m.group(1), done=body["done"])
            self._json(200, {"ok": True})
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


def url_of(server: ThreadingHTTPServer, app: ReviewApp) -> str:
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    return f"http://{host}:{port}/?token={app.token}&reader={app.reader}"
