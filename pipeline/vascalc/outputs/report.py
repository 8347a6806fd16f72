"""The run's index (OUT/index.html): every case, sortable and filterable, linked to what
exists. The case report is :mod:`vascalc.outputs.case_report`; its PDF renderer
:mod:`vascalc.outputs.render`."""

from __future__ import annotations

import html
from typing import Any

from ..flags import describe
from .case_report import case_html
from .render import html_to_pdf, stylesheet

__all__ = ["case_html", "flag_text", "html_to_pdf", "index_html"]

def flag_text(flag: str) -> str:
    """What a quality flag means, in words (from the registry, :mod:`vascalc.flags`)."""
    return describe(flag)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return html.escape(str(v))


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
        return html.escape(str(v).replace(";", "; "))
    return _fmt(v, 1)


def index_html(scans: list[dict[str, Any]], patients: dict[str, str] | None = None,
               reports: dict[str, tuple[bool, bool]] | None = None) -> str:
    """The run's index: every case with its scope, headline measures, flags, and for a failed
    case its error code and message; sortable by any column, filterable by status, scope and
    text (a flag, a case); links to each case's report and PDF and each patient's, only
    where they exist (``reports``: case id -> (report.html, report.pdf) written)."""
    patients = patients or {}
    reports = reports or {}
    # a failed row shows its error code and message across the score columns: compact, and
    # never pushed off-screen at 1280 px by empty score cells
    cols = ["case_id", "patient", "status", "score_label", "agatston", "volume_mm3", "mass_mg",
            "n_lesions", "risk_category", "cac_drs", "volume_per_bsa_mm3_m2",
            "agatston_comparable", "protocol_deviations", "withheld_reason", "quality_flags"]
    head = "".join(f'<th onclick="sortBy({i})" title="{c}">{INDEX_TITLES.get(c, c)}</th>'
                   for i, c in enumerate(cols))
    body = []
    for s in scans:
        cid = html.escape(s["case_id"])
        pid = s.get("patient_id") or ""
        pcell = (f'<a href="patients/{html.escape(patients[pid])}/report.html">'
                 f'{html.escape(pid)}</a>' if pid in patients else "")
        # only what exists is linked: a failed case, or one whose report failed, has none
        has_html, has_pdf = reports.get(s["case_id"], (False, False))
        link = (f'<a href="cases/{cid}/report.html">{cid}</a>' if has_html else cid) + (
            f' <a class="pdf" href="cases/{cid}/report.pdf">PDF</a>' if has_pdf else "")
        if s.get("status") == "ok":
            tds = "".join(f"<td>{c}</td>" for c in
                          [link, pcell] + [_index_cell(s.get(c), c) for c in cols[2:]])
        else:
            tds = (f"<td>{link}</td><td>{pcell}</td><td>{_index_cell(s.get('status'), '')}</td>"
                   f'<td class="err" colspan="{len(cols) - 3}"><b>'
                   f"{html.escape(s.get('error_code') or '')}</b> "
                   f"{html.escape(s.get('error') or '')}</td>")
        body.append(f'<tr data-status="{html.escape(s.get("status") or "")}" '
                    f'data-scope="{html.escape(s.get("scope") or "")}">{tds}</tr>')
    n_failed = sum(1 for s in scans if s.get("status") != "ok")
    scopes = sorted({s.get("scope") or "" for s in scans} - {""})
    options = "".join(f'<option value="{html.escape(x)}">{html.escape(x)}</option>'
                      for x in scopes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>vascalc results</title>
<style>{stylesheet()} body{{max-width:none}} th{{cursor:pointer}} #t{{font-size:0.85em}}
#t td{{max-width:16em;overflow-wrap:break-word;vertical-align:top}}
#t td.err{{max-width:none;color:#8a1f1b;font-size:0.95em}}</style></head><body>
<h1>vascalc results</h1>
<p class="ruo">For research use only. Not for diagnostic use.</p>
<p>{len(scans)} case(s), {n_failed} failed. Click a column to sort; filter below.</p>
<p><label>status <select id="fs" onchange="filt()"><option value="">all</option>
<option value="ok">ok</option><option value="failed">failed</option></select></label>
<label>scope <select id="fc" onchange="filt()"><option value="">all</option>{options}</select>
</label> <label>text (flag, case, error) <input id="ft" oninput="filt()"/></label></p>
<table id="t"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<script>
let asc = true;
function sortBy(i) {{
  const tb = document.querySelector('#t tbody');
  const rows = Array.from(tb.rows);
  const key = r => {{ const c = r.cells[i]; const t = (c ? c.innerText : '').replace(/,/g, '');
    const n = parseFloat(t); return isNaN(n) ? t : n; }};
  rows.sort((a, b) => {{ const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }});
  asc = !asc; rows.forEach(r => tb.appendChild(r));
}}
function filt() {{
  const st = document.getElementById('fs').value, sc = document.getElementById('fc').value;
  const tx = document.getElementById('ft').value.toLowerCase();
  for (const r of document.querySelectorAll('#t tbody tr')) {{
    const ok = (!st || r.dataset.status === st) && (!sc || r.dataset.scope === sc)
      && (!tx || r.innerText.toLowerCase().includes(tx));
    r.style.display = ok ? '' : 'none';
  }}
}}
</script></body></html>
"""
