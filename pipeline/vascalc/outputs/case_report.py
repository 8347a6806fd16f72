"""The per-case report: HTML from the ``case.html`` template, and the same HTML as the PDF.

The report is laid out as a radiologist reads one: the case and its status (draft until a
reader marked the case done), the impression built from the numbers, the quality flags, the
per-territory scores first (the coronary arteries, then the other territories), the headline
named by its scope, territories and rule (:func:`vascalc.outputs.clinical.headline_title`),
risk category, CAC-DRS and the MESA risk where they are defined, other findings, the
technique, key images with their captions and legends beside them, and the method. What each
statement rests on is in :mod:`vascalc.outputs.clinical`.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from ..flags import describe
from ..results.document import scan_of
from . import clinical
from .arteries import artery_rows, left_main_text, whole
from .paths import patient_folder
from .render import fmt as _fmt
from .render import render, stylesheet, typed

#: region classes that are not vascular, as the report names their totals
APART = {"bone": "bone", "other": "other structures", "outside": "calcium in no region"}
NOT_RECORDED = "not recorded"


def _said(value: Any, why: str, digits: int = 1) -> str:
    """The value, or the reason it is absent (a report never shows a bare placeholder)."""
    return why if value in (None, "") else _fmt(value, digits)


def case_html(doc: dict[str, Any], images: list, *, identity: dict[str, str],
              config: dict[str, Any], weight_hu=None, territories: bool = False,
              extra_flags: tuple[str, ...] = (), mip_note: str = "", read_at: str = "",
              ecg_gated: bool | None = None) -> str:
    """The per-case report. ``images``: :class:`vascalc.outputs.key_images.KeyImage`;
    ``identity``: the DICOM patient identity, given only when ``report.identity`` is full;
    ``weight_hu``: the density bands the scan was scored with (the config's when not given);
    ``extra_flags``: what went wrong while the other artefacts were written; ``read_at``:
    when the reader marked the case done; ``ecg_gated``: what the header records (the
    record's, passed in: decoding it again would cost a pass over its lesions)."""
    s = typed(scan_of(doc), "scans")
    regions = [typed(r, "regions") for r in doc.get("regions", [])]
    covariates = {str(k): "" if v is None else str(v) for k, v in
                  (doc.get("covariates") or {}).items()}
    flags = [f for f in (s.get("quality_flags") or "").split(";") if f]
    flags += [f for f in extra_flags if f not in flags]
    scope = s.get("scope") or ""
    title = ("Coronary artery calcium report" if scope == "coronary" else
             "Vascular calcification report")
    arteries = [{"name": r["region"], "agatston": whole(r.get("agatston")),
                 "volume": _fmt(r.get("volume_mm3")),
                 "lesions": _fmt(r.get("n_lesions"))} for r in artery_rows(regions)]
    territories_all = _territories(s, regions)
    context = dict(
        css=stylesheet(), case_id=s["case_id"], title=title,
        top=f"vascalc {title.lower()}", top_right=_top_right(s, identity),
        footer=f"case {s['case_id']}",
        patient=_patient(s, identity, covariates),
        study_date=_date(s.get("study_date")) or NOT_RECORDED,
        patient_link=(f"../../patients/{patient_folder(s['patient_id'])}/report.html"
                      if (s.get("patient_id") or "").strip() else ""),
        status=_status(s, read_at), reader=_reader(s, read_at),
        impression=clinical.impression(s, regions), statements=clinical.statements(s),
        flags=[(f, describe(f)) for f in flags],
        arteries=arteries, left_main=left_main_text(regions) if arteries else "",
        territories=[t for t in territories_all if not t["empty"]],
        empty_territories=[t["name"] for t in territories_all if t["empty"]],
        headline=clinical.headline_text(s),
        protocol=_protocol(s), totals=_totals(s), risk=_risk(s),
        not_vascular=_apart(regions), findings=clinical.findings(s, regions, covariates),
        technique=clinical.technique(s, ecg_gated),
        images=[{"title": im.title, "legend": im.legend,
                 "data": base64.b64encode(im.png).decode()} for im in images],
        key_text=_key_text(territories), mip_note=mip_note,
        no_images=_no_images(s, bool(doc.get("lesions"))),
        method=_method(s, config, weight_hu), version=s.get("pipeline_version"),
        config_sha256=s.get("config_sha256"))
    return render("case.html", **context)


def _date(value: Any) -> str:
    """A date for people: yyyy-mm-dd (DICOM writes yyyymmdd)."""
    return clinical.dicom_date(str(value or ""))


def _top_right(s: dict[str, Any], identity: dict[str, str]) -> str:
    """The running header's right side: the patient's name (identity: full) and the study."""
    name = clinical.person_name(identity.get("Patient name", "")) if identity else ""
    study = f"study {_date(s.get('study_date')) or 'undated'}"
    return f"{name}, {study}" if name else study


def _patient(s: dict[str, Any], identity: dict[str, str],
             covariates: dict[str, str]) -> list[tuple[str, str]]:
    """The patient block: the identity only when the config asks for it (identity: full)."""
    out: list[tuple[str, str]] = []
    if identity:
        out += [("Patient", clinical.person_name(identity.get("Patient name", ""))
                 or NOT_RECORDED),
                ("Patient ID", identity.get("Patient ID") or NOT_RECORDED),
                ("Birth date", _date(identity.get("Birth date")) or NOT_RECORDED)]
        out += [(k, identity[k][:64]) for k in ("Accession", "Study", "Series")
                if identity.get(k)]
    elif s.get("patient_id"):
        out.append(("Patient", f"{s['patient_id']} (pseudonymous)"))
    age = covariates.get("age_years") or (f"{s['patient_age_years']:g}" if isinstance(
        s.get("patient_age_years"), float) else "")
    sex = clinical.sex_of(s, covariates)
    if age or sex:
        out.append(("Age / sex", f"{age or NOT_RECORDED} / {sex or NOT_RECORDED}"))
    return out


def _status(s: dict[str, Any], read_at: str = "") -> dict[str, str]:
    """Draft or final: final only when a reader marked the case done (with every calcium
    lesion labelled, or the rest confirmed not coronary)."""
    if s.get("reader"):
        if str(s.get("review_done")).lower() == "true":
            return {"css": "final", "word": "final",
                    "text": f"read by {s['reader']}, marked done"}
        if read_at:
            return {"css": "draft", "word": "draft",
                    "text": f"reader {s['reader']} marked the case done but left calcium "
                            "unlabelled without confirming it is not coronary"}
        return {"css": "draft", "word": "draft",
                "text": f"reader {s['reader']} has not marked the case done"}
    return {"css": "draft", "word": "draft",
            "text": "automated result, not reviewed by a reader (vascalc review)"}


def _reader(s: dict[str, Any], at: str) -> list[tuple[str, str]]:
    if not s.get("reader"):
        return [("Reader", "none yet")]
    when = ""
    if at:
        try:
            when = datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            when = at
    return [("Reader", str(s["reader"])), ("Read", when or "not marked done"),
            *_unlabelled(s)]


def _unlabelled(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The calcium the reader left unlabelled, and whether they confirmed it is not coronary
    (scans.csv unlabelled_agatston, unlabelled_volume_mm3, rest_confirmed_not_coronary)."""
    volume = clinical.number(s.get("unlabelled_volume_mm3"))
    if volume is None:
        return []
    if volume == 0:
        return [("Unlabelled calcium", "none: every calcium lesion is labelled")]
    ag = clinical.number(s.get("unlabelled_agatston"))
    amount = (f"Agatston {whole(ag)}, " if ag is not None else "") + f"volume {volume:,.1f} mm3"
    confirmed = str(s.get("rest_confirmed_not_coronary")).lower() == "true"
    at = str(s.get("rest_confirmed_at") or "")
    return [("Unlabelled calcium", amount),
            ("Not coronary", f"confirmed by the reader ({at})" if confirmed else
             "not confirmed by the reader: no final result")]


def _territories(s: dict[str, Any], regions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The headline's territories that are not coronary arteries (those have their table)."""
    scope = [r for r in (s.get("scope_regions") or "").split(";") if r]
    rows = []
    for r in regions:
        if r["region"] not in scope or r.get("region_class") == "coronary":
            continue
        withheld = r.get("withheld_reason")
        rows.append({"name": r["region"], "agatston": whole(r.get("agatston")),
                     "empty": not withheld and not (r.get("volume_mm3") or 0) > 0,
                     "volume": _fmt(r.get("volume_mm3")),
                     "mass": "uncalibrated" if r.get("mass_mg") is None and not withheld
                     else _fmt(r.get("mass_mg")),
                     "lesions": _fmt(r.get("n_lesions")),
                     "threshold": f"withheld: {withheld}" if withheld else
                     f"{_fmt(r.get('threshold_hu'), 0)} HU"
                     + (f" ({r['threshold_rule']})" if r.get("threshold_rule") else "")})
    return rows


def _protocol(s: dict[str, Any]) -> dict[str, Any]:
    codes = [c for c in (s.get("protocol_deviations") or "").split(";") if c]
    if str(s.get("agatston_comparable")).lower() == "true":
        return {"text": "Comparable with the reference calcium-scoring protocol (120 kVp, "
                        "2.5-3 mm, reference kernel, no contrast).", "deviations": []}
    rule = (" The score was found above a contrast rule's threshold: it is not an Agatston "
            "score at 130 HU." if s.get("headline_threshold_rule") else "")
    return {"text": f"Not comparable with the reference calcium-scoring protocol (see "
                    f"Technique).{rule}",
            "deviations": [(c, describe(c)) for c in codes]}


def _totals(s: dict[str, Any]) -> list[tuple[str, str]]:
    no_bsa = f"not computed: {s.get('bsa_source') or 'no height or weight'}"
    return [("Calcium volume (mm3)", _said(s.get("volume_mm3"), "-")),
            ("Calcium mass (mg)", _said(s.get("mass_mg"), "not computed: no scanner "
                                        "calibration (c) was configured")),
            ("Lesions", _said(s.get("n_lesions"), "-")),
            ("Calc/BSA (mm3/m2)", _said(s.get("volume_per_bsa_mm3_m2"), no_bsa)),
            ("BSA (m2)", _said(s.get("bsa_m2"), no_bsa, 2))]


def _risk(s: dict[str, Any]) -> list[tuple[str, str]]:
    if s.get("scope") != "coronary":
        return [("Risk category", "not given: defined for coronary calcium only")]
    if not s.get("risk_category"):
        basis = (s.get("risk_basis") or "").removeprefix("empty: ")
        return [("Risk category", f"not given: {basis or 'no score by the definition'}")]
    mesa = s.get("mesa_chd_10y_risk_pct")
    why = s.get("mesa_withheld_reason") or "no risk factors in the manifest"
    return [("Risk category (Agatston)", str(s["risk_category"])),
            ("CAC-DRS", clinical.cac_drs_text(s)),
            ("MESA 10-year CHD risk", f"{mesa:.1f} % (McClelland et al., JACC 2015)"
             if mesa is not None else f"not computed: {why}")]


def _apart(regions: list[dict[str, Any]]) -> list[str]:
    """Calcium outside the headline that is not vascular, totalled per class."""
    totals: dict[str, list[float]] = {}
    for r in regions:
        cls = r.get("region_class")
        if cls in APART and r.get("volume_mm3") not in (None, ""):
            t = totals.setdefault(cls, [0.0, 0.0, 0.0])
            t[0] += float(r["volume_mm3"])
            t[1] += float(r.get("agatston") or 0)
            t[2] += 1
    return [f"{APART[c]} {v:,.1f} mm3 (Agatston {whole(a)}, {int(n)} region(s))"
            for c, (v, a, n) in totals.items() if v > 0]


def _no_images(s: dict[str, Any], any_lesion: bool) -> str:
    """Why there is no key image: a withheld headline, no calcium at all, or none in the
    headline's scope."""
    if s.get("withheld_reason"):
        return f"No key image: the headline's score is withheld ({s['withheld_reason']})."
    if not any_lesion:
        return "No calcium was found at or above the threshold: there is no lesion to show."
    return ("No key image: the headline's scope holds no lesion to show (its score is withheld "
            "or it has no calcium); the calcium elsewhere is in the tables above.")


def _key_text(territories: bool) -> str:
    return ("Axial slices through the largest lesions of the headline's scope (soft-tissue "
            "window, 20 mm scale bar, patient directions at the edges), each lesion circled "
            "in green; " + ("calcium coloured by territory (bone, other structures and calcium "
                            "in no region in muted colours: not vascular)." if territories else
                            "calcium coloured by density weight."))


def _method(s: dict[str, Any], config: dict[str, Any], weight_hu) -> str:
    sc = config.get("scoring", {})
    bands = weight_hu if weight_hu is not None else (sc.get("density_weight_hu") or [])
    volume_rule = ("HU interpolated linearly along z to isotropic voxels (after Callister "
                   "1998)" if s.get("volume_method") == "interpolated" else
                   "kept voxels x voxel volume")
    scoring = (
        "Agatston (Agatston et al., JACC 1990): density weight from each slice lesion's peak "
        "HU (weight 1 from the threshold, 2, 3, 4 from "
        f"{', '.join(_fmt(float(w)) for w in list(bands)[1:])} HU), scaled by increment / "
        f"{_fmt(sc.get('reference_increment_mm'))} mm; " if sc.get("agatston", True)
        else "Agatston not computed (scoring.agatston: false); ")
    mass = (f"mass = c x sum(HU - water HU) x voxel volume with c = "
            f"{_fmt(s.get('mass_calibration_mg_per_cm3_per_hu'), 3)} mg/(cm3 HU) and "
            f"water {_fmt(s.get('calibration_water_hu'))} HU; "
            if s.get("mass_calibration_mg_per_cm3_per_hu") not in (None, "") else
            "mass not computed (no scanner calibration c was configured); ")
    risk = ("risk category 0 / 1 to 10 / 11 to 100 / 101 to 400 / >400 (Rumberger et al., "
            "Mayo Clin Proc 1999); CAC-DRS A and N (Hecht et al., JCCT 2018; its treatment "
            "recommendations are not reproduced, their wording unverified here); MESA 10-year "
            "CHD risk with CAC (McClelland et al., JACC 2015) when the manifest gives the risk "
            "factors; no CAC percentile (no reproducible published formula)"
            if s.get("risk_category") else
            "no risk category, CAC-DRS or MESA risk (defined for coronary calcium only)")
    contrast = ""
    if s.get("contrast_rule"):
        contrast = (f"contrast-enhanced scan: contrast-filled territories by the rule "
                    f"{s['contrast_rule']}, other regions but bone withheld; ")
    return (f"Calcium: HU >= {_fmt(s.get('threshold_hu'))} "
            f"({s.get('threshold_source') or 'config'}); slice lesions on each axial slice, "
            f"kept from {_fmt(s.get('min_lesion_area_mm2'))} mm2; {contrast}{scoring}"
            f"volume = {volume_rule}; {mass}{risk}. Scope: {s.get('scope') or ''}.")
