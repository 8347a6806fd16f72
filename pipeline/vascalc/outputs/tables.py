"""Tidy tables: scans, regions and lesions as CSV and Parquet, the data dictionary and the
Frictionless datapackage.json, from rows built by :mod:`vascalc.results.document`.

One row per scan (ok or failed), per (scan, region) and per lesion; every row echoes the case
id and the provenance (scikit-image ``regionprops_table``, pyradiomics ``generalinfo.py``). A
failed case is a row with status=failed, an error code and a message, and empty score columns:
never 0, never NaN. Every file is written atomically (temporary file, then rename), and every
writer takes its columns from the registry in :mod:`vascalc.results.columns`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

from ..results.columns import PRIMARY_KEYS, TABLES, WIDE_MEASURES, Column, names, pandas_dtype


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"refusing to write a non-finite number {v!r}")
        return repr(float(f"{v:.12g}"))  # 12 significant digits: exact to 1e-11 relative
    text = str(v)
    if text[:1] in FORMULA_STARTS and not _is_number(text):
        # a header or manifest text a spreadsheet would run as a formula (=1+1, @SUM(...),
        # +cmd): written as text, after OWASP's CSV injection advice; the Parquet keeps it
        return "'" + text
    return text


#: the first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in columns])
    return buf.getvalue()


def _extra_columns(extra: Iterable[str], types: dict[str, str] | None = None) -> list[Column]:
    types = types or {}
    return [Column(n, types.get(n, "string"), "", "carried unchanged from the manifest"
                   + ("" if n not in types else f" ({types[n]}: every value given is one)"))
            for n in extra if n not in names("scans")]


#: manifest columns that are dates (the manifest reader refuses one that is not, and writes
#: it as yyyy-mm-dd): typed date, like the DICOM study_date
DATE_COVARIATES = ("scan_date",)


def covariate_types(rows: list[dict[str, Any]], columns: Iterable[str]) -> dict[str, str]:
    """The type of each carried manifest column: date for a :data:`DATE_COVARIATES` column,
    integer or number when every non-empty value is one (so CSV readers and the Parquet file
    agree), else string."""
    out = {}
    for col in columns:
        values = [str(r.get(col)).strip() for r in rows if r.get(col) not in (None, "")]
        if col in DATE_COVARIATES and values and all(
                re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in values):
            out[col] = "date"  # the manifest checked and wrote each as yyyy-mm-dd
        elif values and all(re.fullmatch(r"[+-]?\d{1,18}", v) for v in values):
            out[col] = "integer"
        elif values and all(_is_number(v) for v in values):
            out[col] = "number"
        else:
            out[col] = "string"
    return out


def _is_number(v: str) -> bool:
    try:
        return math.isfinite(float(v))
    except ValueError:
        return False


def wide_columns(stems: dict[str, str]) -> list[Column]:
    """The columns of regions_wide.csv: case_id, then '<stem>_<measure>' per region (region ->
    snake_case stem, :mod:`vascalc.results.wide`)."""
    cols = [Column("case_id", "string", "", "case identifier (joins scans.csv)")]
    for reg, stem in stems.items():
        cols += [Column(f"{stem}_{m.name}", m.type, m.unit, f"region {reg}: "
                        f"{m.meaning[0].lower()}{m.meaning[1:]} (regions.csv); empty where the "
                        "scan has no such region") for m in WIDE_MEASURES]
    return cols


def table_columns(extra_scan_columns: Iterable[str] = (), regions: dict[str, str] | None = None,
                  types: dict[str, str] | None = None) -> dict[str, list[Column]]:
    """The columns of every table; with ``regions``, also the wide per-scan region table;
    ``types`` of the carried manifest columns (string when not given)."""
    cols = {t: list(c) for t, c in TABLES.items()}
    cols["scans"] += _extra_columns(extra_scan_columns, types)
    if regions is not None:
        cols["regions_wide"] = wide_columns(regions)
    return cols


def data_dictionary(extra_scan_columns: Iterable[str] = (), regions: dict[str, str] | None = None,
                    types: dict[str, str] | None = None) -> str:
    rows = [{"table": t, "name": c.name, "type": c.type,
             "pandas_dtype": pandas_dtype(c.name, c.type), "unit": c.unit, "meaning": c.meaning}
            for t, cols in table_columns(extra_scan_columns, regions, types).items()
            for c in cols]
    return to_csv(rows, ["table", "name", "type", "pandas_dtype", "unit", "meaning"])


def datapackage(extra_scan_columns: Iterable[str] = (), regions: dict[str, str] | None = None, *,
                parquet: bool, types: dict[str, str] | None = None) -> dict[str, Any]:
    """A Frictionless tabular data package describing the CSV tables, with keys."""
    resources = []
    tables = table_columns(extra_scan_columns, regions, types)
    for table, cols in tables.items():
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
        doc["x_parquet"] = {t: f"{t}.parquet" for t in tables}
    return doc


def _parquet_bytes(csv_text: str, cols: list[Column]) -> bytes:
    """Parquet of a CSV table we just wrote, typed from the registry. Going through
    pyarrow's CSV reader keeps the two files equal value for value (and does not import
    pandas, which building arrays from Python objects would)."""
    import pyarrow as pa  # lazy: pyarrow, for Parquet only
    import pyarrow.csv as pcsv  # lazy: pyarrow, for Parquet only
    import pyarrow.parquet as pq  # lazy: pyarrow, for Parquet only

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


def table_files(out: Path, rows: dict[str, list[dict[str, Any]]],
                extra_scan_columns: list[str], regions: dict[str, str], *,
                parquet: bool = True) -> dict[Path, str | bytes]:
    """Every table as CSV (and Parquet), the data dictionary and datapackage.json, as the
    files to write (:func:`write_all` writes them all or none)."""
    types = covariate_types(rows.get("scans", []), extra_scan_columns)
    cols = table_columns(extra_scan_columns, regions, types)
    files: dict[Path, str | bytes] = {}
    for table, tcols in cols.items():
        text = to_csv(rows.get(table, []), [c.name for c in tcols])
        files[out / f"{table}.csv"] = text
        if parquet:
            files[out / f"{table}.parquet"] = _parquet_bytes(text, tcols)
    files[out / "data_dictionary.csv"] = data_dictionary(extra_scan_columns, regions, types)
    files[out / "datapackage.json"] = json_text(datapackage(extra_scan_columns, regions,
                                                            parquet=parquet, types=types))
    return files


def json_text(doc: Any) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"

