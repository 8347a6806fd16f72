"""What the case report says in clinical words, built from a scans row and its region rows.

Every statement names its source; where a source's wording could not be checked, the report
leaves the statement out rather than paraphrase a guess:

- CAC-DRS (Hecht HS, et al. CAC-DRS: Coronary Artery Calcium Data and Reporting System. J
  Cardiovasc Comput Tomogr 2018;12:185-191): the Agatston categories A0 (0), A1 (1-99), A2
  (100-299) and A3 (300 or more), as the 2023 multimodality appropriate-use criteria
  restate them (Table 1.2, scenarios 18-21), and N, the number of the four main arteries
  with calcium. Its table of treatment recommendations per category is *not* reproduced: its
  text could not be verified here.
- CAC = 0: the 2018 AHA/ACC cholesterol guideline (Grundy SM, et al. Circulation
  2019;139:e1082-e1143) allows statin therapy to be withheld or postponed for an adult at
  intermediate risk whose score is zero, unless they smoke, have diabetes or a family
  history of premature ASCVD, and suggests scanning again in 5 to 10 years.
- Agatston 1000 or more: very high coronary calcium, with more cardiovascular events and
  deaths than a score of 400-999 in MESA (Peng AW, et al. Circulation 2021;143:1571-1583).
- Aortic valve calcium: the ESC/EACTS criteria for severe aortic stenosis in low-gradient
  stenosis, by sex (Baumgartner H, et al. 2017 ESC/EACTS Guidelines for the management of
  valvular heart disease. Eur Heart J 2017;38:2739-2791, Table 6; kept in the 2021
  guidelines, Vahanian A, et al. Eur Heart J 2022;43:561-632): severe stenosis very likely
  from 3000 (men) / 1600 (women), likely from 2000 / 1200, unlikely under 1600 / 800
  Agatston units; it supports, never replaces, echocardiography.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.scopes import is_coronary_score
from .arteries import artery_rows, whole

CAC_DRS_RANGE = {"A0": "Agatston 0", "A1": "Agatston 1-99", "A2": "Agatston 100-299",
                 "A3": "Agatston 300 or more"}
VERY_HIGH_CAC = 1000.0
#: (very likely, likely, unlikely below) in Agatston units, by sex
AORTIC_VALVE_THRESHOLDS = {"male": (3000.0, 2000.0, 1600.0), "female": (1600.0, 1200.0, 800.0)}
#: region names (lower case, any separator) of the extra-coronary findings
FINDINGS = {"aortic_valve": "Aortic valve", "mitral_annulus": "Mitral annulus",
            "aorta_thoracic": "Thoracic aorta", "thoracic_aorta": "Thoracic aorta",
            "aorta": "Aorta", "aorta_abdominal": "Abdominal aorta"}


def number(v: Any) -> float | None:
    """A finite float, or None."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def by_definition(s: dict[str, Any]) -> bool:
    """Whether the headline is an Agatston score by the definition: 130 HU on a non-contrast
    scan, no contrast rule, not withheld."""
    return (s.get("agatston") is not None and not s.get("withheld_reason")
            and not s.get("headline_threshold_rule")
            and number(s.get("headline_threshold_hu")) == 130.0)


def coronary_score(s: dict[str, Any]) -> bool:
    """Whether the row's headline is the coronary score every clinical number rests on: the one
    definition (:func:`vascalc.core.scopes.risk_basis`) that gave its risk category, CAC-DRS and
    MESA risk; the statements and the impression follow it, never a definition of their own."""
    return (s.get("scope") == "coronary" and bool(s.get("risk_category"))
            and is_coronary_score(s.get("risk_basis") or ""))


def _scope_regions(s: dict[str, Any]) -> list[str]:
    return [r for r in (s.get("scope_regions") or "").split(";") if r]


def headline_subject(s: dict[str, Any]) -> str:
    """What the headline covers: its scope, and for a vascular scope its territories (a long
    list named by its first and a count: the territory table lists them all)."""
    scope, regions = s.get("scope") or "", _scope_regions(s)
    if scope == "coronary":
        return "Coronary artery calcium"
    if scope == "vascular":
        if not regions:
            return "Vascular calcium"
        over = (" + ".join(regions) if len(regions) <= 4 else
                f"{regions[0]} + {len(regions) - 1} other territories")
        return f"Vascular calcium, {over}"
    if scope == "bone_excluded":
        return "All calcium in the field of view, bone removed by a heuristic (not a vascular score)"
    bone = "mostly bone" if "bone_dominated" in (s.get("quality_flags") or "") else "includes bone"
    return f"All calcium in the field of view ({bone}; not a vascular score)"


def headline_rule(s: dict[str, Any]) -> str:
    """What the headline number is: 'Agatston score' only for a score by the definition; a
    sum over several territories as that sum; a contrast rule's score as not Agatston."""
    scope, summed = s.get("scope") or "", len(_scope_regions(s)) > 1 and s.get("scope") == "vascular"
    if s.get("agatston") is None and not s.get("withheld_reason"):
        return "calcium volume (no Agatston score: scoring.agatston is false)"
    if not by_definition(s):
        rule = (f"calcium score at {whole(s.get('headline_threshold_hu'))} HU "
                f"({s.get('headline_threshold_rule') or 'not the Agatston threshold'}; not an "
                "Agatston score)")
        return f"sum, {rule}" if summed else rule
    if scope in ("whole_volume", "bone_excluded"):
        return "score by the Agatston method (bone is no coronary or vascular calcium)"
    return "sum of the territories' Agatston scores" if summed else "Agatston score"


def headline_title(s: dict[str, Any]) -> str:
    """The headline's name: its subject and its rule."""
    return f"{headline_subject(s)}: {headline_rule(s)}"


def headline_text(s: dict[str, Any]) -> str:
    """The headline with its number, or why it has none."""
    if s.get("withheld_reason"):
        return f"{headline_subject(s)}: withheld ({s['withheld_reason']})"
    if s.get("agatston") is None:
        volume = number(s.get("volume_mm3"))
        return f"{headline_title(s)} {'-' if volume is None else f'{volume:,.1f}'} mm3"
    return f"{headline_title(s)} {whole(s.get('agatston'))}"


def cac_drs_text(s: dict[str, Any]) -> str:
    """The CAC-DRS category in words: 'A2/N3 (Agatston 100-299; 3 arteries with calcium)'."""
    code = s.get("cac_drs") or ""
    if not code:
        return ""
    vessels = s.get("cac_drs_vessels") or ""
    n = f"; {vessels[1:]} of LM, LAD, LCX, RCA with calcium" if vessels else ""
    return f"CAC-DRS {code}{'/' + vessels if vessels else ''} ({CAC_DRS_RANGE.get(code, code)}{n})"


def statements(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The guideline statements the coronary score calls for: (css class, text), on the one
    definition of the coronary score (:func:`coronary_score`). The CAC = 0 statement only on a
    confirmed zero: a reader's final (marked done, every calcium lesion labelled or the rest
    confirmed not coronary); an automated zero may be calcium that no artery mask covered."""
    if not coronary_score(s):
        return []
    ag = number(s.get("agatston"))
    out = []
    if ag == 0 and not confirmed_zero(s):
        out.append(("note", "Coronary calcium score of zero, not confirmed by a reader: the "
                    "statements of a zero score wait for a reader's final (vascalc review)."))
    elif ag == 0:
        out.append(("note", "Coronary calcium score of zero. Under the 2018 AHA/ACC cholesterol "
                    "guideline (Grundy et al., Circulation 2019), statin therapy may be withheld "
                    "or postponed for an adult at intermediate risk whose score is zero, unless "
                    "they smoke, have diabetes or a family history of premature ASCVD; a new "
                    "scan may be considered in 5 to 10 years."))
    elif ag is not None and ag >= VERY_HIGH_CAC:
        out.append(("alert", f"Very high coronary calcium: Agatston {whole(ag)}, 1000 or more "
                    "(in MESA, more cardiovascular events and deaths than 400-999; Peng et al., "
                    "Circulation 2021)."))
    return out


def confirmed_zero(s: dict[str, Any]) -> bool:
    """Whether a coronary zero is a reader's final: the reader marked the case done and left
    no calcium unlabelled, or confirmed that what they left is not coronary."""
    return (bool(s.get("reader")) and str(s.get("review_done")).lower() == "true"
            and (number(s.get("unlabelled_volume_mm3")) == 0
                 or str(s.get("rest_confirmed_not_coronary")).lower() == "true"))


def sex_of(s: dict[str, Any], covariates: dict[str, str]) -> str:
    """'male', 'female' or '' from the manifest's sex column, else the header's (M/F)."""
    given = (covariates.get("sex") or "").strip().lower()
    if given in ("male", "m", "female", "f"):
        return "male" if given.startswith("m") else "female"
    head = (s.get("patient_sex") or "").strip().upper()
    return {"M": "male", "F": "female"}.get(head, "")


def _key(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def findings(s: dict[str, Any], regions: list[dict[str, Any]],
             covariates: dict[str, str]) -> list[dict[str, str]]:
    """Extra-coronary findings where a region or a reader's label names them: aortic valve
    (with the sex-specific severity criteria), mitral annulus, the aorta and its parts."""
    out = []
    scope = set(_scope_regions(s))
    for r in regions:
        title = FINDINGS.get(_key(r.get("region") or ""))
        if title is None or r.get("region") in scope:  # the headline's own: listed above
            continue
        ag, vol = number(r.get("agatston")), number(r.get("volume_mm3"))
        volume = "volume not given" if vol is None else f"volume {vol:,.1f} mm3"
        text = (f"withheld: {r['withheld_reason']}" if r.get("withheld_reason") else
                "no calcium" if ag == 0 else
                f"Agatston {whole(ag)}, {volume}" if ag is not None else volume)
        if title == "Aortic valve" and ag is not None and not r.get("withheld_reason"):
            text += "; " + valve_severity(ag, sex_of(s, covariates), by_definition(s))
        out.append({"finding": title, "text": text})
    return out


def valve_severity(agatston: float, sex: str, valid: bool) -> str:
    """The ESC/EACTS reading of an aortic valve calcium score (module docstring)."""
    if not valid:
        return "no severity reading: not an Agatston score by the definition"
    if sex not in AORTIC_VALVE_THRESHOLDS:
        return "no severity reading: the criteria depend on sex, which is not given"
    very, likely, unlikely = AORTIC_VALVE_THRESHOLDS[sex]
    if agatston >= very:
        word = "very likely"
    elif agatston >= likely:
        word = "likely"
    elif agatston < unlikely:
        word = "unlikely"
    else:
        word = "indeterminate"
    return (f"severe aortic stenosis {word} by the ESC/EACTS calcium criteria for {sex}s "
            f"({whole(very)} / {whole(likely)} / below {whole(unlikely)}), to be read with "
            "echocardiography")


def impression(s: dict[str, Any], regions: list[dict[str, Any]]) -> list[str]:
    """The impression: a few sentences built from the numbers, the headline first."""
    if s.get("status") != "ok":
        return [f"No result: {s.get('error_code')}."]
    out = [f"{headline_text(s)}."]
    if s.get("withheld_reason"):
        return out
    if s.get("scope") == "coronary":
        if coronary_score(s):
            out.append(f"Risk category {s['risk_category']}; {cac_drs_text(s)}.")
            lm = next((r for r in artery_rows(regions) if r["region"] == "LM"), None)
            if lm is not None and (number(lm.get("agatston")) or 0) > 0:
                out.append(f"Left main involved (Agatston {whole(lm['agatston'])}).")
            risk = number(s.get("mesa_chd_10y_risk_pct"))
            if risk is not None:
                out.append(f"MESA 10-year coronary heart disease risk {risk:.1f} %.")
        else:
            basis = (s.get("risk_basis") or "").removeprefix("empty: ")
            out.append(f"No risk category or CAC-DRS: {basis or 'not a score by the definition'}.")
    else:
        out.append("No coronary risk category: the scope is not coronary.")
    if s.get("agatston") is not None and str(s.get("agatston_comparable")).lower() != "true":
        off = (s.get("protocol_deviations") or "").replace(";", ", ")
        out.append(f"Not comparable with the reference calcium-scoring protocol"
                   f"{' (' + off + ')' if off else ''}.")
    return out


def technique(s: dict[str, Any], ecg_gated: bool | None = None) -> list[tuple[str, str]]:
    """The technique block: how the scan was made, and whether it meets the protocol.
    ``ecg_gated``: what the header records (CardiacSynchronizationTechnique or a TriggerTime,
    :func:`vascalc.values.ecg_gated`); None when it records neither."""
    nr = "not recorded"

    def val(key: str, unit: str = "") -> str:
        v = s.get(key)
        return nr if v in (None, "") else f"{v:g}{unit}" if isinstance(v, float) else f"{v}{unit}"

    contrast = ("contrast-enhanced" + (f", {s['contrast_phase']} phase (from "
                                       f"{s.get('contrast_phase_source') or 'the data'})"
                                       if s.get("contrast_phase") else "")
                if "contrast_enhanced" in (s.get("quality_flags") or "") else
                "none detected (header and lumen HU)")
    comparable = str(s.get("agatston_comparable")).lower() == "true"
    return [
        ("Scanner", f"{s.get('manufacturer') or nr} / {s.get('model') or nr}"),
        ("Tube voltage", val("kvp", " kVp")), ("Kernel", val("kernel")),
        ("Slice thickness / increment",
         f"{val('slice_thickness_mm', ' mm')} / {val('slice_increment_mm', ' mm')}"),
        ("Pixel spacing", val("pixel_spacing_mm", " mm")),
        ("Matrix", f"{s.get('n_rows')} x {s.get('n_cols')}, {s.get('n_slices')} slices"),
        ("ECG gating", "not recorded in the header" if ecg_gated is None else
         "ECG-synchronised (header)" if ecg_gated else "none (header: not synchronised)"),
        ("Contrast", contrast),
        ("Reference protocol", "comparable (120 kVp, 2.5-3 mm, reference kernel, no contrast)"
         if comparable else "not comparable: " + ((s.get("protocol_deviations") or "")
                                                   .replace(";", ", ") or "contrast rule")),
    ]


def person_name(pn: str) -> str:
    """A DICOM person name (family^given^middle^prefix^suffix, PS3.5 6.2) as people write it.

    >>> person_name("Doe^Jane^Q^Dr"), person_name("Phantom^Digital"), person_name("")
    ('Dr Jane Q Doe', 'Digital Phantom', '')
    """
    parts = (pn.split("=")[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    return " ".join(p for p in (prefix, given, middle, family, suffix) if p)


def dicom_date(da: str) -> str:
    """A DICOM date (yyyymmdd) as yyyy-mm-dd; anything else as it is.

    >>> dicom_date("19500101"), dicom_date("1950-01-01"), dicom_date("")
    ('1950-01-01', '1950-01-01', '')
    """
    da = (da or "").strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    return da
