"""Writers of the micro-CT outputs: the tables (CSV, columns from
:mod:`vascalc.results.microct_columns`), their data dictionary, and one report page per
animal (its scans over time points, in mm3 and mg HA)."""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from pathlib import Path

from ..files import write_atomic
from ..results.microct_columns import TABLES, MicroColumn, dictionary_rows
from ..values import distinct_name
from .tables import to_csv as table_csv


def to_csv(rows: list[dict], columns: tuple[MicroColumn, ...]) -> str:
    """A micro-CT table as CSV, written as every vascalc table is (:func:`.tables.to_csv`:
    booleans as true/false, non-finite numbers refused, spreadsheet formulas defused)."""
    return table_csv(rows, [c.name for c in columns])


def write_tables(out: Path, tables: dict[str, list[dict]]) -> list[Path]:
    """OUT/microct_scans.csv, microct_regions.csv, microct_lesions.csv and
    microct_data_dictionary.csv; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, cols in TABLES.items():
        p = out / f"{name}.csv"
        write_atomic(p, to_csv(tables.get(name, []), cols))
        written.append(p)
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["table", "name", "type", "unit", "meaning"], lineterminator="\n")
    w.writeheader()
    w.writerows(dictionary_rows())
    p = out / "microct_data_dictionary.csv"
    write_atomic(p, buf.getvalue())
    return [*written, p]


def _num(v, digits: int = 4) -> str:
    return "—" if v is None or v == "" else f"{float(v):.{digits}g}"


def animal_reports(out: Path, scans: list[dict]) -> list[Path]:
    """OUT/animals/<animal_id>/report.html: each animal's scans by time point (scans without
    an animal_id have none)."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in scans:
        if r.get("animal_id"):
            by[r["animal_id"]].append(r)
    written = []
    for animal, rows in sorted(by.items()):
        safe = distinct_name(animal, "animal")  # one folder per animal, as patients get
        e = html.escape
        body = "".join(
            f"<tr><td>{e(r.get('time_point') or '')}</td><td>{e(r['case_id'])}</td>"
            f"<td>{e(r.get('status', ''))}</td>"
            f"<td>{_num(r.get('volume_mm3'))}</td><td>{_num(r.get('mass_mg'))}</td>"
            f"<td>{e(str(r.get('n_lesions') if r.get('n_lesions') is not None else '—'))}</td>"
            f"<td>{e(r.get('calibration_source') or r.get('mass_status') or '')}</td>"
            f"<td>{e(r.get('error') or r.get('quality_flags') or '')}</td></tr>"
            for r in sorted(rows, key=lambda r: (r.get("time_point") or "", r["case_id"])))
        first = rows[0]
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Animal "
            f"{e(animal)}</title><style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;"
            "border-bottom:1px solid #ccc;text-align:left}</style></head><body>"
            f"<h1>Animal {e(animal)}</h1><p>Group {e(first.get('group') or '—')}; treatment "
            f"{e(first.get('treatment') or '—')}. Micro-CT calcification: volume in mm³, mineral "
            "mass in mg of hydroxyapatite (HA). No Agatston score and no clinical risk are given "
            "on micro-CT.</p><table><tr><th>time point</th><th>scan</th><th>status</th>"
            "<th>volume (mm³)</th><th>mass (mg HA)</th><th>lesions</th><th>calibration</th>"
            f"<th>notes</th></tr>{body}</table></body></html>")
        p = out / "animals" / safe / "report.html"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(p, page)
        written.append(p)
    return written
