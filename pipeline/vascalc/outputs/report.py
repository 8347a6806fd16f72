"""The run's index (OUT/index.html): every case, sortable and filterable, linked to what
exists. The case report is :mod:`vascalc.outputs.case_report`; its PDF renderer
:mod:`vascalc.outputs.render`."""

from __future__ import annotations

from typing import Any

from ..flags import describe
from .case_report import case_html
from .render import fmt as _fmt
from .render import html_to_pdf, render, stylesheet, typed

__all__ = ["case_html", "flag_text", "html_to_pdf", "index_html"]

def flag_text(flag: str) -> str:
    """What a quality flag means, in words (from the registry, :mod:`vascalc.flags`)."""
    return describe(flag)


#: the index's column headers in words (the column name is each header's tooltip)
INDEX_TITLES = {
    "case_id": "case", "score_label": "what the score is", "agatston": "score",
    "volume_mm3": "volume (mm3)", "mass_mg": "mass (mg)", "n_lesions": "lesions",
    "risk_category": "risk category", "cac_drs": "CAC-DRS",
    "volume_per_bsa_mm3_m2": "Calc/BSA (mm3/m2)", "agatston_comparable": "comparable",
    "protocol_deviations": "protocol deviations", "withheld_reason": "withheld because",
    "quality_flags": "quality flags", "error_code": "error code"}


def _index_cell(v: Any, column: str) -> str:
    """An index cell: lists spaced so they wrap, true/false in words, numbers as the report's."""
    if column == "agatston_comparable" and v not in (None, ""):
        return "yes" if v in (True, "true") else "no"
    if column in ("quality_flags", "protocol_deviations") and v:
        return str(v).replace(";", "; ")
    return _fmt(v, 1)


#: the index's columns; a failed row shows its error code and message across the score
#: columns (compact, and never pushed off-screen at 1280 px by empty score cells)
INDEX_COLUMNS = ["case_id", "patient", "status", "score_label", "agatston", "volume_mm3",
                 "mass_mg", "n_lesions", "risk_category", "cac_drs", "volume_per_bsa_mm3_m2",
                 "agatston_comparable", "protocol_deviations", "withheld_reason", "quality_flags"]


def index_html(scans: list[dict[str, Any]], patients: dict[str, str] | None = None,
               reports: dict[str, tuple[bool, bool]] | None = None) -> str:
    """The run's index (template ``index.html``): every case with its scope, headline
    measures, flags, and for a failed case its error code and message; sortable by any
    column, filterable by status, scope and text (a flag, a case); links to each case's
    report and PDF and each patient's, only where they exist (``reports``: case id ->
    (report.html, report.pdf) written)."""
    patients = patients or {}
    reports = reports or {}
    scans = [typed(s, "scans") for s in scans]
    rows = []
    for s in scans:
        pid = s.get("patient_id") or ""
        has_html, has_pdf = reports.get(s["case_id"], (False, False))
        ok = s.get("status") == "ok"
        rows.append({"case_id": s["case_id"], "status": s.get("status") or "",
                     "scope": s.get("scope") or "", "report": has_html, "pdf": has_pdf,
                     "patient_id": pid, "patient_folder": patients.get(pid, ""),
                     "cells": [_index_cell(s.get(c), c) for c in INDEX_COLUMNS[2:]] if ok
                     else None, "error_code": s.get("error_code") or "",
                     "error": s.get("error") or ""})
    return render("index.html", css=stylesheet(), n_cases=len(scans),
                  n_failed=sum(1 for s in scans if s.get("status") != "ok"),
                  scopes=sorted({s.get("scope") or "" for s in scans} - {""}),
                  head=[(c, INDEX_TITLES.get(c, c)) for c in INDEX_COLUMNS], rows=rows,
                  error_span=len(INDEX_COLUMNS) - 3)
