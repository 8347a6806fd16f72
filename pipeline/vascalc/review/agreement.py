"""Agreement between two readers (vascalc agreement OUT --readers r1,r2).

Over the cases both readers labelled:

- intraclass correlation of each coronary artery's Agatston score and of the coronary total:
  ICC(2,1), two-way random effects, absolute agreement, single rater (Shrout PE, Fleiss JL,
  Psychol Bull 1979;86:420-428; McGraw KO, Wong SP, Psychol Methods 1996;1:30-46):
  (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n), for n cases and k = 2 readers;
- Cohen's kappa (Cohen J, Educ Psychol Meas 1960;20:37-46), (p_o - p_e) / (1 - p_e), on the
  risk categories, on each lesion's label (the label holding most of its Agatston score) and
  on each lesion part's label (a lesion on one slice); 'unlabelled' is a category.

A value the definition does not give (fewer than two cases, no variance, p_e = 1) is left
empty with the reason, never 0 or NaN.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..files import write_all
from ..outputs.tables import to_csv
from ..results.columns import Column
from ..results.document import is_ok
from .cases import load_view, open_run, reader_scores
from .store import Reads, ReadStore, check_reader

AGREEMENT_COLUMNS = [
    Column("measure", "string", "", "what is compared"),
    Column("statistic", "string", "", "icc_2_1 (two-way random, absolute agreement, single "
           "rater) or cohen_kappa"),
    Column("n", "integer", "", "cases (ICC, risk kappa), lesions or lesion parts compared"),
    Column("value", "number", "", "the statistic; empty when undefined (see note)"),
    Column("note", "string", "", "why the value is empty"),
    Column("reader_a", "string", "", "first reader"),
    Column("reader_b", "string", "", "second reader"),
]
CASE_COLUMNS = [
    Column("case_id", "string", "", "case identifier (joins scans.csv)"),
    Column("measure", "string", "", "coronary label or coronary_total, or risk_category"),
    Column("reader_a", "string", "", "first reader's value"),
    Column("reader_b", "string", "", "second reader's value"),
]


def icc_2_1(x: np.ndarray) -> tuple[float | None, str]:
    """ICC(2,1) of an n cases x k readers matrix, and why it is undefined when it is."""
    n, k = x.shape
    if n < 2:
        return None, "fewer than 2 cases"
    grand = x.mean()
    ssr = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ssc = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    sse = float(((x - grand) ** 2).sum()) - ssr - ssc
    msr, msc, mse = ssr / (n - 1), ssc / (k - 1), sse / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    if not denom > 0:
        return None, "no variance between or within cases"
    return (msr - mse) / denom, ""


def cohen_kappa(a: list[str], b: list[str]) -> tuple[float | None, str]:
    """Cohen's kappa of two readers' categories (paired lists), and why it is undefined."""
    if not a:
        return None, "nothing both readers rated"
    cats = sorted(set(a) | set(b))
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = math.fsum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    if pe >= 1.0:
        return None, "both readers used one and the same category throughout (p_e = 1)"
    return (po - pe) / (1.0 - pe), ""


def _lesion_label(view, reads: Reads, lesion_id: int) -> str:
    by: dict[str, float] = {}
    for k in view.slices_of(lesion_id):
        lab = reads.label_of(lesion_id, k) or "unlabelled"
        by[lab] = by.get(lab, 0.0) + view.parts[(lesion_id, k)][0]
    return max(sorted(by), key=lambda lab: by[lab]) if by else "unlabelled"


def agreement(out: Path, readers: tuple[str, str]) -> dict[str, Any]:
    """Compute the agreement over the cases both readers marked done (an unfinished read is
    not a reading to compare), write OUT/agreement/ (agreement.csv, agreement_cases.csv,
    agreement.html); returns the rows and the cases left out as unfinished."""
    ra, rb = (check_reader(r) for r in readers)
    if ra == rb:
        raise UsageError("give two different readers", hint="--readers r1,r2")
    store = ReadStore(out)
    read_by_both = sorted(set(store.cases_read(ra)) & set(store.cases_read(rb)))
    if not read_by_both:
        raise UsageError(f"no case was labelled by both {ra} and {rb}",
                         hint="check the reader names (vascalc review --reader)")
    both = [c for c in read_by_both
            if store.reads(ra, c).done and store.reads(rb, c).done]
    unfinished = [c for c in read_by_both if c not in both]
    if not both:
        raise UsageError(f"{ra} and {rb} both labelled {len(read_by_both)} case(s) but did not "
                         f"both mark any done ({', '.join(unfinished[:5])})",
                         hint="mark finished cases done in vascalc review")
    opened = open_run(out, both)
    config, cases, docs = opened.config, opened.cases, opened.docs
    coronary = config.review.coronary()
    values: dict[str, list[tuple[float, float]]] = {m: [] for m in [*coronary, "coronary_total"]}
    risk: tuple[list[str], list[str]] = ([], [])
    lesion_labels: tuple[list[str], list[str]] = ([], [])
    part_labels: tuple[list[str], list[str]] = ([], [])
    case_rows = []
    for cid, doc in docs.items():
        if not is_ok(doc):
            continue
        view = load_view(cases[cid], config, doc)
        reads = store.reads(ra, cid), store.reads(rb, cid)
        sa, sb = (reader_scores(view, r, config) for r in reads)
        for m in coronary:
            values[m].append((sa["labels"][m]["agatston"], sb["labels"][m]["agatston"]))
        values["coronary_total"].append((sa["coronary_agatston"], sb["coronary_agatston"]))
        risk[0].append(sa["risk_category"])
        risk[1].append(sb["risk_category"])
        for le in view.lesions:
            for i in (0, 1):
                lesion_labels[i].append(_lesion_label(view, reads[i], le["lesion_id"]))
        for (lid, k) in sorted(view.parts):
            for i in (0, 1):
                part_labels[i].append(reads[i].label_of(lid, k) or "unlabelled")
        for m in coronary:
            case_rows.append({"case_id": cid, "measure": m, "reader_a": sa["labels"][m]["agatston"],
                              "reader_b": sb["labels"][m]["agatston"]})
        case_rows.append({"case_id": cid, "measure": "coronary_total",
                          "reader_a": sa["coronary_agatston"], "reader_b": sb["coronary_agatston"]})
        case_rows.append({"case_id": cid, "measure": "risk_category",
                          "reader_a": sa["risk_category"], "reader_b": sb["risk_category"]})
    rows = []
    for m, pairs in values.items():
        v, note = icc_2_1(np.asarray(pairs, dtype=float).reshape(-1, 2))
        rows.append({"measure": f"{m}_agatston", "statistic": "icc_2_1", "n": len(pairs),
                     "value": v, "note": note})
    for name, (a, b) in (("risk_category", risk), ("lesion_label", lesion_labels),
                         ("lesion_part_label", part_labels)):
        v, note = cohen_kappa(a, b)
        rows.append({"measure": name, "statistic": "cohen_kappa", "n": len(a), "value": v,
                     "note": note})
    for r in rows:
        r.update(reader_a=ra, reader_b=rb)
    folder = out / "agreement"
    folder.mkdir(exist_ok=True)
    write_all({folder / "agreement.csv": to_csv(rows, [c.name for c in AGREEMENT_COLUMNS]),
               folder / "agreement_cases.csv": to_csv(case_rows, [c.name for c in CASE_COLUMNS]),
               folder / "agreement.html": _html(rows, case_rows, ra, rb)})
    return {"rows": rows, "cases": case_rows, "folder": str(folder), "unfinished": unfinished}


def _html(rows, case_rows, ra: str, rb: str) -> str:
    def cell(v):
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else html.escape(str(v)))

    body = "".join(f"<tr><td>{html.escape(r['measure'])}</td><td>{r['statistic']}</td>"
                   f"<td class=n>{r['n']}</td><td class=n>{cell(r['value'])}</td>"
                   f"<td>{html.escape(r['note'])}</td></tr>" for r in rows)
    cases = "".join(f"<tr><td>{html.escape(r['case_id'])}</td><td>{html.escape(r['measure'])}</td>"
                    f"<td class=n>{cell(r['reader_a'])}</td><td class=n>{cell(r['reader_b'])}</td></tr>"
                    for r in case_rows)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Reader agreement: {html.escape(ra)} and {html.escape(rb)}</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:960px}}
table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border-bottom:1px solid #ccc;
padding:3px 10px;text-align:left}}.n{{text-align:right;font-variant-numeric:tabular-nums}}
.ruo{{color:#666}}</style></head><body>
<h1>Reader agreement: {html.escape(ra)} and {html.escape(rb)}</h1>
<p class="ruo">For research use only. ICC(2,1): two-way random effects, absolute agreement,
single rater (Shrout and Fleiss 1979). Cohen's kappa (Cohen 1960); 'unlabelled' counts as a
category. An empty value is one the definition does not give (reason in the note).</p>
<table><tr><th>measure</th><th>statistic</th><th>n</th><th>value</th><th>note</th></tr>{body}</table>
<h2>Per case</h2>
<table><tr><th>case</th><th>measure</th><th>{html.escape(ra)}</th><th>{html.escape(rb)}</th></tr>{cases}</table>
</body></html>
"""
