"""The result document of a case (``OUT/cases/<case_id>/result.json``) and the rows it becomes:
its schema and version (:data:`RESULT_SCHEMA`), building it from the typed records
(:class:`ScanResult` or :class:`CaseFailure`), writing it atomically, reading it back (another
version is refused by name), and turning documents into table rows through the column registry
(:mod:`vascalc.results.columns`): a row holds exactly the registered columns of its table, so an
unknown column cannot be written and a forgotten one fails at once. Manifest covariates travel
beside the row (``covariates``), become the trailing columns of scans.csv and feed the MESA risk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config.schema import Config
from ..errors import ResultError
from ..files import write_atomic
from ..records import CaseFailure, ScanResult
from .casefolder import case_dir, commit, staging_dir
from .codec import decode, encode
from .risk import mesa_columns
from .rows import lesion_rows, region_rows, scan_row, score_label
from .wide import wide_rows

__all__ = ["document", "read_result", "write_result", "reusable", "reuse", "scan_of",
           "is_ok", "version_of", "table_rows", "with_rows", "lesion_rows", "region_rows",
           "scan_row", "score_label", "table_patient_id"]

#: version of the result.json layout; a document of another version is not read
RESULT_SCHEMA = 5


def result_path(out: Path, case_id: str) -> Path:
    return out / "cases" / case_id / "result.json"


def table_patient_id(manifest_id: str | None, dicom_id: str, config: Config) -> str:
    """The patient id a table carries: the manifest's, else DICOM PatientID as
    ``privacy.patient_id`` says: HMAC-SHA256 keyed with the study's secret (never a public
    salt: ids from a few characters reverse by enumeration), as is, or empty."""
    if manifest_id is not None:
        return manifest_id
    mode = config.privacy.patient_id
    if mode == "omit" or not dicom_id:
        return ""
    if mode == "keep":
        return dicom_id
    key = config.privacy.secret()
    if key is None:
        raise ValueError("privacy.patient_id is hash but no study secret is set")
    digest = hmac.new(key.encode(), dicom_id.encode(), hashlib.sha256).hexdigest()
    return "p-" + digest[:16]


# --- the document --------------------------------------------------------------------------

def document(outcome: ScanResult | CaseFailure, *, run_config_sha256: str, fingerprint: str,
             settings: Config, patient_id: str, source_path: str,
             covariates: dict[str, str], timings: dict[str, float]) -> dict[str, Any]:
    """The result document of a case: one shape for scored and failed cases. It stores the
    measured record (``outcome``) and what its rows need besides (``row``); the table rows
    (``scan``, ``regions``, ``lesions``) are derived from them in memory, never stored, so a
    column added to the registry reaches a cached case without scoring it again."""
    doc = {
        "schema": RESULT_SCHEMA, "case_id": outcome.case_id,
        "vascalc_version": __version__,  # the vascalc that scored it: resume and merge check it
        "config_sha256": run_config_sha256, "fingerprint": fingerprint,
        "outcome": _stored(outcome, settings.privacy.demographics),
        "row": {"patient_id": patient_id, "source_path": source_path,
                "provenance": settings.provenance(),
                "demographics": settings.privacy.demographics},
        "extra_flags": [],
        "covariates": dict(covariates),
        "timings_s": {k: round(v, 6) for k, v in timings.items()},
        "artefacts": [],
    }
    return with_rows(doc)


#: the keys of a document derived from its record (never written to result.json)
DERIVED = ("scan", "regions", "lesions")


def _stored(outcome: ScanResult | CaseFailure, demographics: bool) -> dict[str, Any]:
    """The record as stored: a scored case without its voxels and without the header's
    identity (patient and study ids, description; age and sex unless the config asks)."""
    if isinstance(outcome, CaseFailure):
        return {"kind": "failed", "record": encode(outcome)}
    m = outcome.meta
    meta = replace(m, patient_id="", study_instance_uid="", series_description="",
                   patient_size_m=None, patient_weight_kg=None,
                   patient_age=m.patient_age if demographics else "",
                   patient_sex=m.patient_sex if demographics else "")
    return {"kind": "scored", "record": encode(replace(outcome, meta=meta), skip=frozenset({"voxels"}))}


def outcome_of(doc: dict[str, Any]) -> ScanResult | CaseFailure:
    """The typed record of a document (raises ValueError when it cannot be read)."""
    out = doc["outcome"]
    return (decode(ScanResult, out["record"]) if out["kind"] == "scored"
            else decode(CaseFailure, out["record"]))


def with_rows(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with its table rows derived from its record (see :func:`document`)."""
    outcome, row = outcome_of(doc), doc["row"]
    scan = scan_row(outcome, patient_id=row["patient_id"], source_path=row["source_path"],
                    settings=row["provenance"], demographics=row["demographics"],
                    version=version_of(doc))
    scan.update(mesa_columns(scan, doc.get("covariates", {})))
    if doc.get("extra_flags"):
        flags = [f for f in (scan["quality_flags"] or "").split(";") if f]
        scan["quality_flags"] = ";".join(flags + [f for f in doc["extra_flags"]
                                                  if f not in flags])
    if isinstance(outcome, ScanResult):
        return {**doc, "scan": scan, "regions": region_rows(outcome), "lesions":
                lesion_rows(outcome), "regions_masks": region_rows(outcome, masks=True)}
    return {**doc, "scan": scan, "regions": [], "lesions": [], "regions_masks": []}


def version_of(doc: dict[str, Any]) -> str:
    """The vascalc version that scored a document; 'unknown' for one written before results
    recorded it (such a result is redone on resume and refused by merge)."""
    v = doc.get("vascalc_version")
    return v if isinstance(v, str) and v else UNKNOWN_VERSION


#: the version of a result written before results recorded theirs
UNKNOWN_VERSION = "unknown (before 0.2.0)"


def scan_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The scans row of a case document (derived from its record: :func:`with_rows`). The
    rows of a document are read only through these accessors, outside this module."""
    return doc["scan"]


def is_ok(doc: dict[str, Any]) -> bool:
    """Whether the case was scored (its row's status is ok)."""
    return doc["scan"]["status"] == "ok"


def region_rows_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The regions rows of a case document ([] for a failed case)."""
    return doc.get("regions") or []


def lesion_rows_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The lesions rows of a case document ([] for a failed case)."""
    return doc.get("lesions") or []


def with_artefacts(doc: dict[str, Any], written: list[str], error: str,
                   seconds: float) -> dict[str, Any]:
    """The document with the artefacts written for it; a failure adds report_failed."""
    doc = {**doc, "artefacts": list(written), "timings_s": {**doc["timings_s"],
                                                            "report": round(seconds, 6)}}
    if error:
        doc["extra_flags"] = [*doc.get("extra_flags", []), "report_failed"]
        doc["artefact_error"] = error
        doc = with_rows(doc)
    return doc


def write_result(out: Path, doc: dict[str, Any]) -> Path:
    """Write the document to OUT/cases/<case_id>/result.json, without its derived rows, on
    one line (json's C encoder serves only unindented output, and the lesion lists of a
    large scan took the indenting pure-Python encoder about 70 ms per case), together with
    the artefacts made for it: result.json goes last into the staging folder the artefacts
    were written to (``doc["staged"]``; a new empty one without artefacts), which then
    replaces the case folder whole (:mod:`vascalc.results.casefolder`): a case folder never
    holds one result beside another's artefacts."""
    stored = {k: v for k, v in doc.items() if k not in DERIVED and k != "staged"}
    text = json.dumps(stored, allow_nan=False, separators=(",", ":")) + "\n"
    staged = doc.get("staged")
    staging = Path(staged) if staged else staging_dir(out, doc["case_id"])
    write_atomic(staging / "result.json", text)
    commit(staging, case_dir(out, doc["case_id"]))
    return result_path(out, doc["case_id"])


def read_result(path: Path) -> dict[str, Any]:
    """A result document, read back with its rows derived; raises ResultError when it is
    missing, unreadable, or of another schema version (written by another vascalc)."""
    return _derived(_stored_document(path), path)


def _derived(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        return with_rows(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise ResultError(f"the case result cannot be read ({type(err).__name__}: {err})",
                          path=str(path)) from None


def _stored_document(path: Path) -> dict[str, Any]:
    """result.json as stored (schema checked), its rows not yet derived."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ResultError(f"cannot read the case result ({type(err).__name__}: {err})",
                          path=str(path)) from None
    if not isinstance(doc, dict) or "case_id" not in doc:
        raise ResultError("not a vascalc case result", path=str(path))
    if doc.get("schema") != RESULT_SCHEMA:
        raise ResultError(f"result schema version {doc.get('schema')!r}; this vascalc "
                          f"({__version__}) reads version {RESULT_SCHEMA}", path=str(path))
    return doc


def reusable(out: Path, case_id: str, *, config_sha256: str, fingerprint: str,
             ) -> dict[str, Any] | None:
    """The finished result of a case that a rerun can keep: ok, same config and same input.
    None otherwise (absent, unreadable, another version, failed or changed: redo it)."""
    return reuse(out, case_id, config_sha256=config_sha256, fingerprint=fingerprint)[0]


def reuse(out: Path, case_id: str, *, config_sha256: str, fingerprint: str,
          ) -> tuple[dict[str, Any] | None, str]:
    """:func:`reusable` with the reason a stored result is not kept ('' when it is, or when
    there is none): 'failed', 'config', 'input', 'version' (scored by another vascalc:
    the same input and config may score differently), 'unreadable'."""
    path = result_path(out, case_id)
    if not path.exists():
        return None, ""
    try:
        doc = _stored_document(path)
    except ResultError:
        return None, "unreadable"
    # the cheap checks first: rows are derived only for a case that is reused
    if (doc.get("outcome") or {}).get("kind") != "scored":
        return None, "failed"
    if doc.get("config_sha256") != config_sha256:
        return None, "config"
    if doc.get("fingerprint") != fingerprint:
        return None, "input"
    if version_of(doc) != __version__:
        return None, "version"
    try:
        return _derived(doc, path), ""
    except ResultError:
        return None, "unreadable"


#: the per-case row lists of a document, beside its scans row
PARTS = ("regions", "lesions", "regions_masks")


def table_rows(docs: list[dict[str, Any]], config: Config | None = None
               ) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[str, str]]:
    """The rows of scans, regions, lesions and the wide per-scan region table from documents
    (in the order given); the covariate columns in the order they first occur, and region ->
    wide column stem (:mod:`vascalc.results.wide`)."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("scans", *PARTS)}
    covariate_columns: list[str] = []
    scored = []
    for doc in docs:
        cov = doc.get("covariates", {})
        rows["scans"].append({**doc["scan"], **cov})
        for t in PARTS:
            rows[t].extend(doc.get(t, []))
        covariate_columns.extend(k for k in cov if k not in covariate_columns)
        if doc["scan"]["status"] == "ok":
            scored.append((doc["case_id"], doc.get("regions", [])))
    rows["regions_wide"], stems = wide_rows(scored, config)
    return rows, covariate_columns, stems
