"""``vascalc listen``: a DICOM node (C-STORE SCP, pynetdicom) that receives studies, scores
each when it is complete and sends the results back into the same study.

- Associations are accepted only from the calling AE titles it was told about (its
  destinations and ``allow``); any other caller is rejected at association.
- Every instance is stored durably before Success is answered (:mod:`.store`).
- A study is complete when no association that brought it is open and nothing arrived for it
  for ``listen.quiet_s``; the ranker (:mod:`.ranker`) then chooses its series, written with
  the reason for every series into the study's record (``OUT/node.sqlite``, ``vascalc listen``
  prints it), and the series is scored by the case path of ``vascalc run`` into
  ``OUT/studies/<study>/`` (the same tables, reports and provenance).
- The result objects (:mod:`.objects`) are queued for every destination in the outbox
  (:mod:`.outbox`) and sent with retries and back-off; a destination that refuses is recorded
  per item and never blocks the others.
- Logs name studies by a digest of the UID, never the patient.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..config.schema import Config
from ..errors import VascalcError
from ..files import write_atomic
from ..outputs.tables import to_csv
from .callers import admitted, callers
from .objects import case_objects
from .outbox import NodeDB
from .send import Destination, send_items
from .store import InstanceStore, StoreRefused, digest
from .studies import reads_state, reread_study, score_study

log = logging.getLogger("vascalc.pacs")

#: the columns of NODE/studies.csv
STATUS_COLUMNS = ["study", "state", "instances", "series_chosen", "why", "destination", "sent",
                  "pending", "failed", "last_error"]


def send_due(db: NodeDB, destinations: dict[str, Destination], config: Config,
             ae_title: str) -> None:
    """Send every outbox item that is due, destination by destination; a destination that
    fails gets its items back with a later try, and never holds up the others."""
    lc = config.listen
    for key, items in db.due().items():
        dest = destinations.get(key)
        if dest is None:
            for item, _, _ in items:
                db.failed(item, f"destination {key} is not configured any more",
                          base_s=lc.retry_base_s, max_s=lc.retry_max_s, max_attempts=1)
            continue

        def failed(item: int, message: str, key: str = key) -> None:
            log.warning("send to %s failed: %s", key, message)
            db.failed(item, message, base_s=lc.retry_base_s, max_s=lc.retry_max_s,
                      max_attempts=lc.max_attempts)

        send_items(dest, items, calling_aet=ae_title, timeout_s=lc.timeout_s, on_ok=db.acked,
                   on_error=failed)


def send_run(out: Path, destinations: list[Destination], config: Config, *,
             cases: list[str] | None = None, ae_title: str = "VASCALC") -> list[dict[str, Any]]:
    """Send a finished run's result objects (all cases, or ``cases``) through the outbox
    ``OUT/outbox.sqlite`` until each is acknowledged or out of attempts; returns the items."""
    folders = sorted(p for p in (Path(out) / "cases").glob("*") if p.is_dir())
    if cases:
        missing = sorted(set(cases) - {p.name for p in folders})
        if missing:
            raise VascalcError(f"no case {', '.join(missing)} in {out}")
        folders = [p for p in folders if p.name in cases]
    db = NodeDB(Path(out) / "outbox.sqlite")
    try:
        keys = [d.key for d in destinations]
        sops: set[str] = set()
        for folder in folders:
            study, items = case_objects(folder)
            if items:
                db.queue(study, items, keys)
                sops |= {s for _, s in items}
        if not sops:
            raise VascalcError(f"{out} holds no result objects to send",
                               hint="run vascalc run with --report first")
        while db.pending():
            send_due(db, {d.key: d for d in destinations}, config, ae_title)
            if db.pending():
                time.sleep(0.2)
        return [r for r in db.outbox() if r["sop_uid"] in sops and r["destination"] in keys]
    finally:
        db.close()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


#: how often the node looks for reads that changed in the studies it scored (seconds)
READS_CHECK_S = 2.0


class Node:
    """The running node: the SCP, the scoring pool and the sender."""

    def __init__(self, out: Path, *, ae_title: str, port: int, destinations: list[Destination],
                 allow: list[str], config: Config, host: str = "127.0.0.1",
                 reread: Callable[[Path], dict[str, Any] | None] | None = None):
        self.out, self.config, self.lc = Path(out), config, config.listen
        self.ae_title, self.port, self.host = ae_title, port, host
        self.destinations = {d.key: d for d in destinations}
        self.callers = callers(allow, destinations)
        #: rescores a study's finished reads (vascalc.review.rescore.rescore_finished); None:
        #: reads in the node's studies are not watched
        self.reread = reread
        self.allowed = sorted({aet for aet, _ in self.callers})
        self.out.mkdir(parents=True, exist_ok=True)
        self.db = NodeDB(self.out / "node.sqlite")
        self.db.recover()  # a study being scored when the node was killed is scored again
        self.store = InstanceStore(self.out / "incoming", self.lc.max_bytes)
        self._open: dict[int, set[str]] = {}  # association id -> studies it brought
        self._busy: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self.lc.workers, thread_name_prefix="score")
        self._server: Any = None
        self._reads_checked = 0.0
        self._reads_seen: dict[str, tuple[int | None, ...]] = {}  # study -> reads files' mtimes

    # -- receiving -------------------------------------------------------------------------
    def _on_store(self, event) -> int:
        ds = event.dataset
        study, series, sop = (str(ds.get(k, "")) for k in
                              ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        try:
            path, new = self.store.put(study, series, sop, bytes(event.encoded_dataset()))
        except StoreRefused as err:
            log.warning("store refused (status %s): %s", hex(err.status), err)
            return err.status
        self.db.received(study, str(path.parent.parent), new)
        with self._lock:
            self._open.setdefault(id(event.assoc), set()).add(study)
        return 0x0000

    def _on_closed(self, event) -> None:
        with self._lock:
            studies = self._open.pop(id(event.assoc), set())
        for study in studies:  # the quiet period starts when the association ends
            self.db.touch(study)

    def start(self) -> None:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt  # lazy: only the DICOM node
        from pynetdicom.presentation import AllStoragePresentationContexts  # lazy: as above

        ae = AE(ae_title=self.ae_title)
        ae.require_calling_aet = self.allowed
        ae.maximum_associations = max(4, 2 * self.lc.workers)
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = self.lc.timeout_s
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification: a PACS's echo test
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None  # every storage context names its class
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store),
                               (evt.EVT_RELEASED, self._on_closed),
                               (evt.EVT_ABORTED, self._on_closed),
                               (evt.EVT_REQUESTED, self._on_requested)]
        self._server = ae.start_server((self.host, self.port), block=False,
                                       evt_handlers=handlers)
        log.info("listening as %s on %s:%d; callers allowed: %s", self.ae_title, self.host,
                 self.port, self.callers_text())
        for aet, hosts in self.callers:
            if hosts is None:
                log.warning("caller %s is admitted from any address: give --allow %s@HOST",
                            aet, aet)

    def callers_text(self) -> str:
        return ", ".join(f"{a}@{'/'.join(sorted(h))}" if h is not None else f"{a} (any address)"
                         for a, h in self.callers)

    def _on_requested(self, event) -> None:
        """Admit a caller by its AE title and its address together (a PACS's AE title
        claimed from another machine is refused: A-ASSOCIATE-RJ, calling AE title not
        recognised)."""
        assoc = event.assoc
        aet = str(assoc.requestor.primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        if not admitted(self.callers, aet, address):
            log.warning("association refused: calling AE title %s from %s is not allowed",
                        aet[:16], address)
            assoc.acse.send_reject(0x01, 0x01, 0x03)

    def stop_soon(self) -> None:
        """Ask the serving loop to end (a signal handler may call it)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        self._pool.shutdown(wait=True)
        self.db.close()

    # -- scoring and sending ---------------------------------------------------------------
    def _open_studies(self) -> set[str]:
        with self._lock:
            return set().union(*self._open.values()) if self._open else set()

    def step(self) -> None:
        """One turn of the loop: start scoring the complete studies, send what is due."""
        with self._lock:
            for study, fut in list(self._busy.items()):
                if fut.done():
                    del self._busy[study]
            busy = set(self._busy)
        quiet = self.db.quiet_studies(self.lc.quiet_s, busy | self._open_studies())
        records = {st["study_uid"]: st["record"] for st in self.db.studies()} if quiet else {}
        for study, folder in quiet:
            previous = records.get(study, {})
            self.db.set_study(study, "scoring", previous)
            with self._lock:
                self._busy[study] = self._pool.submit(self._score, study, Path(folder), previous)
        if self.reread is not None and time.monotonic() - self._reads_checked >= READS_CHECK_S:
            self._reads_checked = time.monotonic()
            changed = self._changed_reads(busy)
        else:
            changed = []
        for study, record in changed:
            with self._lock:
                self._busy[study] = self._pool.submit(self._reread, study, record)
        self.send_due()
        self._write_status()

    def _write_status(self) -> None:
        """NODE/studies.csv: each study's state and its sends per destination."""
        rows = self.db.status_rows()
        text = to_csv(rows, STATUS_COLUMNS)
        path = self.out / "studies.csv"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)

    def _score(self, study: str, folder: Path, previous: dict[str, Any]) -> None:
        name = digest(study)
        out = self.out / "studies" / name
        try:
            record, objects = score_study(folder, out, self.config, previous=previous)
        except (VascalcError, OSError, ValueError) as err:
            log.error("study %s: not scored: %s", name, err)
            self.db.set_study(study, "failed", {"error": str(err)})
            return
        if objects:
            self.db.queue(study, objects, list(self.destinations))
        state = ("not_eligible" if "not_eligible" in record
                 else "scored" if objects else "failed")
        record["reads"] = reads_state(out)
        self.db.set_study(study, state, record)
        log.info("study %s: %s, %d object(s) queued for %d destination(s)", name, state,
                 len(objects), len(self.destinations))

    def _reread(self, study: str, record: dict[str, Any]) -> None:
        name = digest(study)
        try:
            assert self.reread is not None
            update, objects = reread_study(self.out / "studies" / name, self.reread)
        except (VascalcError, OSError, ValueError) as err:
            log.error("study %s: reads not applied: %s", name, err)
            self.db.set_study(study, "scored", {**record, "reads": reads_state(
                self.out / "studies" / name), "reads_error": str(err)[:500]})
            return
        if objects:
            self.db.queue(study, objects, list(self.destinations))
        self.db.set_study(study, "scored", {**record, **update})
        log.info("study %s: reads applied, %d object(s) queued", name, len(objects))

    def _changed_reads(self, busy: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """Scored studies whose reads changed since they were last scored or rescored."""
        out = []
        for st in self.db.studies():
            if st["state"] != "scored" or st["study_uid"] in busy:
                continue
            folder = self.out / "studies" / digest(st["study_uid"])
            # the database is opened only when a reads file changed on disk (a node holds
            # thousands of studies; a reader works on one)
            stamp = tuple(_mtime(folder / n) for n in ("reads.sqlite", "reads.sqlite-wal"))
            if stamp == (None, None) or self._reads_seen.get(st["study_uid"]) == stamp:
                continue
            self._reads_seen[st["study_uid"]] = stamp
            now = reads_state(folder)
            if now and now != st["record"].get("reads", ""):
                out.append((st["study_uid"], st["record"]))
        return out

    def send_due(self) -> None:
        send_due(self.db, self.destinations, self.config, self.ae_title)

    def serve(self, *, until=None, poll_s: float = 0.5) -> None:
        """Run until stopped (or until ``until()`` is true)."""
        while not self._stop.is_set():
            self.step()
            if until is not None and until():
                return
            self._stop.wait(poll_s)

    def idle(self) -> bool:
        """Nothing receiving, scoring or waiting to be sent."""
        with self._lock:
            busy = bool(self._busy) or bool(self._open)
        states = {s["state"] for s in self.db.studies()}
        return not busy and not (states & {"receiving", "scoring"}) and self.db.pending() == 0
