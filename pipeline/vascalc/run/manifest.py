"""Manifests: a CSV of the cases to score, one row each (docs, inputs: 'The manifest').

Columns case_id and path (a series folder or file, relative to the manifest) and optionally
patient_id, height_cm, weight_kg, mass_calibration_mg_per_cm3_per_hu, calibration_water_hu
and regions; any other column (age, sex, scan_date, timepoint, clinical covariates) is carried
unchanged into scans.csv. Validation errors name the line, the value and what is allowed; a
column that collides with an output column, appears twice, or a row longer than the header is
refused; a column that looks like a known one's typo is warned about.
"""

from __future__ import annotations

import csv
import difflib
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.bsa import check_anthropometry
from ..core.mesa import FACTORS, check_combination, parse_factor
from ..errors import AnthropometryError, ManifestError
from ..records import Anthropometry
from ..results.columns import names as column_names
from ..values import is_device_name, parse_date

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MANIFEST_KNOWN = ("case_id", "path", "patient_id", "height_cm", "weight_kg",
                  "mass_calibration_mg_per_cm3_per_hu", "calibration_water_hu", "regions")


def _float_or_none(value: str, column: str, line: int, manifest: Path) -> float | None:
    value = (value or "").strip()
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ManifestError(f"line {line}: {column}={value!r} is not a number",
                            path=str(manifest)) from None
    if not math.isfinite(number):
        raise ManifestError(f"line {line}: {column}={value!r} is not a finite number",
                            path=str(manifest))
    return number


def manifest_warnings(columns: Sequence[str]) -> list[str]:
    """Unknown manifest columns that look like a known one (a typo carries the value as a
    covariate while BSA or the calibration silently falls back): one warning each."""
    out = []
    for c in columns:
        if c in MANIFEST_KNOWN:
            continue
        close = difflib.get_close_matches(c, MANIFEST_KNOWN, n=1, cutoff=0.75) or [
            k for k in MANIFEST_KNOWN if c and (k.startswith(c + "_") or c.startswith(k))]
        if close:
            out.append(f"column {c!r} is not a manifest column vascalc reads; did you mean "
                       f"{close[0]!r}? It is carried into scans.csv as a covariate")
    return out


def read_csv_rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A manifest CSV's header and rows (UTF-8, with or without a byte-order mark), refused by
    name when it cannot be read, names a column twice (only the last would be read) or has a
    row with more fields than the header (an unquoted comma). Every manifest reader uses it."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ManifestError(f"cannot read manifest: {err}", path=str(manifest)) from None
    twice = sorted(c for c, n in Counter(columns).items() if n > 1)
    if twice:
        raise ManifestError(f"column(s) {', '.join(twice)} appear more than once in the header "
                            "(only the last would be read)", path=str(manifest))
    long_row = next((i for i, r in enumerate(rows, start=2) if None in r), None)
    if long_row is not None:
        raise ManifestError(f"line {long_row} has more fields than the header (an unquoted "
                            "comma?)", path=str(manifest))
    return columns, rows


def read_manifest(manifest: Path, *, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Read and validate a manifest CSV (paths relative to the manifest's folder): one dict of
    case fields per row (case_id, path, display_path, patient_id, anthropometry,
    calibration, water_hu, extra, regions). Column names that look like a known column's
    typo are added to ``warnings``."""
    columns, rows = read_csv_rows(manifest)
    if warnings is not None:
        warnings.extend(f"{manifest}: {w}" for w in manifest_warnings(columns))
    missing = [c for c in ("case_id", "path") if c not in columns]
    if missing:
        raise ManifestError(f"missing column(s) {', '.join(missing)}; found {columns}",
                            path=str(manifest))
    if not rows:
        raise ManifestError("the manifest has no rows", path=str(manifest))
    clash = [c for c in columns if c not in MANIFEST_KNOWN and c in column_names("scans")]
    if clash:
        raise ManifestError(
            f"column(s) {', '.join(clash)} are vascalc output columns of scans.csv; a manifest "
            "column with that name would be lost", path=str(manifest),
            hint="rename them (e.g. manifest_" + clash[0] + ") and join them back after the run")
    cases: list = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        cid = (row.get("case_id") or "").strip()
        if not _SAFE_ID.match(cid):
            raise ManifestError(
                f"line {i}: case_id {cid!r} is not a safe name (letters, digits, '.', '_', '-'; "
                "starting with a letter or digit; at most 64 characters)", path=str(manifest))
        if is_device_name(cid):
            raise ManifestError(f"line {i}: case_id {cid!r} is a device name on Windows (CON, "
                                "PRN, AUX, NUL, COM1-9, LPT1-9): no folder can have it",
                                path=str(manifest))
        if cid.casefold() in seen:
            raise ManifestError(f"line {i}: case_id {cid!r} already used on line "
                                f"{seen[cid.casefold()]} (ids that differ only in case are one "
                                "folder on macOS and Windows)", path=str(manifest))
        seen[cid.casefold()] = i
        rel = (row.get("path") or "").strip()
        if not rel:
            raise ManifestError(f"line {i}: path is empty", path=str(manifest))
        h = _float_or_none(row.get("height_cm", ""), "height_cm", i, manifest)
        w = _float_or_none(row.get("weight_kg", ""), "weight_kg", i, manifest)
        try:
            if h is not None:
                check_anthropometry(h, w if w is not None else 70.0, source=f"line {i}")
            if w is not None:
                check_anthropometry(h if h is not None else 170.0, w, source=f"line {i}")
        except AnthropometryError as err:
            raise ManifestError(str(err).split(" -> ")[0], path=str(manifest)) from None
        cal = _float_or_none(row.get("mass_calibration_mg_per_cm3_per_hu", ""),
                             "mass_calibration_mg_per_cm3_per_hu", i, manifest)
        if cal is not None and not (0 < cal < 10):
            raise ManifestError(f"line {i}: mass_calibration_mg_per_cm3_per_hu={cal:g} is outside "
                                "(0, 10) mg/(cm3*HU)", path=str(manifest))
        water = _float_or_none(row.get("calibration_water_hu", ""), "calibration_water_hu", i,
                               manifest)
        if water is not None and not -1000 < water < 1000:
            raise ManifestError(f"line {i}: calibration_water_hu={water:g} is outside (-1000, "
                                "1000) HU", path=str(manifest))
        sd = (row.get("scan_date") or "").strip()
        if sd and parse_date(sd) is None:
            raise ManifestError(f"line {i}: scan_date {sd!r} is not a date (yyyy-mm-dd or "
                                "yyyymmdd)", path=str(manifest),
                                hint="fix the date, or leave the cell empty to use the DICOM "
                                     "StudyDate")
        if sd:  # one spelling (ISO) in scans.csv, typed as a date like the DICOM study_date
            row["scan_date"] = str(parse_date(sd))
        # the MESA risk factors: a value the model cannot take costs that case its MESA risk
        # (the row says why), never the run: sex and age were covariates long before MESA
        parsed: dict[str, Any] = {}
        for column in (c for c in FACTORS if c in row):
            try:
                parsed[column] = parse_factor(column, row[column] or "")
            except ValueError as err:
                if warnings is not None:
                    warnings.append(f"{manifest}: line {i}: {err}; no MESA risk for this case "
                                    "(fix the cell, or leave it empty)")
        conflict = check_combination(parsed.get("total_cholesterol_mg_dl"),
                                     parsed.get("hdl_cholesterol_mg_dl"))
        if conflict and warnings is not None:
            warnings.append(f"{manifest}: line {i}: columns total_cholesterol_mg_dl and "
                            f"hdl_cholesterol_mg_dl: {conflict}; no MESA risk for this case")
        pid = (row.get("patient_id") or "").strip() or None
        extra = {k: (v if v is not None else "") for k, v in row.items()
                 if k is not None and k not in MANIFEST_KNOWN}
        target = Path(rel) if Path(rel).is_absolute() else manifest.parent / rel
        reg = (row.get("regions") or "").strip()
        reg_path = None if not reg else str(Path(reg) if Path(reg).is_absolute()
                                            else manifest.parent / reg)
        cases.append(dict(case_id=cid, path=str(target), display_path=rel, patient_id=pid,
                          anthropometry=Anthropometry(height_cm=h, weight_kg=w),
                          calibration=cal, water_hu=water, extra=extra, regions=reg_path))
    return cases
