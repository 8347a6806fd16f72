"""The table rows of a case's typed record: one scans row, its regions rows (which partition
the scan's kept calcium) and its lesions rows, each holding exactly the registered columns of
its table (:mod:`vascalc.results.columns`). A withheld number is empty, its reason beside it."""

from __future__ import annotations

import math
from typing import Any

from .._version import __version__
from ..core.regions import OUTSIDE
from ..core.score import RISK_LABELS
from ..records import NO_SHAPE, CaseFailure, ScanResult
from ..values import age_years
from .columns import PROVENANCE_KEYS, names
from .risk import MESA_COLUMNS
from .spectral_rows import spectral_columns
from .uncertainty_columns import scan_columns as uncertainty_columns


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
             settings: dict[str, Any], demographics: bool = False,
             version: str = __version__) -> dict[str, Any]:
    """One scans row. Provenance comes from the result's own settings; for a failed case,
    from ``settings`` (Config.provenance() of the case's settings), so failed rows carry it.
    ``version``: the vascalc that scored it (the document's ``vascalc_version``)."""
    provenance = r.settings if isinstance(r, ScanResult) else settings
    common = {"case_id": r.case_id, "patient_id": patient_id, "source_path": source_path,
              "pipeline_version": version, **{k: provenance.get(k) for k in PROVENANCE_KEYS}}
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
        **_measures(w, ag), mass_status=_mass_status(r, w),
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
        kernel=m.kernel, quality_flags=";".join(r.quality_flags), **uncertainty_columns(r),
    )
    return _checked(row, "scans")


def _mass_status(r: ScanResult, w) -> str:
    """calibrated or uncalibrated: from the score's mass, or for a withheld score (no mass
    given, None) from the calibration factor the case was scored with."""
    if w.withheld:
        given = r.settings.get("mass_calibration_mg_per_cm3_per_hu") is not None
        return "calibrated" if given else "uncalibrated"
    return "uncalibrated" if w.mass_mg is None else "calibrated"


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
    w = r.headline or r.whole
    scope = r.scope
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
            f"{scope}_volume_per_bsa_mm3_m2": None if bsa_m2 is None or score.volume_mm3 is None
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
    bsa = r.bsa.bsa_m2
    ag = r.settings.get("agatston", True)
    return [_checked({
        "case_id": r.case_id, "region": reg.region, "region_class": reg.region_class,
        "lumen_median_hu": _num(reg.lumen_median_hu),
        "threshold_hu": None if reg.withheld else _num(reg.threshold_hu),
        "threshold_rule": reg.threshold_rule, "withheld_reason": reg.withheld,
        "scope": _whole_scope(r) if reg is r.whole else "region",
        **_measures(reg, ag), "n_slice_lesions": None if reg.withheld else reg.n_slice_lesions,
        "volume_per_bsa_mm3_m2": None if bsa is None or reg.volume_mm3 is None
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
