"""The readers' reads: an append-only SQLite database, OUT/reads.sqlite.

One row per change: (reader, case, lesion, slice or none, label, time). Nothing is ever
updated or deleted (triggers refuse it), so the table is the audit trail; a reader's current
label of a lesion is the newest row for it, and a slice row (one slice of a lesion, to split
a lesion at a bifurcation) wins over the lesion's row on that slice. An empty label clears a
read. The database runs in WAL mode with full synchronisation: a change is on disk before
the server acknowledges it, so a killed server loses no acknowledged read, and two readers
(two servers, or two browsers on one) can write at once.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import OutputError

READS_FILE = "reads.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reader TEXT NOT NULL,
    case_id TEXT NOT NULL,
    lesion_id INTEGER NOT NULL,
    slice_index INTEGER,
    label TEXT NOT NULL,
    at TEXT NOT NULL,
    signature TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS reads_case ON reads (case_id, reader);
CREATE TABLE IF NOT EXISTS marks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reader TEXT NOT NULL,
    case_id TEXT NOT NULL,
    done INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS reads_append_only_u BEFORE UPDATE ON reads
    BEGIN SELECT RAISE(ABORT, 'reads are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reads_append_only_d BEFORE DELETE ON reads
    BEGIN SELECT RAISE(ABORT, 'reads are append-only'); END;
CREATE TRIGGER IF NOT EXISTS marks_append_only_u BEFORE UPDATE ON marks
    BEGIN SELECT RAISE(ABORT, 'marks are append-only'); END;
CREATE TRIGGER IF NOT EXISTS marks_append_only_d BEFORE DELETE ON marks
    BEGIN SELECT RAISE(ABORT, 'marks are append-only'); END;
"""

_READER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def check_reader(name: str) -> str:
    """A reader name: letters, digits, '_', '.', '-' (it is a column value and a folder)."""
    if not isinstance(name, str) or not _READER.fullmatch(name):
        raise ValueError(f"reader name {name!r}: 1-40 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Reads:
    """One reader's current labels of one case: per lesion, and per (lesion, slice)."""

    lesion: dict[int, str] = field(default_factory=dict)
    slices: dict[tuple[int, int], str] = field(default_factory=dict)
    done: bool = False
    last_id: int = 0  # the newest row that made them (0: none)
    #: per lesion, the signature of the lesion its newest read was made on ('' rows: none)
    signatures: dict[int, str] = field(default_factory=dict)
    done_at: str = ""  # when the case was last marked done (UTC, ISO 8601), '' = not done

    def label_of(self, lesion_id: int, slice_index: int) -> str:
        """The label in force for a lesion on a slice ('' = unlabelled)."""
        return self.slices.get((lesion_id, slice_index)) or self.lesion.get(lesion_id, "")

    def __bool__(self) -> bool:
        return bool(self.lesion or self.slices or self.done)


class ReadStore:
    """OUT/reads.sqlite, opened per use (a connection per call: safe across threads)."""

    def __init__(self, out: Path):
        self.path = Path(out) / READS_FILE
        try:
            with closing(self._connect()) as db, db:
                db.executescript(_SCHEMA)
                columns = {r[1] for r in db.execute("PRAGMA table_info(reads)")}
                if "signature" not in columns:  # a database of an earlier vascalc
                    db.execute("ALTER TABLE reads ADD COLUMN signature TEXT NOT NULL DEFAULT ''")
        except sqlite3.Error as err:
            raise OutputError(f"cannot open the reads database: {err}", path=str(self.path)) \
                from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def add(self, *, reader: str, case_id: str, lesion_id: int, slice_index: int | None,
            label: str, signature: str = "") -> int:
        """Append one read; returns its row id once it is on disk. ``signature`` identifies
        the lesion the read was made on (:func:`vascalc.review.cases.lesion_signature`)."""
        check_reader(reader)
        with closing(self._connect()) as db:
            cur = db.execute(
                "INSERT INTO reads (reader, case_id, lesion_id, slice_index, label, at, "
                "signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (reader, case_id, int(lesion_id), None if slice_index is None else int(slice_index),
                 label, _now(), signature))
            return int(cur.lastrowid or 0)

    def mark(self, *, reader: str, case_id: str, done: bool) -> None:
        check_reader(reader)
        with closing(self._connect()) as db:
            db.execute("INSERT INTO marks (reader, case_id, done, at) VALUES (?, ?, ?, ?)",
                       (reader, case_id, int(bool(done)), _now()))

    def reads(self, reader: str, case_id: str) -> Reads:
        """The reader's current labels of the case (newest row per lesion or slice)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT id, lesion_id, slice_index, label, signature FROM reads WHERE "
                "reader = ? AND case_id = ? ORDER BY id", (reader, case_id)).fetchall()
            done = db.execute("SELECT done, at FROM marks WHERE reader = ? AND case_id = ? "
                              "ORDER BY id DESC LIMIT 1", (reader, case_id)).fetchone()
        lesion: dict[int, str] = {}
        slices: dict[tuple[int, int], str] = {}
        signatures: dict[int, str] = {}
        last = 0
        for rid, les, sl, label, sig in rows:
            last = rid
            if sig:
                signatures[les] = sig
            target = lesion if sl is None else slices
            key = les if sl is None else (les, sl)
            if label:
                target[key] = label  # type: ignore[index]
            else:
                target.pop(key, None)  # type: ignore[arg-type]
        finished = bool(done and done[0])
        return Reads(lesion, slices, finished, last, signatures,
                     done_at=str(done[1]) if finished else "")

    def readers(self) -> list[str]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT DISTINCT reader FROM reads UNION "
                              "SELECT DISTINCT reader FROM marks ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def cases_read(self, reader: str) -> list[str]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT DISTINCT case_id FROM reads WHERE reader = ? UNION "
                              "SELECT DISTINCT case_id FROM marks WHERE reader = ? ORDER BY 1",
                              (reader, reader)).fetchall()
        return [r[0] for r in rows]

    def history(self, case_id: str) -> list[dict]:
        """Every change of a case, oldest first (the audit trail)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, reader, lesion_id, slice_index, label, at FROM reads "
                              "WHERE case_id = ? ORDER BY id", (case_id,)).fetchall()
        return [dict(zip(("id", "reader", "lesion_id", "slice_index", "label", "at"), r))
                for r in rows]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
