"""Per-case HTML report (self-contained: images embedded), its PDF, and the cohort index.

The report shows what a clinician reads in a minute: the case (pseudonymous id unless the
config asks for patient identity), scan parameters, totals and per-region scores, risk
category and CAC-DRS, key images, a method statement, and a visible box for every quality
flag. No 10-year risk or percentile is shown: the published methods (e.g. the MESA CHD risk
score with CAC, McClelland et al., JACC 2015;66:1643) need inputs (race/ethnicity, diabetes,
smoking, cholesterol, blood pressure, treatment) that vascalc is not given.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

from ..flags import describe
from ..results.document import scan_of
from .arteries import artery_table

#: the headline's title per scope (docs, conventions: 'Scopes')
SCOPE_TITLE = {
    "coronary": "Coronary calcium",
    "vascular": "Vascular calcium",
    "bone_excluded": "All calcium in the field of view, bone removed by a heuristic (not a "
                     "vascular score)",
    "whole_volume": "All calcium in the field of view, includes bone (not a vascular score)",
}
#: region classes in the order the report lists them: territories first, bone and the rest
#: apart as not vascular
CLASS_ORDER = {"coronary": 0, "vascular": 1, "bone": 2, "other": 3, "outside": 4, "whole": 5}


#: key image size in the report, in points: two per row on an A4 page (about 480 pt wide)
IMAGE_PT = 228


def flag_text(flag: str) -> str:
    """What a quality flag means, in words (from the registry, :mod:`vascalc.flags`)."""
    return describe(flag)

CSS = """
body{font-family:Helvetica,Arial,sans-serif;font-size:11pt;color:#222;margin:24px}
h1{font-size:16pt;margin:0 0 4px 0}h2{font-size:12pt;margin:18px 0 6px 0;color:#3a5f8a}
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:left}th{background:#eef2f7}.big{font-size:14pt;font-weight:bold}
.scope{font-size:12pt;margin:2px 0}.ruo{color:#a33;font-weight:bold;font-size:9pt}
table.grid td{border:none;padding:2pt;vertical-align:top}.cap{font-size:8pt}
@page{size:a4 portrait;margin:1.6cm 1.6cm 2.2cm 1.6cm;
@frame footer{-pdf-frame-content:pdffooter;bottom:0.9cm;margin-left:1.6cm;margin-right:1.6cm;
height:0.6cm}}#pdffooter{font-size:8pt;color:#555}.keep{page-break-inside:avoid;-pdf-keep-with-next:true}
.flags{border:2px solid #c0504d;background:#fdf0ef;padding:6px 10px;margin:10px 0}
.ok{border:1px solid #7aa37a;background:#f1f8f1;padding:6px 10px;margin:10px 0}
.method{font-size:9pt;color:#555}img{margin:4px}
"""


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return html.escape(str(v))


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v, 2 if '(m2)' in k else 1)}</td></tr>"
        for k, v in rows) + "</table>"


def _class_text(cls: str) -> str:
    return {"coronary": "coronary", "vascular": "vascular", "bone": "bone (not vascular)",
            "other": "other structure (not vascular)",
            "outside": "in no region (not vascular)", "whole": "all calcium"}.get(cls, cls)


def _image_grid(images: list[tuple[str, bytes]]) -> str:
    """Key images two to a row, each sized in points so that a row fits an A4 page's text
    width (about 480 pt) in the PDF and a screen alike; each image with its caption."""
    cells = [f'<td><img alt="{html.escape(title)}" width="{IMAGE_PT}pt" '
             f'height="{IMAGE_PT}pt" src="data:image/png;base64,'
             f'{base64.b64encode(png).decode()}"/><br/><span class="cap">{html.escape(title)}'
             "</span></td>" for title, png in images]
    rows = ["<tr>" + "".join(cells[i:i + 2]) + "</tr>" for i in range(0, len(cells), 2)]
    return f'<table class="grid">{"".join(rows)}</table>'


def _said(value: Any, why: str) -> Any:
    """The value, or the reason it is absent (a report never shows a bare placeholder)."""
    return why if value in (None, "") else value


def case_html(doc: dict[str, Any], images: list[tuple[str, bytes]], *, identity: dict[str, str],
              config: dict[str, Any], weight_hu=None, territories: bool = False,
              extra_flags: tuple[str, ...] = ()) -> str:
    """The per-case report. ``weight_hu``: the density bands the scan was scored with (from a
    kVp table, say); the config's when not given. ``extra_flags``: what went wrong while the
    other artefacts were written (shown in the flag box as the row will show them)."""
    s = scan_of(doc)
    flags = [f for f in (s.get("quality_flags") or "").split(";") if f]
    flags += [f for f in extra_flags if f not in flags]
    imgs = _image_grid(images) if images else (
        "<p>No calcium was found at or above the threshold: there is no lesion to show.</p>")
    who = [("Case", s["case_id"])] + [(k, v) for k, v in identity.items()]
    who += [("Study date", _said(s.get("study_date"), "not recorded"))]
    nr = "not recorded"
    params = [("Manufacturer / model", f"{s.get('manufacturer') or nr} / {s.get('model') or nr}"),
              ("kVp", _said(s.get("kvp"), nr)), ("Kernel", _said(s.get("kernel"), nr)),
              ("Slice thickness (mm)", _said(s.get("slice_thickness_mm"), nr)),
              ("Slice increment (mm)", s.get("slice_increment_mm")),
              ("Pixel spacing (mm)", s.get("pixel_spacing_mm")), ("Slices", s.get("n_slices"))]
    no_bsa = f"not computed: {s.get('bsa_source') or 'no height or weight'}"
    withheld = s.get("withheld_reason") or ""
    label = s.get("score_label") or "Agatston score"
    totals = [(label[:1].upper() + label[1:], f"withheld: {withheld}" if withheld else _said(
        s.get("agatston"), "not computed (scoring.agatston: false)")),
              ("Calcium volume (mm3)", s.get("volume_mm3")),
              ("Calcium mass (mg)", _said(s.get("mass_mg"), "not computed: no scanner "
                                          "calibration (c) was configured")),
              ("Lesions", s.get("n_lesions")),
              ("Calc/BSA (mm3/m2)", _said(s.get("volume_per_bsa_mm3_m2"), no_bsa)),
              ("BSA (m2)", _said(s.get("bsa_m2"), no_bsa))]
    ordered = sorted(doc.get("regions", []),
                     key=lambda r: CLASS_ORDER.get(r.get("region_class", "other"), 3))
    regions = "".join(
        f"<tr><td>{html.escape(r['region'])}</td>"
        f"<td>{html.escape(_class_text(r.get('region_class', '')))}</td>"
        f"<td>{_fmt(r['agatston'])}</td>"
        f"<td>{_fmt(r['volume_mm3'])}</td>"
        f"<td>{_fmt(r['mass_mg'] if r.get('withheld_reason') else _said(r['mass_mg'], 'uncalibrated'))}</td>"
        f"<td>{_fmt(r['n_lesions'])}</td>"
        f"<td>{_fmt(_said(r['volume_per_bsa_mm3_m2'], 'no BSA'))}</td>"
        f"<td>{_region_threshold(r)}</td></tr>"
        for r in ordered)
    flag_box = ('<div class="flags"><b>Quality flags</b><ul>' + "".join(
        f"<li><code>{html.escape(f)}</code>: {html.escape(flag_text(f))}</li>"
        for f in flags) + "</ul></div>") if flags else \
        '<div class="ok">No quality flags.</div>'
    sc = config.get("scoring", {})
    agatston_on = s.get("agatston") is not None
    bands = weight_hu if weight_hu is not None else (sc.get("density_weight_hu") or [])
    volume_rule = ("HU interpolated linearly along z to isotropic voxels (after Callister 1998)"
                   if s.get("volume_method") == "interpolated" else "kept voxels x voxel volume")
    scoring_rule = (
        "density weight from each slice lesion's peak HU (weight 1 from the threshold, 2, 3, 4 "
        f"from {', '.join(_fmt(float(w)) for w in list(bands)[1:])} HU); "
        f"Agatston scaled by increment / {_fmt(sc.get('reference_increment_mm'))} mm; "
        if agatston_on else "Agatston not computed (scoring.agatston: false); ")
    method = (
        f"Calcium: HU &gt;= {_fmt(s.get('threshold_hu'))} "
        f"({html.escape(str(s.get('threshold_source') or 'config'))}); slice lesions on each "
        f"axial slice, kept from {_fmt(s.get('min_lesion_area_mm2'))} mm2; {_contrast_text(s)}"
        f"{scoring_rule}"
        f"volume = {volume_rule}; "
        + (f"mass = c x sum(HU - water HU) x voxel volume with c = "
           f"{_fmt(s.get('mass_calibration_mg_per_cm3_per_hu'), 3)} mg/(cm3 HU) and water "
           f"{_fmt(s.get('calibration_water_hu'))} HU; "
           if s.get("mass_calibration_mg_per_cm3_per_hu") not in (None, "") else
           "mass not computed (no scanner calibration c was configured); ")
        + ("risk category 0 / 1 to 10 / 11 to 100 / 101 to 400 / &gt;400 (Rumberger 1999); CAC-DRS "
           "(Hecht 2018)" if s.get("risk_category") else
           "no risk category or CAC-DRS (defined for coronary calcium only)")
        + f". Scope: {html.escape(s.get('scope') or '')}. No 10-year risk or percentile: the published "
        "methods need inputs vascalc is not given. vascalc "
        f"{html.escape(str(s.get('pipeline_version')))}, config sha256 "
        f"{html.escape(str(s.get('config_sha256')))}.")
    scope = s.get("scope") or ""
    covers = (f" ({html.escape(', '.join((s.get('scope_regions') or '').split(';')))})"
              if s.get("scope_regions") else "")
    if s.get("region_source") == "reader":
        covers += f", lesions assigned by reader {html.escape(str(s.get('reader') or ''))}"
    vessels = f"/{s['cac_drs_vessels']}" if s.get("cac_drs_vessels") else ""
    risk = (f" &middot; risk category {_fmt(s.get('risk_category'))} &middot; CAC-DRS "
            f"{_fmt(s.get('cac_drs'))}{html.escape(vessels)}" if s.get("risk_category") else "")
    big = (f"{html.escape(label[:1].upper() + label[1:])}: {html.escape(withheld)}" if withheld
           else f"{html.escape(label[:1].upper() + label[1:])} {_fmt(s.get('agatston'))}{risk}"
           if agatston_on else f"Calcium volume {_fmt(s.get('volume_mm3'))} mm3 (no Agatston "
           "score: scoring.agatston is false)")
    headline = (
        f"<p class=\"scope\">{html.escape(SCOPE_TITLE.get(scope, scope))}{covers}</p>"
        + f"<p class=\"big\">{big}</p>" + _protocol_line(s)
        + (f"<p>No risk category: "
           f"{html.escape((s.get('risk_basis') or '').removeprefix('empty: '))}.</p>"
           if agatston_on and not s.get("risk_category") else ""))
    key_text = (
        "Axial slices through the largest lesions of the headline's scope (soft-tissue window) "
        "and a maximum intensity projection; " + (
            "calcium coloured by territory (legend in each image; bone, other structures and "
            "calcium in no region in muted colours: not vascular)." if territories else
            "calcium coloured by density weight: yellow 1, orange 2, red 3, magenta 4."))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<title>vascalc report {html.escape(s['case_id'])}</title><style>{CSS}</style>
<style media="screen">#pdffooter{{display:none}}</style></head>
<body>
<div id="pdffooter">vascalc report, case {html.escape(s['case_id'])}, page <pdf:pagenumber/> of
<pdf:pagecount/>. For research use only.</div>
<h1>Vascular calcification report</h1>
<p class="ruo">For research use only. Not for diagnostic use.</p>
{_table(who)}
{flag_box}
<h2>Result</h2>
{headline}
{_table(totals)}
{artery_table(doc.get("regions", []))}
<h2>Regions</h2>
<table><tr><th>region</th><th>class</th><th>Agatston</th><th>volume (mm3)</th><th>mass (mg)</th>
<th>lesions</th><th>Calc/BSA (mm3/m2)</th><th>threshold</th></tr>{regions}</table>
<h2>Scan</h2>
{_table(params)}
<div class="keep"><h2>Key images</h2>
{f"<p>{key_text}</p>" if images else ""}
{imgs}</div>
<h2>Method</h2><p class="method">{method}</p>
<p class="ruo">For research use only. Not for diagnostic use. vascalc
{html.escape(str(s.get('pipeline_version')))}, config sha256
{html.escape(str(s.get('config_sha256')))}.</p>
</body></html>
"""


def _contrast_text(s: dict[str, Any]) -> str:
    """The method's sentence on contrast: the rule, and the phase and where it came from."""
    rule = s.get("contrast_rule") or ""
    if not rule:
        return ""
    phase = (f", {html.escape(str(s['contrast_phase']))} phase (from "
             f"{html.escape(str(s.get('contrast_phase_source') or ''))})"
             if s.get("contrast_phase") else "")
    return (f"contrast-enhanced scan: contrast-filled territories by the rule "
            f"{html.escape(rule)}{phase}, other regions but bone withheld (docs, conventions: "
            "'Contrast'); ")


def _region_threshold(r: dict[str, Any]) -> str:
    """A region row's threshold cell: the HU and the contrast rule that set it, or why the
    region's numbers are withheld."""
    if r.get("withheld_reason"):
        return f"withheld: {html.escape(str(r['withheld_reason']))}"
    if r.get("threshold_hu") in (None, ""):
        return ""
    rule = f" ({html.escape(str(r['threshold_rule']))})" if r.get("threshold_rule") else ""
    return f"{_fmt(r['threshold_hu'])} HU{rule}"


def _protocol_line(s: dict[str, Any]) -> str:
    """Whether the headline is comparable with the reference calcium-scoring protocol, and
    each deviation in words (docs, conventions: 'The reference protocol')."""
    codes = [c for c in (s.get("protocol_deviations") or "").split(";") if c]
    comparable = s.get("agatston_comparable") in (True, "true")
    if comparable:
        return ("<p>Comparable with the reference calcium-scoring protocol (120 kVp, 2.5-3 mm, "
                "reference kernel, no contrast).</p>")
    why = "".join(f"<li><code>{html.escape(c)}</code>: {html.escape(flag_text(c))}</li>"
                  for c in codes)
    rule = (" The score was found above a contrast rule's threshold: it is not an Agatston "
            "score at 130 HU." if s.get("headline_threshold_rule") else "")
    return (f"<p><b>Not comparable with the reference calcium-scoring protocol.</b>{rule}</p>"
            + (f"<ul>{why}</ul>" if why else ""))


def html_to_pdf(text: str) -> bytes:
    """The PDF of a report, rendered from its HTML by xhtml2pdf (pure Python)."""

    from reportlab import rl_config  # lazy: reportlab (xhtml2pdf's), for PDF reports only
    from xhtml2pdf import files, pisa  # lazy: xhtml2pdf, for PDF reports only

    logging.getLogger("xhtml2pdf").setLevel(logging.ERROR)
    # images as binary zlib streams: reportlab's ASCII85 text encoding runs in pure Python
    # (about 0.1 s per report) and makes the file larger
    rl_config.useA85 = 0
    # buffers in memory: xhtml2pdf's spill-over temporary files are left to the garbage
    # collector, and a full collection per report cost about 0.13 s
    files.pisaTempFile.STRATEGIES = (io.BytesIO, io.BytesIO)
    buf = io.BytesIO()
    status = pisa.CreatePDF(text, dest=buf, encoding="utf-8")
    if status.err:
        raise RuntimeError(f"xhtml2pdf reported {status.err} error(s)")
    return buf.getvalue()


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
<style>{CSS} th{{cursor:pointer}} #t{{font-size:0.85em}}
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
