"""Tidy tables: scans.csv, lesions.csv, data_dictionary.csv, and per-case result.json.

One row per scan (ok or failed) and one per lesion; every row echoes the case id and the
provenance (scikit-image ``regionprops_table``, pyradiomics ``generalinfo.py``). A failed case
is a row with status=failed, an error code and a message, and empty score columns: never 0,
never NaN. Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..types import CaseFailure, ScanResult
from .columns import LESIONS, SCANS, Column, names


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _num(v: float | None, ndigits: int | None = None) -> float | None:
    if v is None:
        return None
    if not math.isfinite(v):
        raise ValueError(f"refusing to write a non-finite number {v!r}")
    return round(v, ndigits) if ndigits is not None else v


def scan_row(r: ScanResult | CaseFailure, *, patient_id: str = "", source_path: str = "",
             extra: dict[str, Any] | None = None, settings: dict[str, Any],
             demographics: bool = False) -> dict[str, Any]:
    """One scans.csv row. ``settings`` holds the provenance columns of the run, so failed rows
    carry them too."""
    row: dict[str, Any] = {n: None for n in names("scans")}
    row.update(case_id=r.case_id, patient_id=patient_id, source_path=source_path)
    row.update({k: settings.get(k) for k in ("threshold_hu", "min_lesion_area_mm2",
                                            "mass_calibration_mg_per_cm3_per_hu",
                                            "config_sha256")})
    row["pipeline_version"] = __version__
    if isinstance(r, CaseFailure):
        row.update(status="failed", error_code=r.error_code, error=r.error)
    else:
        m, w, b = r.meta, r.whole, r.bsa
        inc, drow, dcol = r.spacing_mm
        row.update(
            study_date=m.study_date, patient_age=m.patient_age if demographics else "",
            patient_sex=m.patient_sex if demographics else "",
            series_instance_uid=m.series_instance_uid, status="ok",
            error_code="", error="", scope="whole_volume",
            agatston=_num(w.agatston), volume_mm3=_num(w.volume_mm3), mass_mg=_num(w.mass_mg),
            mass_status="uncalibrated" if w.mass_mg is None else "calibrated",
            n_lesions=w.n_lesions, n_slice_lesions=w.n_slice_lesions,
            risk_category=r.risk_category, cac_drs=r.cac_drs,
            height_cm=_num(b.height_cm), weight_kg=_num(b.weight_kg), bsa_m2=_num(b.bsa_m2),
            bsa_formula=b.formula, bsa_source=b.source,
            volume_per_bsa_mm3_m2=_num(r.volume_per_bsa_mm3_m2),
            slice_thickness_mm=m.slice_thickness_mm, slice_increment_mm=_num(inc),
            pixel_spacing_mm=f"{drow:g}x{dcol:g}", pixel_spacing_row_mm=drow,
            pixel_spacing_col_mm=dcol, n_slices=r.shape[0], n_rows=r.shape[1],
            n_cols=r.shape[2], kvp=m.kvp, manufacturer=m.manufacturer, model=m.model,
            kernel=m.kernel, quality_flags=";".join(r.quality_flags),
        )
    for k, v in (extra or {}).items():
        if k not in row:
            row[k] = v
    return row


def lesion_rows(r: ScanResult) -> list[dict[str, Any]]:
    return [
        {"case_id": r.case_id, "lesion_id": le.lesion_id, "region": "whole",
         "n_slices": le.n_slices, "n_voxels": le.n_voxels, "volume_mm3": le.volume_mm3,
         "mass_mg": le.mass_mg, "agatston": le.agatston, "peak_hu": le.peak_hu,
         "mean_hu": le.mean_hu, "centroid_x_mm": le.centroid_x_mm,
         "centroid_y_mm": le.centroid_y_mm, "centroid_z_mm": le.centroid_z_mm}
        for le in r.lesions
    ]


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"refusing to write a non-finite number {v!r}")
        return repr(float(f"{v:.12g}"))  # 12 significant digits: exact to 1e-11 relative
    return str(v)


def to_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in columns])
    return buf.getvalue()


def data_dictionary(extra_scan_columns: Iterable[str] = ()) -> str:
    rows: list[dict[str, Any]] = []
    for table, cols in (("scans", SCANS), ("lesions", LESIONS)):
        for c in cols:
            rows.append({"table": table, "name": c.name, "type": c.type, "unit": c.unit,
                         "meaning": c.meaning})
    for name in extra_scan_columns:
        rows.append({"table": "scans", "name": name, "type": "string", "unit": "",
                     "meaning": "carried unchanged from the manifest"})
    return to_csv(rows, ["table", "name", "type", "unit", "meaning"])


def write_tables(out: Path, scan_rows: list[dict[str, Any]], les_rows: list[dict[str, Any]],
                 extra_scan_columns: list[str]) -> dict[str, Path]:
    scan_cols = names("scans") + [c for c in extra_scan_columns if c not in names("scans")]
    paths = {"scans": out / "scans.csv", "lesions": out / "lesions.csv",
             "data_dictionary": out / "data_dictionary.csv"}
    write_atomic(paths["scans"], to_csv(scan_rows, scan_cols))
    write_atomic(paths["lesions"], to_csv(les_rows, names("lesions")))
    write_atomic(paths["data_dictionary"],
                 data_dictionary([c for c in extra_scan_columns if c not in names("scans")]))
    return paths


def write_json(path: Path, doc: Any) -> None:
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n")


__all__ = ["Column", "data_dictionary", "lesion_rows", "scan_row", "to_csv", "write_atomic",
           "write_json", "write_tables"]
