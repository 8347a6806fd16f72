"""A received study, scored and read: the chosen series scored as ``vascalc run --report``
scores it (:func:`score_study`), and a reader's finished reads applied as ``vascalc rescore``
applies them (:func:`reread_study`), each returning the result objects of the new version to
send."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from ..config.schema import Config
from ..errors import ResultError
from ..outputs.versions import carry_over
from ..results.document import is_ok, read_result, result_path, scan_of
from ..run.batch import run_batch
from ..run.discovery import collect_cases, run_inputs
from ..run.lock import output_lock
from ..run.options import RunOptions
from .objects import case_objects
from .ranker import rank_series, record_of


def score_study(study_folder: Path, out: Path, config: Config, *,
                previous: dict[str, Any] | None = None
                ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Rank the study's series, score the chosen one as ``vascalc run`` would, and return the
    study record and the result objects to send, as (path, SOP Instance UID).

    ``previous`` is the study's record from an earlier scoring (the study grew since): when
    another series is chosen now, the new result continues the old one's versions (its first
    version replaces the old last one in the PACS) and the old case leaves the study's tables,
    so the study holds one current result."""
    ranked = rank_series(study_folder, config)
    record: dict[str, Any] = {"series": record_of(ranked)}
    chosen = [s for s in ranked if s.chosen]
    if not chosen:
        record["not_eligible"] = ("no series may be scored by listen.rules: "
                                  + "; ".join(f"{s.description or s.series_uid[-12:]}: {s.reason}"
                                              for s in ranked))[:2000]
        return record, []
    series = study_folder / chosen[0].folder
    # the report goes back into the patient's own study: it names the patient, the accession
    # and the series (a PDF a reader cannot match to its patient is unsafe) unless the config
    # sets report.identity itself
    identity = config.report.identity if "identity" in config.report.model_fields_set \
        else "full"
    report = config.report.model_copy(update={"enabled": True, "pdf": True, "dicom_sr": True,
                                              "dicom_seg": True, "identity": identity,
                                              "key_images": max(1, config.report.key_images)})
    cfg = config.model_copy(update={"report": report})
    with output_lock(out):
        try:
            cases, notes = collect_cases([series], cfg, work_dir=out / ".work")
            new = [out / "cases" / c.case_id for c in cases]
            replaced = [out / "cases" / old for old in (previous or {}).get("case_ids", [])
                        if old not in {c.case_id for c in cases}]
            for old in replaced:  # the new result continues the old one's versions
                for folder in new:
                    carry_over(old, folder)
            result = run_batch(cases, cfg, out, RunOptions(inputs=run_inputs([series])),
                               notes=notes)
            if any((folder / "scores.sr.dcm").is_file() for folder in new):
                for old in replaced:  # only once the new result stands
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(out / ".work", ignore_errors=True)  # as vascalc run leaves it
    record["run"] = {"counts": result.counts, "output": str(out)}
    record["case_ids"] = [c.case_id for c in cases]
    objects: list[tuple[str, str]] = []
    for case in cases:
        objects += case_objects(out / "cases" / case.case_id)[1]
    if not objects:
        record["error"] = "; ".join(_case_error(out, c.case_id) for c in cases) or \
            "no case was found in the chosen series"
    return record, objects


def _case_error(out: Path, case_id: str) -> str:
    """Why a case of the study gave nothing to send: its row's error code and message (which
    name files, never the patient), or that it wrote no report objects."""
    try:
        doc = read_result(result_path(out, case_id))
    except (ResultError, OSError):
        return f"{case_id}: no result was recorded"
    if is_ok(doc):
        return f"{case_id}: scored, but no SR was written (report.dicom_sr)"
    scan = scan_of(doc)
    return f"{case_id}: {scan.get('error_code', '')}: {scan.get('error', '')}"[:500]


def reread_study(out: Path, rescore: Callable[[Path], dict[str, Any] | None]
                 ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A node study whose reads changed since it was last scored: ``rescore`` (the review's
    :func:`vascalc.review.rescore.rescore_finished`, given by the command line so that the node
    does not import the review) rescores the finished reads; returns the study record's update
    and what to send (the new versions)."""
    record: dict[str, Any] = {"reads": reads_state(out)}
    summary = rescore(out)
    if not summary:
        return record, []
    record["rescored"] = summary.get("rescored", {})
    # every case's current version: a rescored final, or an earlier version again (a read
    # that stopped being final gives the run's draft back, whose objects the PACS holds: the
    # outbox sends each object once, so the PACS keeps the last final until a reader signs
    # an amendment, which names that final)
    objects: list[tuple[str, str]] = []
    for folder in sorted(p for p in (out / "cases").glob("*") if p.is_dir()):
        objects += case_objects(folder)[1]
    return record, objects


def reads_state(out: Path) -> str:
    """A digest of a node study's reads (reads.sqlite): it changes with every label and done
    mark; '' when nobody has read the study."""
    path = out / "reads.sqlite"
    if not path.is_file():
        return ""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            state = [db.execute(f"SELECT count(*), max(id) FROM {t}").fetchone()
                     for t in ("reads", "marks")]
    except sqlite3.Error:
        return ""
    return hashlib.sha256(repr(state).encode()).hexdigest()[:16]
