"""Tidy tables: scans, regions and lesions as CSV and Parquet, the data dictionary, the
Frictionless datapackage.json, and per-case result.json.

One row per scan (ok or failed), per (scan, region) and per lesion; every row echoes the case
id and the provenance (scikit-image ``regionprops_table``, pyradiomics ``generalinfo.py``). A
failed case is a row with status=failed, an error code and a message, and empty score columns:
never 0, never NaN. Every file is written atomically (temporary file, then rename), and every
writer takes its columns from the registry in :mod:`pipeline.outputs.columns`.
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
from .columns import PRIMARY_KEYS, PROVENANCE_KEYS, TABLES, Column, names


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync and rename,
    so a reader (or a run killed at any instant) sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _num(v: float | None) -> float | None:
    if v is None:
        return None
    if not math.isfinite(v):
        raise ValueError(f"refusing to write a non-finite number {v!r}")
    return float(v)


def scan_row(r: ScanResult | CaseFailure, *, patient_id: str = "", source_path: str = "",
             extra: dict[str, Any] | None = None, settings: dict[str, Any],
             demographics: bool = False) -> dict[str, Any]:
    """One scans row. Provenance comes from the result's own settings; for a failed case,
    from ``settings`` (Config.provenance()), so failed rows carry it too."""
    row: dict[str, Any] = {n: None for n in names("scans")}
    row.update(case_id=r.case_id, patient_id=patient_id, source_path=source_path)
    provenance = r.settings if isinstance(r, ScanResult) else settings
    row.update({k: provenance.get(k) for k in PROVENANCE_KEYS})
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
            error_code="", error="", scope=r.settings["scope"],
            agatston=_num(w.agatston), volume_mm3=_num(w.volume_mm3), mass_mg=_num(w.mass_mg),
            mass_status="uncalibrated" if w.mass_mg is None else "calibrated",
            density_score=r.density_score,
            n_lesions=w.n_lesions, n_slice_lesions=w.n_slice_lesions,
            risk_category=r.risk_category, cac_drs=r.cac_drs, cac_drs_vessels=r.cac_drs_vessels,
            height_cm=_num(b.height_cm), weight_kg=_num(b.weight_kg), bsa_m2=_num(b.bsa_m2),
            bsa_formula=b.formula, bsa_source=b.source,
            volume_per_bsa_mm3_m2=_num(r.volume_per_bsa_mm3_m2),
            slice_thickness_mm=m.slice_thickness_mm, slice_increment_mm=_num(inc),
            pixel_spacing_mm=f"{drow:g}x{dcol:g}", pixel_spacing_row_mm=drow,
            pixel_spacing_col_mm=dcol, n_slices=r.shape[0], n_rows=r.shape[1],
            n_cols=r.shape[2], kvp=m.kvp, manufacturer=m.manufacturer, model=m.model,
            kernel=m.kernel, quality_flags=";".join(r.quality_flags),
        )
        if not r.settings.get("agatston", True):
            row.update(agatston=None, density_score=None, risk_category="", cac_drs="",
                       cac_drs_vessels="")
    for k, v in (extra or {}).items():
        if k not in row:
            row[k] = v
    return row


def region_rows(r: ScanResult) -> list[dict[str, Any]]:
    """'whole' first, then each region and 'outside' (kept calcium in no region)."""
    bsa = r.bsa.bsa_m2
    ag = r.settings.get("agatston", True)
    rows = []
    for reg in (r.whole, *r.regions):
        rows.append({"case_id": r.case_id, "region": reg.region,
                     "scope": r.settings["scope"] if reg is r.whole else "region",
                     "agatston": reg.agatston if ag else None, "volume_mm3": reg.volume_mm3,
                     "mass_mg": reg.mass_mg, "density_score": reg.density_score,
                     "n_lesions": reg.n_lesions,
                     "n_slice_lesions": reg.n_slice_lesions,
                     "volume_per_bsa_mm3_m2": None if bsa is None else reg.volume_mm3 / bsa})
    return rows


def lesion_rows(r: ScanResult) -> list[dict[str, Any]]:
    ag = r.settings.get("agatston", True)
    return [
        {"case_id": r.case_id, "lesion_id": le.lesion_id, "region": le.region,
         "n_slices": le.n_slices, "n_voxels": le.n_voxels, "volume_mm3": le.volume_mm3,
         "mass_mg": le.mass_mg, "agatston": le.agatston if ag else None, "peak_hu": le.peak_hu,
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


def _extra_columns(extra: Iterable[str]) -> list[Column]:
    return [Column(n, "string", "", "carried unchanged from the manifest")
            for n in extra if n not in names("scans")]


def table_columns(extra_scan_columns: Iterable[str] = ()) -> dict[str, list[Column]]:
    cols = {t: list(c) for t, c in TABLES.items()}
    cols["scans"] += _extra_columns(extra_scan_columns)
    return cols


def data_dictionary(extra_scan_columns: Iterable[str] = ()) -> str:
    rows = [{"table": t, "name": c.name, "type": c.type, "unit": c.unit, "meaning": c.meaning}
            for t, cols in table_columns(extra_scan_columns).items() for c in cols]
    return to_csv(rows, ["table", "name", "type", "unit", "meaning"])


def datapackage(extra_scan_columns: Iterable[str] = (), *, parquet: bool) -> dict[str, Any]:
    """A Frictionless tabular data package describing the CSV tables, with keys."""
    resources = []
    for table, cols in table_columns(extra_scan_columns).items():
        schema: dict[str, Any] = {
            "fields": [{"name": c.name, "type": c.type, "description": c.meaning,
                        **({"unit": c.unit} if c.unit else {})} for c in cols],
            "primaryKey": list(PRIMARY_KEYS[table]),
            "missingValues": [""],
        }
        if table != "scans":
            schema["foreignKeys"] = [{"fields": ["case_id"],
                                      "reference": {"resource": "scans", "fields": ["case_id"]}}]
        resources.append({"name": table, "path": f"{table}.csv", "profile": "tabular-data-resource",
                          "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                          "schema": schema})
    doc: dict[str, Any] = {"profile": "tabular-data-package", "name": "vascalc-results",
                           "title": "vascalc calcium scores", "resources": resources}
    if parquet:
        doc["x_parquet"] = {t: f"{t}.parquet" for t in TABLES}
    return doc


def _parquet_bytes(csv_text: str, cols: list[Column]) -> bytes:
    """Parquet of a CSV table we just wrote, typed from the registry. Going through
    pyarrow's CSV reader keeps the two files equal value for value (and does not import
    pandas, which building arrays from Python objects would)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
             "boolean": pa.bool_(), "date": pa.date32()}
    table = pcsv.read_csv(
        pa.py_buffer(csv_text.encode("utf-8")),
        convert_options=pcsv.ConvertOptions(
            column_types={c.name: types[c.type] for c in cols}, strings_can_be_null=True,
            true_values=["true"], false_values=["false"]))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_tables(out: Path, rows: dict[str, list[dict[str, Any]]],
                 extra_scan_columns: list[str], *, parquet: bool = True) -> dict[str, Path]:
    """Write every table as CSV (and Parquet), the data dictionary and datapackage.json."""
    cols = table_columns(extra_scan_columns)
    paths: dict[str, Path] = {}
    for table, tcols in cols.items():
        paths[table] = out / f"{table}.csv"
        text = to_csv(rows.get(table, []), [c.name for c in tcols])
        write_atomic(paths[table], text)
        if parquet:
            write_atomic(out / f"{table}.parquet", _parquet_bytes(text, tcols))
    paths["data_dictionary"] = out / "data_dictionary.csv"
    write_atomic(paths["data_dictionary"], data_dictionary(extra_scan_columns))
    write_json(out / "datapackage.json", datapackage(extra_scan_columns, parquet=parquet))
    return paths


def write_json(path: Path, doc: Any) -> None:
    write_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
