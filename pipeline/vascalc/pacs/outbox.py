"""The node's durable record (``OUT/node.sqlite``): the studies it received and what became of
them, and the outbox of result objects per destination with what each acknowledged.

SQLite in WAL mode with full sync: a row is on disk before the call returns, so a kill at any
instant loses nothing acknowledged. An object is queued once per destination (its SOP
Instance UID and the destination are unique together) and marked sent only after the
destination acknowledged it; after a kill between the acknowledgement and the mark it is sent
again with the same SOP Instance UID, which a PACS stores once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .store import digest

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY, folder TEXT NOT NULL, first_seen REAL NOT NULL,
    last_received REAL NOT NULL, instances INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'receiving', record TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, destination TEXT NOT NULL,
    path TEXT NOT NULL, sop_uid TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '', acked REAL, UNIQUE (destination, sop_uid));
"""


class NodeDB:
    """The studies and the outbox; safe to share between the node's threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- studies ---------------------------------------------------------------------------
    def received(self, study_uid: str, folder: str, new: bool) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO studies (study_uid, folder, first_seen, last_received) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (study_uid) DO UPDATE SET "
                "last_received = excluded.last_received, state = 'receiving'",
                (study_uid, folder, now, now))
            if new:
                self._db.execute("UPDATE studies SET instances = instances + 1 "
                                 "WHERE study_uid = ?", (study_uid,))

    def touch(self, study_uid: str) -> None:
        """The study's quiet period starts now (its association ended)."""
        self._run("UPDATE studies SET last_received = ? WHERE study_uid = ?",
                  (time.time(), study_uid))

    def recover(self) -> None:
        """After a restart: a study left 'scoring' (killed mid-way) is complete again."""
        self._run("UPDATE studies SET state = 'receiving' WHERE state = 'scoring'")

    def quiet_studies(self, quiet_s: float, busy: set[str]) -> list[tuple[str, str]]:
        """(study UID, folder) of studies receiving, quiet for ``quiet_s``, not in ``busy``."""
        rows = self._run("SELECT study_uid, folder FROM studies WHERE state = 'receiving' AND "
                         "last_received <= ?", (time.time() - quiet_s,))
        return [(u, f) for u, f in rows if u not in busy]

    def set_study(self, study_uid: str, state: str, record: dict[str, Any]) -> None:
        self._run("UPDATE studies SET state = ?, record = ? WHERE study_uid = ?",
                  (state, json.dumps(record, sort_keys=True), study_uid))

    def studies(self) -> list[dict[str, Any]]:
        rows = self._run("SELECT study_uid, folder, instances, state, record FROM studies "
                         "ORDER BY first_seen")
        return [{"study_uid": u, "folder": f, "instances": n, "state": s,
                 "record": json.loads(r)} for u, f, n, s, r in rows]

    # -- outbox ----------------------------------------------------------------------------
    def queue(self, study_uid: str, items: list[tuple[str, str]], destinations: list[str]) -> int:
        """Queue each (path, SOP Instance UID) for each destination, once; returns how many
        were new."""
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            for dest in destinations:
                for path, sop in items:
                    self._db.execute(
                        "INSERT INTO outbox (study_uid, destination, path, sop_uid) VALUES "
                        "(?, ?, ?, ?) ON CONFLICT (destination, sop_uid) DO UPDATE SET "
                        "path = excluded.path WHERE state != 'sent'",
                        (study_uid, dest, path, sop))
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def due(self) -> dict[str, list[tuple[int, str, str]]]:
        """destination -> [(item id, path, SOP Instance UID)] of items due now."""
        out: dict[str, list[tuple[int, str, str]]] = {}
        for i, dest, path, sop in self._run(
                "SELECT id, destination, path, sop_uid FROM outbox WHERE state = 'pending' "
                "AND next_try <= ? ORDER BY id", (time.time(),)):
            out.setdefault(dest, []).append((i, path, sop))
        return out

    def acked(self, item: int) -> None:
        self._run("UPDATE outbox SET state = 'sent', acked = ?, last_error = '' WHERE id = ?",
                  (time.time(), item))

    def failed(self, item: int, error: str, *, base_s: float, max_s: float,
               max_attempts: int) -> None:
        with self._lock:
            (attempts,), = self._db.execute("SELECT attempts FROM outbox WHERE id = ?",
                                            (item,)).fetchall()
            attempts += 1
            state = "failed" if attempts >= max_attempts else "pending"
            wait = min(max_s, base_s * 2 ** (attempts - 1))
            self._db.execute("UPDATE outbox SET attempts = ?, state = ?, next_try = ?, "
                             "last_error = ? WHERE id = ?",
                             (attempts, state, time.time() + wait, error[:500], item))

    def outbox(self, study_uid: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT study_uid, destination, path, sop_uid, state, attempts, last_error, acked "
               "FROM outbox")
        rows = self._run(sql + (" WHERE study_uid = ?" if study_uid else "") + " ORDER BY id",
                         (study_uid,) if study_uid else ())
        keys = ("study_uid", "destination", "path", "sop_uid", "state", "attempts",
                "last_error", "acked")
        return [dict(zip(keys, r)) for r in rows]

    def status_rows(self) -> list[dict[str, Any]]:
        """One row per study and destination: the study's state, the series chosen and the
        reason, and how many objects were sent, are pending or failed, with the last error
        (the node's ``studies.csv``; studies by the digest of their UID, no patient data)."""
        sent: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.outbox():
            s = sent.setdefault((r["study_uid"], r["destination"]),
                                {"sent": 0, "pending": 0, "failed": 0, "last_error": ""})
            s[r["state"]] += 1
            if r["last_error"]:
                s["last_error"] = r["last_error"]
        rows = []
        for st in self.studies():
            series = st["record"].get("series", [])
            chosen: dict[str, Any] = next((s for s in series if s.get("chosen")), {})
            base = {"study": digest(st["study_uid"]), "state": st["state"],
                    "instances": st["instances"], "series_chosen": chosen.get("description", ""),
                    "why": (st["record"].get("not_eligible") or st["record"].get("error")
                            or chosen.get("reason", ""))}
            dests = [(d, s) for (u, d), s in sent.items() if u == st["study_uid"]]
            for dest, s in dests or [("", {"sent": 0, "pending": 0, "failed": 0,
                                          "last_error": ""})]:
                rows.append({**base, "destination": dest, **s})
        return rows

    def pending(self) -> int:
        ((n,),) = self._run("SELECT count(*) FROM outbox WHERE state = 'pending'")
        return int(n)
