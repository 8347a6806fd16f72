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
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config.schema import Config
from ..core.regions import OUTSIDE
from ..core.score import RISK_LABELS
from ..errors import ResultError
from ..files import write_atomic
from ..records import NO_SHAPE, CaseFailure, ScanResult
from ..values import age_years
from .codec import decode, encode
from .columns import PROVENANCE_KEYS, names
from .risk import MESA_COLUMNS, mesa_columns
from .spectral_rows import spectral_columns
from .uncertainty_columns import scan_columns as uncertainty_columns
from .wide import wide_rows

#: version of the result.json layout; a document of another version is not read
RESULT_SCHEMA = 5


def result_path(out: Path, case_id: str) -> Path:
    return out / "cases" / case_id / "result.json"


# --- rows ----------------------------------------------------------------------------------

def _num(v: float | None) -> float | None:
    if v is None:
        return None
    if not math.isfinite(v):
        raise ValueError(f"refusing to write a non-finite number {v!r}")
    return float(v)


def _checked(row: dict[str, Any], table: str) -> dict[str, Any]:
    """``row`` if it holds exactly the registered columns of ``table``."""
    registered = names(table)
    if row.keys() != set(registered):
        unknown = sorted(set(row) - set(registered))
        missing = sorted(set(registered) - set(row))
        raise ValueError(f"{table} row does not match the column registry: unknown "
                         f"{unknown}, missing {missing}")
    return row


def scan_row(r: ScanResult | CaseFailure, *, patient_id: str = "", source_path: str = "",
             settings: dict[str, Any], demographics: bool = False) -> dict[str, Any]:
    """One scans row. Provenance comes from the result's own settings; for a failed case,
    from ``settings`` (Config.provenance() of the case's settings), so failed rows carry it."""
    provenance = r.settings if isinstance(r, ScanResult) else settings
    common = {"case_id": r.case_id, "patient_id": patient_id, "source_path": source_path,
              "pipeline_version": __version__, **{k: provenance.get(k) for k in PROVENANCE_KEYS}}
    if isinstance(r, CaseFailure):
        row = dict.fromkeys(names("scans"))
        row.update(common, status="failed", error_code=r.error_code, error=r.error)
        return _checked(row, "scans")
    m, b = r.meta, r.bsa
    w = r.headline or r.whole
    inc, drow, dcol = r.spacing_mm
    ag = r.settings.get("agatston", True)
    given = not w.withheld
    row = dict(
        common, study_date=m.study_date, patient_age=m.patient_age if demographics else "",
        patient_sex=m.patient_sex if demographics else "",
        patient_age_years=age_years(m.patient_age) if demographics else None,
        series_instance_uid=m.series_instance_uid, status="ok", error_code="", error="",
        scope=r.settings["scope"], scope_regions=";".join(r.scope_regions),
        region_source=r.region_source, reader=r.reader, **_unlabelled(r, ag),
        **_measures(w, ag), mass_status="uncalibrated" if w.mass_mg is None else "calibrated",
        n_slice_lesions=w.n_slice_lesions if given else None,
        risk_category=r.risk_category if ag else "",
        risk_category_order=RISK_LABELS.index(r.risk_category) if ag and r.risk_category
        else None, cac_drs=r.cac_drs if ag else "",
        cac_drs_vessels=r.cac_drs_vessels if ag else "", risk_basis=r.risk_basis,
        score_label=score_label(r), withheld_reason=w.withheld,
        headline_threshold_hu=_num(w.threshold_hu) if given else None,
        headline_threshold_rule=w.threshold_rule, contrast_rule=r.contrast_rule,
        contrast_phase=r.contrast_phase, contrast_phase_source=r.contrast_phase_source,
        agatston_comparable=r.agatston_comparable, **dict.fromkeys(MESA_COLUMNS),
        protocol_deviations=";".join(r.protocol_deviations),
        **_scope_columns("vascular", r.vascular, b.bsa_m2, ag),
        **_scope_columns("coronary", r.coronary, b.bsa_m2, ag),
        **{f"all_calcium_{k}": v for k, v in _measures(r.whole, ag).items()
           if k in ("agatston", "volume_mm3", "mass_mg")},
        height_cm=_num(b.height_cm), weight_kg=_num(b.weight_kg), bsa_m2=_num(b.bsa_m2),
        bsa_formula=b.formula, bsa_source=b.source,
        volume_per_bsa_mm3_m2=_num(r.volume_per_bsa_mm3_m2) if given else None,
        slice_thickness_mm=m.slice_thickness_mm, slice_increment_mm=_num(inc),
        pixel_spacing_mm=f"{drow:g}x{dcol:g}", pixel_spacing_row_mm=drow,
        pixel_spacing_col_mm=dcol, n_slices=r.shape[0], n_rows=r.shape[1], n_cols=r.shape[2],
        kvp=m.kvp, **spectral_columns(r), manufacturer=m.manufacturer, model=m.model,
        kernel=m.kernel, quality_flags=";".join(r.quality_flags), **uncertainty_columns(r))
    return _checked(row, "scans")


def _unlabelled(r: ScanResult, ag: bool) -> dict[str, Any]:
    """What a reader left unlabelled ('outside'), its confirmation, and whether the read is final."""
    if not r.reader:
        return dict.fromkeys(("review_done", "unlabelled_agatston", "unlabelled_volume_mm3",
                              "unlabelled_n_lesions", "rest_confirmed_not_coronary", "rest_confirmed_at"))
    out = next((x for x in r.regions if x.region == OUTSIDE), None)
    return {"review_done": "review_incomplete" not in r.quality_flags, "rest_confirmed_at":
            r.rest_confirmed_at, "rest_confirmed_not_coronary": bool(r.rest_confirmed_at),
            "unlabelled_agatston": _num(out.agatston) if out is not None and ag else None,
            "unlabelled_volume_mm3": _num(out.volume_mm3) if out is not None else None,
            "unlabelled_n_lesions": out.n_lesions if out is not None else None}


def _measures(score, ag: bool) -> dict[str, Any]:
    """A score's numbers as row values: all empty when the score is withheld (its reason is
    in its withheld_reason column), Agatston and density empty without Agatston."""
    if score.withheld:
        return dict.fromkeys(("agatston", "volume_mm3", "mass_mg", "density_score",
                              "n_lesions"))
    return {"agatston": _num(score.agatston) if ag else None,
            "volume_mm3": _num(score.volume_mm3), "mass_mg": _num(score.mass_mg),
            "density_score": score.density_score if ag else None, "n_lesions": score.n_lesions}


def score_label(r: ScanResult) -> str:
    """What a result's headline number is, in words (scans.csv score_label; the console,
    index and report print it beside the number, never a bare 'Agatston')."""
    w, scope = r.headline or r.whole, r.scope
    if w.withheld:
        return f"{scope} score withheld"
    if not r.settings.get("agatston", True):
        return f"{scope} calcium volume"
    if w.threshold_rule:
        at = f" at {w.threshold_hu:g} HU" if w.threshold_hu is not None else ""
        return f"{scope} calcium score{at} ({w.threshold_rule})"
    return f"{scope} Agatston at {r.settings.get('threshold_hu', 130.0):g} HU"


def _scope_columns(scope: str, score, bsa_m2: float | None, ag: bool) -> dict[str, Any]:
    """The scans columns of one scope's aggregate (empty when the case has no such regions,
    or when it is withheld)."""
    if score is None or score.withheld:
        return dict.fromkeys(f"{scope}_{k}" for k in ("agatston", "volume_mm3", "mass_mg",
                                                     "n_lesions", "volume_per_bsa_mm3_m2"))
    return {f"{scope}_agatston": _num(score.agatston) if ag else None,
            f"{scope}_volume_mm3": _num(score.volume_mm3), f"{scope}_mass_mg": _num(score.mass_mg),
            f"{scope}_n_lesions": score.n_lesions,
            f"{scope}_volume_per_bsa_mm3_m2": None if bsa_m2 is None
            else _num(score.volume_mm3 / bsa_m2)}


def _whole_scope(r: ScanResult) -> str:
    return "bone_excluded" if r.settings.get("scope") == "bone_excluded" else "whole_volume"


def region_rows(r: ScanResult, *, masks: bool = False) -> list[dict[str, Any]]:
    """The rows of regions.csv, which partition the scan's kept calcium: each region and
    'outside' (kept calcium in no region) once, so a per-case sum of the rows is the scan's
    all-calcium total (scans.csv ``all_calcium_*``); a case without regions has one row,
    'whole'. ``masks``: the region masks' partition of a rescored case (regions_masks.csv)."""
    regions, source = (r.mask_regions, r.mask_source) if masks else (
        r.regions or (r.whole,), r.region_source)
    bsa, ag = r.bsa.bsa_m2, r.settings.get("agatston", True)
    return [_checked({
        "case_id": r.case_id, "region": reg.region, "region_class": reg.region_class,
        "lumen_median_hu": _num(reg.lumen_median_hu),
        "threshold_hu": None if reg.withheld else _num(reg.threshold_hu),
        "threshold_rule": reg.threshold_rule, "withheld_reason": reg.withheld,
        "scope": _whole_scope(r) if reg is r.whole else "region",
        **_measures(reg, ag), "n_slice_lesions": None if reg.withheld else reg.n_slice_lesions,
        "volume_per_bsa_mm3_m2": None if bsa is None or reg.withheld
        else _num(reg.volume_mm3 / bsa),
        "region_source": "" if reg is r.whole else source}, "regions") for reg in regions]


def lesion_rows(r: ScanResult) -> list[dict[str, Any]]:
    ag = r.settings.get("agatston", True)
    cls = {reg.region: reg.region_class for reg in (r.whole, *r.regions)}
    shapes = {s.lesion_id: s.row() for s in r.lesion_shapes}
    return [_checked({
        "case_id": r.case_id, "lesion_id": le.lesion_id, "region": le.region,
        "region_class": cls.get(le.region, "whole"),
        "n_slices": le.n_slices, "n_voxels": le.n_voxels, "volume_mm3": _num(le.volume_mm3),
        "mass_mg": _num(le.mass_mg), "agatston": _num(le.agatston) if ag else None,
        "peak_hu": _num(le.peak_hu), "mean_hu": _num(le.mean_hu),
        "centroid_x_mm": _num(le.centroid_x_mm), "centroid_y_mm": _num(le.centroid_y_mm),
        "centroid_z_mm": _num(le.centroid_z_mm),
        "region_source": r.region_source if le.region != "whole" else "",
        "label": le.region if r.region_source == "reader" and le.region != "outside" else "",
        **shapes.get(le.lesion_id, NO_SHAPE)}, "lesions") for le in r.lesions]


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
                    settings=row["provenance"], demographics=row["demographics"])
    scan.update(mesa_columns(scan, doc.get("covariates", {})))
    if doc.get("extra_flags"):
        flags = [f for f in (scan["quality_flags"] or "").split(";") if f]
        scan["quality_flags"] = ";".join(flags + [f for f in doc["extra_flags"]
                                                  if f not in flags])
    if isinstance(outcome, ScanResult):
        return {**doc, "scan": scan, "regions": region_rows(outcome), "lesions":
                lesion_rows(outcome), "regions_masks": region_rows(outcome, masks=True)}
    return {**doc, "scan": scan, "regions": [], "lesions": [], "regions_masks": []}


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
    """Write the document atomically to OUT/cases/<case_id>/result.json, without its derived
    rows, on one line: json's C encoder serves only unindented output, and the lesion lists
    of a large scan took the indenting pure-Python encoder about 70 ms per case."""
    path = result_path(out, doc["case_id"])
    stored = {k: v for k, v in doc.items() if k not in DERIVED}
    write_atomic(path, json.dumps(stored, allow_nan=False, separators=(",", ":")) + "\n")
    return path


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
    path = result_path(out, case_id)
    try:
        doc = _stored_document(path)
        # the cheap checks first: rows are derived only for a case that is reused
        if ((doc.get("outcome") or {}).get("kind") != "scored"
                or doc.get("config_sha256") != config_sha256
                or doc.get("fingerprint") != fingerprint):
            return None
        return _derived(doc, path)
    except ResultError:
        return None


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
