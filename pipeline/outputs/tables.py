"""Tidy tables: scans, regions and lesions as CSV and Parquet, the data dictionary and the
Frictionless datapackage.json, from rows built by :mod:`pipeline.result`.

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

from .columns import PRIMARY_KEYS, TABLES, WIDE_MEASURES, Column, names


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


def wide_columns(regions: Iterable[str]) -> list[Column]:
    """The columns of regions_wide.csv: case_id, then '<region>_<measure>' per region."""
    cols = [Column("case_id", "string", "", "case identifier (joins scans.csv)")]
    for reg in regions:
        cols += [Column(f"{reg}_{m.name}", m.type, m.unit, f"{reg}: {m.meaning[0].lower()}"
                        f"{m.meaning[1:]} (regions.csv)") for m in WIDE_MEASURES]
    return cols


def table_columns(extra_scan_columns: Iterable[str] = (), regions: Iterable[str] | None = None,
                  ) -> dict[str, list[Column]]:
    """The columns of every table; with ``regions``, also the wide per-scan region table."""
    cols = {t: list(c) for t, c in TABLES.items()}
    cols["scans"] += _extra_columns(extra_scan_columns)
    if regions is not None:
        cols["regions_wide"] = wide_columns(regions)
    return cols


def data_dictionary(extra_scan_columns: Iterable[str] = (), regions: Iterable[str] | None = None,
                    ) -> str:
    rows = [{"table": t, "name": c.name, "type": c.type, "unit": c.unit, "meaning": c.meaning}
            for t, cols in table_columns(extra_scan_columns, regions).items() for c in cols]
    return to_csv(rows, ["table", "name", "type", "unit", "meaning"])


def datapackage(extra_scan_columns: Iterable[str] = (), regions: Iterable[str] | None = None, *,
                parquet: bool) -> dict[str, Any]:
    """A Frictionless tabular data package describing the CSV tables, with keys."""
    resources = []
    tables = table_columns(extra_scan_columns, regions)
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


def write_tables(out: Path, rows: dict[str, list[dict[str, Any]]],
                 extra_scan_columns: list[str], regions: list[str], *,
                 parquet: bool = True) -> dict[str, Path]:
    """Write every table as CSV (and Parquet), the data dictionary and datapackage.json."""
    cols = table_columns(extra_scan_columns, regions)
    paths: dict[str, Path] = {}
    for table, tcols in cols.items():
        paths[table] = out / f"{table}.csv"
        text = to_csv(rows.get(table, []), [c.name for c in tcols])
        write_atomic(paths[table], text)
        if parquet:
            write_atomic(out / f"{table}.parquet", _parquet_bytes(text, tcols))
    paths["data_dictionary"] = out / "data_dictionary.csv"
    write_atomic(paths["data_dictionary"], data_dictionary(extra_scan_columns, regions))
    write_json(out / "datapackage.json", datapackage(extra_scan_columns, regions,
                                                     parquet=parquet))
    return paths


def write_json(path: Path, doc: Any) -> None:
    write_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
