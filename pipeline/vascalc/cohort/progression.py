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

Pandas operations over a scans table (:func:`progression_frame`); :func:`pair_rows` takes
and gives plain rows (dicts of strings, as csv.DictReader gives them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from ..values import finite_float, parse_date
from .measurement import measurement_columns

SCORES = ("agatston", "volume_mm3", "mass_mg", "volume_per_bsa_mm3_m2")
PARAMETERS = ("scope", "scope_regions", "slice_thickness_mm", "slice_increment_mm", "kvp", "kernel",
              "threshold_hu",
              "threshold_source", "min_lesion_area_mm2", "volume_method",
              "mass_calibration_mg_per_cm3_per_hu", "calibration_water_hu", "config_sha256")
HOKANSON_SQRT_VOLUME = 2.5  # mm^(3/2)
RAGGI_ANNUAL = 0.15
DAYS_PER_YEAR = 365.25
#: scans closer than this are not annualised (a choice: a change over days or weeks is
#: mostly scan-rescan noise, and raising it to the power 365/days overflows); flagged
#: short_interval, with the per-year and annual values empty
MIN_ANNUALISED_DAYS = 90


_num = finite_float


#: the date a scan is placed by: the manifest's scan_date when given (de-identified DICOM
#: often has shifted or constant StudyDates), else DICOM StudyDate
DATE_KEYS = ("scan_date", "study_date")


def _date(row: dict[str, Any]) -> dt.date | None:
    return _dated(row)[0]


def _dated(row: dict[str, Any]) -> tuple[dt.date | None, str]:
    """The scan's date and the column it came from."""
    for key in DATE_KEYS:
        v = row.get(key)
        if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
            continue  # empty (a typed table's missing date is NaT)
        if isinstance(v, dt.datetime):  # a typed table (read_tables): a Timestamp
            return v.date(), key
        if isinstance(v, dt.date):
            return v, key
        v = str(v).strip()
        if v:
            # a date given but not a date is not replaced by the next column's silently
            return parse_date(v), key
    return None, ""


def refuse_non_finite(df: pd.DataFrame, col: str) -> None:
    """A ValueError naming the first line and column of a table (as csv.DictReader gives it:
    the header is line 1) whose cell reads as infinite or NaN (``inf``, ``-inf``, ``nan``,
    ``1e999``): vascalc writes a missing number as an empty cell, and no median, change or
    ratio means anything with one, so it is refused rather than read as missing."""
    text = df[col].map(lambda v: "" if v is None else str(v)).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = (values.notna() & ~np.isfinite(values)) | (
        values.isna() & text.str.lower().isin(["nan", "+nan", "-nan"]))
    if bool(bad.any()):
        i = int(np.flatnonzero(bad.to_numpy())[0])
        cid = str(df["case_id"].iloc[i]) if "case_id" in df else ""
        raise ValueError(f"line {i + 2}{f' (case {cid})' if cid else ''}, column {col}: "
                         f"{text.iloc[i]!r} is not a finite number ({int(bad.sum())} such "
                         "cell(s)); vascalc writes a missing score as an empty cell -> "
                         "correct or empty that cell")


def pair_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Progression rows for every consecutive pair of each patient's ok scans, and notes
    (case_id, reason) for scans that could not be placed: :func:`progression_frame` on rows
    (dicts of strings, as csv.DictReader gives them), as plain records. A score cell that
    reads as infinite or NaN is refused (:func:`refuse_non_finite`)."""
    frame = pd.DataFrame(rows, dtype=object)
    for col in (c for c in SCORES if c in frame):
        refuse_non_finite(frame, col)
    pairs, notes = progression_frame(frame)
    return _records(pairs), notes.to_dict("records")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Frame rows as dicts with None for missing (never NaN) and Python scalars."""
    out = []
    for rec in df.astype(object).to_dict("records"):
        out.append({k: None if v is None or (isinstance(v, float) and v != v) else
                    v.item() if hasattr(v, "item") else v for k, v in rec.items()})
    return out


def _placed(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The ok scans with a patient and a date (``_date``, ``_date_source``), and a note for
    every other scan."""
    notes: list[dict[str, str]] = []
    keep = []
    for i, row in df.iterrows():
        # a cell missing from some rows is NaN in the frame: empty, as in the CSV
        r = {k: "" if v is None or (isinstance(v, float) and v != v) else v
             for k, v in row.items()}
        cid = r.get("case_id") or ""
        if (r.get("status") or "ok") != "ok":
            notes.append({"case_id": cid, "reason": "scan failed"})
            continue
        pid = str(r.get("patient_id") or "").strip()
        d, source = _dated(r)
        if not pid or d is None:
            notes.append({"case_id": cid, "reason": "no patient_id" if not pid else
                          f"{source} {r.get(source)!r} is not a date" if source else
                          "no study_date or scan_date"})
            continue
        keep.append((i, pid, d, source))
    placed = df.loc[[i for i, *_ in keep]].copy()
    placed["patient_id"] = [pid for _, pid, _, _ in keep]
    placed["_date"] = pd.to_datetime([d for _, _, d, _ in keep])
    placed["_date_source"] = [src for *_, src in keep]
    return placed, notes


def progression_frame(scans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every consecutive pair of each patient's ok scans (sorted by date, then case id, and
    paired by a groupby shift), with the changes and progression criteria of the module
    docstring as columns (in the order of :data:`vascalc.results.columns.PROGRESSION`); and
    the notes (case_id, reason) of the scans that could not be placed."""
    ids = scans["case_id"] if "case_id" in scans else pd.Series([], dtype=object)
    twice = sorted({c for c in ids[ids.duplicated()]})
    if twice:  # a scan paired with itself would pass for a follow-up
        raise ValueError(f"case id(s) {', '.join(map(repr, twice[:5]))} occur more than once "
                         "(one row per scan)")
    placed, notes = _placed(scans)
    placed = placed.sort_values(["patient_id", "_date", "case_id"], kind="stable")
    later = placed.groupby("patient_id", sort=False).shift(-1)
    first = placed[later["case_id"].notna()]
    a, b = first.reset_index(drop=True), later.loc[first.index].reset_index(drop=True)
    b["patient_id"] = a["patient_id"]
    if a.empty:
        return pd.DataFrame(), pd.DataFrame(notes, columns=["case_id", "reason"])
    num = {(side, s): pd.to_numeric(t.get(s, pd.Series(index=t.index, dtype=object)),
                                    errors="coerce").where(lambda v: np.isfinite(v))
           for side, t in (("a", a), ("b", b)) for s in SCORES}
    for side, t in (("a", a), ("b", b)):
        bad = num[(side, "volume_mm3")] < 0
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"case {t['case_id'][i]}: volume_mm3 {num[(side, 'volume_mm3')][i]:g} "
                             "is negative (not a calcium volume)")
    days = (b["_date"] - a["_date"]).dt.days
    years = days / DAYS_PER_YEAR
    short = (days > 0) & (days < MIN_ANNUALISED_DAYS)
    annualised = years.where(~short, 0.0)  # not annualised (MIN_ANNUALISED_DAYS)
    out = pd.DataFrame({
        "patient_id": a["patient_id"], "case_id_1": a["case_id"], "case_id_2": b["case_id"],
        "date_1": a["_date"].dt.strftime("%Y-%m-%d"), "date_2": b["_date"].dt.strftime("%Y-%m-%d"),
        "date_source": [";".join(sorted({x, y} - {""}))
                        for x, y in zip(a["_date_source"], b["_date_source"])],
        "interval_days": days, "interval_years": years,
        "interval_flag": np.where(days <= 0, "same_date", np.where(short, "short_interval", ""))})
    for s in SCORES:
        x, y = num[("a", s)], num[("b", s)]
        change = y - x
        out[f"{s}_1"], out[f"{s}_2"], out[f"{s}_change"] = x, y, change
        out[f"{s}_change_per_year"] = (change / annualised).where(annualised > 0)
        out[f"{s}_relative_change"] = (change / x).where(x.notna() & (x != 0))
    v1, v2 = num[("a", "volume_mm3")], num[("b", "volume_mm3")]
    both = v1.notna() & v2.notna()
    sqrt_diff = (np.sqrt(v2) - np.sqrt(v1)).where(both)
    out["sqrt_volume_difference"] = sqrt_diff
    out["progression_hokanson"] = (sqrt_diff >= HOKANSON_SQRT_VOLUME).astype(object).where(both)
    ok = v1.notna() & (v1 != 0) & v2.notna() & (annualised > 0)
    annual = ((v2 / v1.where(ok)) ** (1.0 / annualised.where(ok)) - 1.0).where(ok)
    out["volume_annual_relative_change"] = annual
    out["progression_raggi"] = (annual > RAGGI_ANNUAL).astype(object).where(ok)
    text = {p: (a.get(p, pd.Series("", index=a.index)).fillna("").astype(str),
                b.get(p, pd.Series("", index=b.index)).fillna("").astype(str)) for p in PARAMETERS}
    out["parameters_differ"] = [";".join(p for p in PARAMETERS if text[p][0][i] != text[p][1][i])
                                for i in range(len(out))]
    out = pd.concat([out, measurement_columns(a, b)], axis=1)  # beside Hokanson and Raggi
    return out, pd.DataFrame(notes, columns=["case_id", "reason"])


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
