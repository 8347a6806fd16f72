"""Progression of calcification between a patient's scans, from a scans table.

Each patient's ok scans are put in date order and every consecutive pair becomes a row.
Definitions (each a column, so the user picks the one their study pre-registered):

- absolute change = later - earlier; annualised change = absolute change / years between the
  scans (days / 365.25); relative change = absolute change / earlier (empty when earlier is 0);
- square-root volume difference = sqrt(volume_later) - sqrt(volume_earlier); progression when
  it is >= 2.5 (Hokanson JE, MacKenzie T, Kinney G, et al. Evaluating changes in coronary
  artery calcium: an analytic method that accounts for interscan variability. AJR
  2004;182:1327-1332);
- annual relative volume change = (volume_later / volume_earlier) ** (1 / years) - 1;
  progression when it is > 15% per year (Raggi P, Callister TQ, Shaw LJ. Progression of
  coronary artery calcium and risk of first myocardial infarction in patients receiving
  cholesterol-lowering therapy. Arterioscler Thromb Vasc Biol 2004;24:1272-1277); undefined
  (empty) when the earlier volume is 0;
- ``parameters_differ`` lists the scan parameters that differ between the two scans (slice
  thickness, increment, kVp, kernel, threshold and its source, minimum area, volume method,
  mass calibration, config sha256), because they bias the measured change.

Pure functions over rows (dicts of strings, as csv.DictReader gives them).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ..values import finite_float, parse_date

SCORES = ("agatston", "volume_mm3", "mass_mg", "volume_per_bsa_mm3_m2")
PARAMETERS = ("scope", "scope_regions", "slice_thickness_mm", "slice_increment_mm", "kvp", "kernel",
              "threshold_hu",
              "threshold_source", "min_lesion_area_mm2", "volume_method",
              "mass_calibration_mg_per_cm3_per_hu", "calibration_water_hu", "config_sha256")
HOKANSON_SQRT_VOLUME = 2.5  # mm^(3/2)
RAGGI_ANNUAL = 0.15
DAYS_PER_YEAR = 365.25


_num = finite_float


#: the date a scan is placed by: the manifest's scan_date when given (de-identified DICOM
#: often has shifted or constant StudyDates), else DICOM StudyDate
DATE_KEYS = ("scan_date", "study_date")


def _date(row: dict[str, Any]) -> dt.date | None:
    return _dated(row)[0]


def _dated(row: dict[str, Any]) -> tuple[dt.date | None, str]:
    """The scan's date and the column it came from."""
    for key in DATE_KEYS:
        v = (row.get(key) or "").strip()
        if v:
            # a date given but not a date is not replaced by the next column's silently
            return parse_date(v), key
    return None, ""


def pair_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Progression rows for every consecutive pair of each patient's ok scans, and notes
    (case_id, reason) for scans that could not be placed."""
    notes: list[dict[str, str]] = []
    by_patient: dict[str, list[tuple[dt.date, dict]]] = {}
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("case_id", "")] = counts.get(r.get("case_id", ""), 0) + 1
    twice = sorted(c for c, n in counts.items() if n > 1)
    if twice:  # a scan paired with itself would pass for a follow-up
        raise ValueError(f"case id(s) {', '.join(map(repr, twice[:5]))} occur more than once "
                         "(one row per scan)")
    for r in rows:
        cid = r.get("case_id", "")
        if r.get("status", "ok") != "ok":
            notes.append({"case_id": cid, "reason": "scan failed"})
            continue
        pid = (r.get("patient_id") or "").strip()
        d, source = _dated(r)
        if d is not None:
            r = {**r, "_date_source": source}
        if not pid or d is None:
            notes.append({"case_id": cid, "reason": "no patient_id" if not pid else
                          f"{source} {r.get(source)!r} is not a date" if source else
                          "no study_date or scan_date"})
            continue
        by_patient.setdefault(pid, []).append((d, r))
    out = []
    for pid in sorted(by_patient):
        scans = sorted(by_patient[pid], key=lambda x: (x[0], x[1].get("case_id", "")))
        for (d1, a), (d2, b) in zip(scans, scans[1:]):
            out.append(progression_row(pid, d1, a, d2, b))
    return out, notes


def pair_region_rows(scans: list[dict[str, Any]], regions: list[dict[str, Any]],
                     ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Progression per region: each regions.csv row takes its scan's patient, date and scan
    parameters (joined on case_id) and its own scores, and the rows of one region are paired
    as :func:`pair_rows` pairs scans. A region present in one scan only is left unpaired."""
    by_case = {r.get("case_id", ""): r for r in scans}
    grouped: dict[str, list[dict[str, Any]]] = {}
    notes: list[dict[str, str]] = []
    for reg in regions:
        scan = by_case.get(reg.get("case_id", ""))
        if scan is None:
            notes.append({"case_id": reg.get("case_id", ""),
                          "reason": f"region {reg.get('region')}: case not in the scans table"})
            continue
        merged = {**scan, **{s: reg.get(s) for s in SCORES}}
        grouped.setdefault(reg.get("region", ""), []).append(merged)
    out = []
    for name in sorted(grouped):
        pairs, _ = pair_rows(grouped[name])
        out += [{"region": name, **p} for p in pairs]
    return out, notes


#: scans closer than this are not annualised (a choice: a change over days or weeks is
#: mostly scan-rescan noise, and raising it to the power 365/days overflows); flagged
#: short_interval, with the per-year and annual values empty
MIN_ANNUALISED_DAYS = 90


def progression_row(pid: str, d1: dt.date, a: dict, d2: dt.date, b: dict) -> dict[str, Any]:
    days = (d2 - d1).days
    years = days / DAYS_PER_YEAR
    for r in (a, b):
        v = _num(r.get("volume_mm3"))
        if v is not None and v < 0:
            raise ValueError(f"case {r.get('case_id')}: volume_mm3 {v:g} is negative (not a "
                             "calcium volume)")
    short = 0 < days < MIN_ANNUALISED_DAYS
    row: dict[str, Any] = {"patient_id": pid, "case_id_1": a.get("case_id"),
                           "case_id_2": b.get("case_id"), "date_1": d1.isoformat(),
                           "date_2": d2.isoformat(),
                           "date_source": ";".join(sorted({a.get("_date_source", ""),
                                                           b.get("_date_source", "")} - {""})),
                           "interval_days": days, "interval_years": years,
                           "interval_flag": "same_date" if days <= 0 else
                           "short_interval" if short else ""}
    if short:
        years = 0.0  # not annualised (MIN_ANNUALISED_DAYS)
    for s in SCORES:
        x, y = _num(a.get(s)), _num(b.get(s))
        row[f"{s}_1"], row[f"{s}_2"] = x, y
        change = None if x is None or y is None else y - x
        row[f"{s}_change"] = change
        row[f"{s}_change_per_year"] = None if change is None or years <= 0 else change / years
        row[f"{s}_relative_change"] = None if change is None or not x else change / x
    v1, v2 = _num(a.get("volume_mm3")), _num(b.get("volume_mm3"))
    if v1 is not None and v2 is not None:
        sqrt_diff = math.sqrt(v2) - math.sqrt(v1)
        row["sqrt_volume_difference"] = sqrt_diff
        row["progression_hokanson"] = sqrt_diff >= HOKANSON_SQRT_VOLUME
    else:
        row["sqrt_volume_difference"] = row["progression_hokanson"] = None
    if v1 and v2 is not None and years > 0:
        annual = (v2 / v1) ** (1.0 / years) - 1.0
        row["volume_annual_relative_change"] = annual
        row["progression_raggi"] = annual > RAGGI_ANNUAL
    else:
        row["volume_annual_relative_change"] = row["progression_raggi"] = None
    differ = [p for p in PARAMETERS if (a.get(p) or "") != (b.get(p) or "")]
    row["parameters_differ"] = ";".join(differ)
    return row
