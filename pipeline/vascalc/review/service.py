"""The review app's state: the run, its cases, the readers' tokens and reads, the case views.

:mod:`vascalc.review.server` serves it over HTTP; tests and scripts can drive it directly.
Readers are isolated and blinded (an agreement study needs independent reads): each
reader's token fixes who they are, and only the adjudicator sees the others' labels.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config.schema import Config
from ..errors import VascalcError
from ..results.document import is_ok, read_result, result_path, scan_of
from .cases import (
    CaseView,
    lesion_ids,
    lesion_set_id,
    lesion_signature,
    load_view,
    open_run,
    part_signature,
    reader_scores,
    stale_reads,
)
from .store import ReadStore, check_reader

#: case views kept in memory (a 512 x 512 x 300 scan takes about 240 MB with its labels)
CACHED_VIEWS = 2


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.extra = status, extra


@dataclass(frozen=True)
class Identity:
    """Who a token is: a reader, or the adjudicator (who also sees the others' labels)."""

    reader: str
    adjudicator: bool = False


class ReviewApp:
    """The state behind the server: the run, its cases, the reads, a small view cache, and
    one token per reader (and per adjudicator)."""

    def __init__(self, out: Path, *, reader: str | None = None,
                 readers: Sequence[str] = (), adjudicator: str | None = None):
        self.out = Path(out)
        names = [check_reader(r) for r in ([reader] if reader else []) + list(readers)]
        if adjudicator is not None:
            check_reader(adjudicator)
        if not names and adjudicator is None:
            raise ValueError("name at least one reader (--reader) or an adjudicator")
        everyone = names + ([adjudicator] if adjudicator is not None else [])
        if len(set(everyone)) != len(everyone):
            raise ValueError("each reader and the adjudicator need a name of their own")
        self.reader = names[0] if names else str(adjudicator)
        self._lock = threading.Lock()
        self._views: OrderedDict[str, CaseView] = OrderedDict()
        self._open()
        self.store = ReadStore(self.out)
        #: token -> who it is (a new set each start, as Jupyter's)
        self.identities: dict[str, Identity] = {secrets.token_urlsafe(24): Identity(n)
                                                for n in names}
        if adjudicator is not None:
            self.identities[secrets.token_urlsafe(24)] = Identity(adjudicator, True)
        self.token = self.token_of(self.reader)
        self._loading: dict[str, threading.Lock] = {}

    def _open(self) -> None:
        """(Re)open the run: its config, cases and results, and the identity of each case's
        lesion set as loaded (:func:`vascalc.review.cases.lesion_set_id`); views dropped."""
        opened = open_run(self.out)
        with self._lock:
            self.config: Config = opened.config
            self.cases, self.docs = opened.cases, opened.docs
            self.labels = self.config.review.by_name()
            self._loaded = {cid: (lesion_set_id(doc), _stat(self.out, cid))
                            for cid, doc in self.docs.items()}
            self._views.clear()

    def check_current(self, case_id: str) -> None:
        """Refuse a write (409) when the case's result on disk is no longer the lesion set
        this server loaded: `vascalc run` redid the run under it, so a label or done mark
        would name lesions that no longer exist (rescore would refuse them, and the reading
        would be lost). The server then reopens the run: a reload of the page shows the new
        lesions. A rewrite that keeps the lesion set (rescore) is not a change."""
        self.doc(case_id)
        loaded, stat = self._loaded.get(case_id, ("", None))
        now = _stat(self.out, case_id)
        if now == stat and now is not None:
            return
        try:
            doc = read_result(result_path(self.out, case_id))
        except VascalcError:
            doc = None
        if doc is not None and lesion_set_id(doc) == loaded:
            with self._lock:
                self._loaded[case_id] = (loaded, now)
            return
        try:
            self._open()
        except VascalcError as err:
            raise HttpError(409, f"the run was redone since this page loaded and cannot be "
                                 f"opened now ({err}); reload the page in a moment",
                            reload=True) from None
        raise HttpError(409, f"the run was redone since this page loaded (case {case_id} has "
                             "another lesion set now); nothing was saved: reload the page",
                        reload=True)

    def warm_up(self) -> None:
        """Load the case a reader opens first (the first scored case the first reader has
        not marked done) before anyone asks: the page's first load then finds it ready (it
        rescores the case, about a second on a 512 x 512 CT with a hundred masks). Errors
        are left for the request that asks for the case to report."""
        for cid, doc in self.docs.items():
            if is_ok(doc) and cid in self.cases and not self.store.reads(self.reader, cid).done:
                try:
                    self.view(cid)
                except Exception:  # noqa: BLE001 - the page's own request reports it
                    pass
                return

    def token_of(self, reader: str) -> str:
        """The token of a reader (or of the adjudicator) of this server."""
        return next(t for t, who in self.identities.items() if who.reader == reader)

    def identity(self, token: str) -> Identity | None:
        """Who a token is, compared in constant time; None for no or a wrong token."""
        found = None
        for known, who in self.identities.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                found = who
        return found

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

    def lesions(self, case_id: str, reader: str, *, adjudicator: bool = False,
                ) -> list[dict[str, Any]]:
        """The case's lesions with ``reader``'s labels; every reader's labels of each lesion
        (``labels``) only for the adjudicator (a reader is blinded to the others)."""
        view = self.view(case_id)
        others = ({r: self.store.reads(r, case_id) for r in self.store.readers()}
                  if adjudicator else {})
        mine = others[reader] if reader in others else self.store.reads(reader, case_id)
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
                         **({"labels": {r: rd.lesion[lid] for r, rd in others.items()
                                        if rd.lesion.get(lid)}} if adjudicator else {}),
                         # this reader's read was made on another lesion of that number
                         "read_on_other_lesion": lid in stale})
        return rows

    def put(self, case_id: str, lesion_id: str, slice_index: str | None,
            body: dict[str, Any], who: Identity) -> dict[str, Any]:
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
        reader = self.writer(body.get("reader"), who)
        self.check_current(case_id)
        doc = self.doc(case_id)
        signature = (lesion_signature(doc, lid) if k is None else part_signature(doc, lid, k))
        if not signature:
            raise HttpError(409, f"case {case_id}: its result records no slice positions "
                                 "(written by an earlier vascalc), so a slice read could not "
                                 "be tied to its slice; run vascalc run again to label slices")
        rid = self.store.add(reader=reader, case_id=case_id, lesion_id=lid, slice_index=k,
                             label=label, signature=signature)
        return {"ok": True, "read_id": rid,
                "scores": reader_scores(view, self.store.reads(reader, case_id), self.config)}

    def mark_done(self, case_id: str, body: dict[str, Any], who: Identity) -> dict[str, Any]:
        """Mark the case done (or not). Done is refused (409) while reads are stale, and
        while calcium stays unlabelled unless the body confirms, in one deliberate step,
        that what remains is not coronary (``"rest_not_coronary": true``); the confirmation
        is kept with the mark and its time in reads.sqlite, and the unlabelled amount (by
        the case path's arithmetic) goes with the answer."""
        self.doc(case_id)
        done, confirm = body.get("done"), body.get("rest_not_coronary", False)
        if not isinstance(done, bool):
            raise HttpError(400, "give {\"done\": true or false}")
        if not isinstance(confirm, bool):
            raise HttpError(400, "rest_not_coronary must be true or false")
        reader = self.writer(body.get("reader"), who)
        self.check_current(case_id)
        rest = {"unlabelled_agatston": None, "unlabelled_volume_mm3": 0.0}
        if done:
            view, doc = self.view(case_id), self.doc(case_id)
            reads = self.store.reads(reader, case_id)
            stale = stale_reads(reads, doc)
            if stale:
                raise HttpError(409, f"case {case_id}: the reads of lesion(s) {stale[:5]} were "
                                     "made on other lesions than these (the run or the series "
                                     "changed): label them again, then mark the case done",
                                stale=stale)
            scores = reader_scores(view, replace(reads, done=True, rest_confirmed_at=""),
                                   self.config)
            rest = {k: scores[k] for k in rest}
            left = scores["parts"] - scores["labelled_parts"]
            if scores["unlabelled_volume_mm3"] > 0 and not confirm:
                ag = scores["unlabelled_agatston"]
                amount = (f"Agatston {ag:,.1f}, " if ag is not None else "") + \
                    f"volume {scores['unlabelled_volume_mm3']:,.1f} mm3"
                raise HttpError(409, f"case {case_id}: {left} of {scores['parts']} lesion parts "
                                     f"are unlabelled ({amount}); label them, or confirm that "
                                     "none of it is coronary (mark done with "
                                     "\"rest_not_coronary\": true)",
                                needs_confirmation=True, unlabelled_parts=left, **rest)
            confirm = confirm and scores["unlabelled_volume_mm3"] > 0
        at = self.store.mark(reader=reader, case_id=case_id, done=done,
                             rest_not_coronary=done and confirm)
        return {"ok": True, "done": done, "at": at,
                "rest_confirmed_not_coronary": bool(done and confirm), **rest}

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

    def writer(self, given: Any, who: Identity) -> str:
        """The reader a change is written as: always the token's own (a body naming another
        reader is refused, the adjudicator's included)."""
        if given not in (None, "", who.reader):
            raise HttpError(403, f"this token is {who.reader!r}'s: it cannot write as "
                                 f"{given!r} (each reader opens their own URL)")
        return who.reader

    def viewer(self, given: Any, who: Identity) -> str:
        """Whose reads a GET shows: the token's own reader; another's only for the
        adjudicator (a reader is blinded to the others)."""
        if given in (None, "", who.reader):
            return who.reader
        if not who.adjudicator:
            raise HttpError(403, f"this token is {who.reader!r}'s: other readers' reads are "
                                 "shown only to the adjudicator (vascalc review --adjudicator)")
        try:
            return check_reader(given)
        except ValueError as err:
            raise HttpError(400, str(err)) from None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _stat(out: Path, case_id: str) -> tuple[int, int, int] | None:
    """What changes when result.json is written again (inode, size, mtime), None if gone."""
    try:
        st = result_path(out, case_id).stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
