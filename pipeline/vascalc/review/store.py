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
    at TEXT NOT NULL,
    rest_not_coronary INTEGER NOT NULL DEFAULT 0,
    through_read_id INTEGER NOT NULL DEFAULT 0
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
    #: per lesion, the signature of the lesion its newest read was made on ('' = stored
    #: without one, by an earlier vascalc)
    signatures: dict[int, str] = field(default_factory=dict)
    done_at: str = ""  # when the case was last marked done (UTC, ISO 8601), '' = not done
    #: per (lesion, slice), the signature of the part its newest slice read was made on
    slice_signatures: dict[tuple[int, int], str] = field(default_factory=dict)
    #: when the reader confirmed, with the done mark, that the calcium left unlabelled is not
    #: coronary ('' = not confirmed, or not done)
    rest_confirmed_at: str = ""

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
                marks = {r[1] for r in db.execute("PRAGMA table_info(marks)")}
                for col in ("rest_not_coronary", "through_read_id"):  # marks made before
                    if col not in marks:  # the confirmation existed
                        db.execute(f"ALTER TABLE marks ADD COLUMN {col} INTEGER NOT NULL "
                                   "DEFAULT 0")
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

    def mark(self, *, reader: str, case_id: str, done: bool,
             rest_not_coronary: bool = False) -> str:
        """Append a done (or not done) mark; returns its time (UTC, ISO 8601).
        ``rest_not_coronary`` records the reader's explicit confirmation that the calcium
        left unlabelled is not coronary, kept with the mark, its time and the newest read it
        covers: a read changed after it lets the confirmation lapse (what is unlabelled may
        have changed), so the case is not final until the reader confirms again."""
        check_reader(reader)
        at = _now()
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")  # no read slips in between the two statements
            through = db.execute("SELECT COALESCE(MAX(id), 0) FROM reads WHERE reader = ? AND "
                                 "case_id = ?", (reader, case_id)).fetchone()[0]
            db.execute("INSERT INTO marks (reader, case_id, done, at, rest_not_coronary, "
                       "through_read_id) VALUES (?, ?, ?, ?, ?, ?)",
                       (reader, case_id, int(bool(done)), at,
                        int(bool(done) and bool(rest_not_coronary)), int(through)))
        return at

    def reads(self, reader: str, case_id: str) -> Reads:
        """The reader's current labels of the case (newest row per lesion or slice)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT id, lesion_id, slice_index, label, signature FROM reads WHERE "
                "reader = ? AND case_id = ? ORDER BY id", (reader, case_id)).fetchall()
            done = db.execute("SELECT done, at, rest_not_coronary, through_read_id FROM marks "
                              "WHERE reader = ? AND case_id = ? ORDER BY id DESC LIMIT 1",
                              (reader, case_id)).fetchone()
        lesion: dict[int, str] = {}
        slices: dict[tuple[int, int], str] = {}
        signatures: dict[int, str] = {}
        slice_signatures: dict[tuple[int, int], str] = {}
        last = 0
        for rid, les, sl, label, sig in rows:
            last = rid
            if sl is None:
                signatures[les] = sig
                target: dict = lesion
                key: int | tuple[int, int] = les
            else:
                slice_signatures[(les, sl)] = sig
                target, key = slices, (les, sl)
            if label:
                target[key] = label
            else:
                target.pop(key, None)
                # a cleared read applies nothing: its signature cannot make the case stale
                (signatures if sl is None else slice_signatures).pop(key, None)  # type: ignore
        finished = bool(done and done[0])
        return Reads(lesion, slices, finished, last, signatures,
                     done_at=str(done[1]) if finished else "",
                     slice_signatures=slice_signatures,
                     rest_confirmed_at=str(done[1]) if finished and done[2]
                     and last <= done[3] else "")

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
