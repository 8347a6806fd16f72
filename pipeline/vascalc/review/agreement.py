"""Agreement between two readers (vascalc agreement OUT --readers r1,r2).

Over the cases both readers labelled:

- intraclass correlation of each coronary artery's Agatston score and of the coronary total:
  ICC(2,1), two-way random effects, absolute agreement, single rater (Shrout PE, Fleiss JL,
  Psychol Bull 1979;86:420-428; McGraw KO, Wong SP, Psychol Methods 1996;1:30-46):
  (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n), for n cases and k = 2 readers;
- (with ``scoring.agatston: false`` the calcium volume in mm3 instead of Agatston);
- Cohen's kappa (Cohen J, Educ Psychol Meas 1960;20:37-46), (p_o - p_e) / (1 - p_e), on the
  risk categories, on each lesion's label (the label holding most of its Agatston score) and
  on each lesion part's label (a lesion on one slice); 'unlabelled' is a category.

Each statistic has its 95 % confidence interval: for ICC(2,1) the F-based interval of McGraw
and Wong (1996, case 2A, with Satterthwaite's degrees of freedom), which gives 0.019 to 0.76
on Shrout and Fleiss's Table 2 example, as R's psych::ICC prints; for kappa the large-sample
interval kappa +- z * SE with the standard error of Fleiss, Cohen and Everitt (Psychol Bull
1969;72:323-327), by statsmodels (``statsmodels.stats.inter_rater.cohens_kappa``).

A value the definition does not give (fewer than two cases, no variance, p_e = 1) is left
empty with the reason, never 0 or NaN.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import Config
from ..errors import ReviewError, UsageError
from ..files import write_all
from ..outputs.tables import to_csv
from ..results.columns import Column
from ..results.document import is_ok
from ..run.discovery import Case
from .cases import load_view, open_run, reader_scores
from .rescore import check_reads
from .store import Reads, ReadStore, check_reader

AGREEMENT_COLUMNS = [
    Column("measure", "string", "", "what is compared"),
    Column("statistic", "string", "", "icc_2_1 (two-way random, absolute agreement, single "
           "rater) or cohen_kappa"),
    Column("n", "integer", "", "cases (ICC, risk kappa), lesions or lesion parts compared"),
    Column("value", "number", "", "the statistic; empty when undefined (see note)"),
    Column("ci_low", "number", "", "lower end of its 95 % confidence interval (ICC: McGraw and "
           "Wong 1996; kappa: Fleiss, Cohen and Everitt 1969); empty when undefined"),
    Column("ci_high", "number", "", "upper end of its 95 % confidence interval"),
    Column("note", "string", "", "why the value is empty"),
    Column("reader_a", "string", "", "first reader"),
    Column("reader_b", "string", "", "second reader"),
]
CASE_COLUMNS = [
    Column("case_id", "string", "", "case identifier (joins scans.csv)"),
    Column("measure", "string", "", "coronary label or coronary_total (its Agatston score; "
           "with _volume_mm3, its volume when scoring.agatston is false), or risk_category"),
    Column("reader_a", "string", "", "first reader's value"),
    Column("reader_b", "string", "", "second reader's value"),
]


LEFT_OUT_COLUMNS = [
    Column("case_id", "string", "", "case identifier (joins scans.csv)"),
    Column("reader", "string", "", "the reader whose reads were left out (both, comma-separated, "
           "when the case itself was)"),
    Column("reason", "string", "", "why rescore would not make a final of them"),
]


def _mean_squares(x: np.ndarray) -> tuple[float, float, float]:
    """MSR (cases), MSC (readers) and MSE of the two-way ANOVA of an n x k matrix."""
    n, k = x.shape
    grand = x.mean()
    ssr = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ssc = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    sse = float(((x - grand) ** 2).sum()) - ssr - ssc
    return ssr / (n - 1), ssc / (k - 1), sse / ((n - 1) * (k - 1))


def icc_2_1(x: np.ndarray) -> tuple[float | None, str]:
    """ICC(2,1) of an n cases x k readers matrix, and why it is undefined when it is."""
    n, k = x.shape
    if n < 2:
        return None, "fewer than 2 cases"
    msr, msc, mse = _mean_squares(x)
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    if not denom > 0:
        return None, "no variance between or within cases"
    return (msr - mse) / denom, ""


def icc_2_1_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The confidence interval of ICC(2,1) (McGraw and Wong 1996, case 2A: F-based, with
    Satterthwaite's degrees of freedom for the denominator); None where ICC(2,1) is undefined
    or 1 (no residual variance: the interval degenerates).

    >>> sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
    ...                [6, 2, 4, 7]], dtype=float)  # Shrout and Fleiss 1979, Table 2
    >>> [round(v, 3) for v in icc_2_1_ci(sf)]  # R psych::ICC: ICC2 lower 0.019, upper 0.76
    [0.019, 0.761]
    """
    from scipy import stats  # lazy: the agreement command only

    icc, _ = icc_2_1(x)
    if icc is None or not icc < 1.0:
        return None
    n, k = x.shape
    msr, msc, mse = _mean_squares(x)
    a = k * icc / (n * (1.0 - icc))
    b = 1.0 + k * icc * (n - 1) / (n * (1.0 - icc))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    q = 1.0 - (1.0 - level) / 2.0
    f_lo, f_hi = stats.f.ppf(q, n - 1, v), stats.f.ppf(q, v, n - 1)
    low = n * (msr - f_lo * mse) / (f_lo * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f_hi * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_hi * msr)
    return (float(low), float(high)) if math.isfinite(low) and math.isfinite(high) else None


def kappa_ci(a: list[str], b: list[str], level: float = 0.95) -> tuple[float, float] | None:
    """The large-sample confidence interval of Cohen's kappa (standard error of Fleiss, Cohen
    and Everitt 1969, by statsmodels); None where kappa is undefined."""
    from scipy import stats  # lazy: the agreement command only
    from statsmodels.stats.inter_rater import cohens_kappa  # lazy: the agreement command only

    if cohen_kappa(a, b)[0] is None:
        return None
    cats = sorted(set(a) | set(b))
    table = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b):
        table[cats.index(x), cats.index(y)] += 1
    res = cohens_kappa(table, return_results=True)
    z = stats.norm.ppf(1.0 - (1.0 - level) / 2.0)
    low, high = float(res.kappa - z * res.std_kappa), float(res.kappa + z * res.std_kappa)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


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


def _lesion_label(view, reads: Reads, lesion_id: int, by_agatston: bool) -> str:
    """The label holding most of a lesion's Agatston score (its volume without Agatston)."""
    by: dict[str, float] = {}
    for k in view.slices_of(lesion_id):
        lab = reads.label_of(lesion_id, k) or "unlabelled"
        by[lab] = by.get(lab, 0.0) + view.parts[(lesion_id, k)][0 if by_agatston else 1]
    return max(sorted(by), key=lambda lab: by[lab]) if by else "unlabelled"


def refusal(reads: Reads, doc: dict[str, Any], case: Case, config: Config) -> str:
    """Why rescore would not make a final of these reads ('' = it would): not marked done,
    reads of unknown lesions or labels, reads made on other lesions (stale), or the case's
    files changed since the run. (Unlabelled calcium without the reader's confirmation is
    found by the case path's arithmetic: ``reader_scores(...)["final"]``.)"""
    if not reads.done:
        return "not marked done"
    try:
        check_reads(reads, doc, config)
    except ReviewError as err:
        return str(err).split(" -> ")[0]
    if case.fingerprint() != doc.get("fingerprint"):
        return "its files changed since the run"
    return ""


def agreement(out: Path, readers: tuple[str, str]) -> dict[str, Any]:
    """Compute the agreement over the cases whose reads of both readers rescore would make a
    final (marked done, not stale, every calcium lesion labelled or the rest confirmed not
    coronary), each reader's scores by the case path's arithmetic (:func:`reader_scores`),
    write OUT/agreement/ (agreement.csv, agreement_cases.csv, agreement_left_out.csv,
    agreement.html); returns the rows and the cases left out, by reader, with the reason."""
    ra, rb = (check_reader(r) for r in readers)
    if ra == rb:
        raise UsageError("give two different readers", hint="--readers r1,r2")
    store = ReadStore(out)
    read_by_both = sorted(set(store.cases_read(ra)) & set(store.cases_read(rb)))
    if not read_by_both:
        raise UsageError(f"no case was labelled by both {ra} and {rb}",
                         hint="check the reader names (vascalc review --reader)")
    opened = open_run(out, read_by_both)
    config, cases, docs = opened.config, opened.cases, opened.docs
    left_out: list[dict[str, str]] = [
        {"case_id": c, "reader": f"{ra},{rb}", "reason": "no longer among the run's inputs"}
        for c in read_by_both if c not in docs]
    unfinished = [c for c in read_by_both
                  if not (store.reads(ra, c).done and store.reads(rb, c).done)]
    ag = config.scoring.agatston
    key = "agatston" if ag else "volume_mm3"
    suffix = "" if ag else "_volume_mm3"  # per case: the label's name is its Agatston score
    coronary = config.review.coronary()
    values: dict[str, list[tuple[float, float]]] = {m: [] for m in [*coronary, "coronary_total"]}
    risk: tuple[list[str], list[str]] = ([], [])
    lesion_labels: tuple[list[str], list[str]] = ([], [])
    part_labels: tuple[list[str], list[str]] = ([], [])
    case_rows = []
    for cid, doc in docs.items():
        if not is_ok(doc):
            left_out.append({"case_id": cid, "reader": f"{ra},{rb}",
                             "reason": "the case failed in the run"})
            continue
        reads = store.reads(ra, cid), store.reads(rb, cid)
        why = [(r, refusal(rd, doc, cases[cid], config)) for r, rd in zip((ra, rb), reads)]
        if any(w for _, w in why):
            left_out.extend({"case_id": cid, "reader": r, "reason": w} for r, w in why if w)
            continue
        view = load_view(cases[cid], config, doc)
        sa, sb = (reader_scores(view, r, config) for r in reads)
        open_rest = [(r, sc) for r, sc in zip((ra, rb), (sa, sb)) if not sc["final"]]
        if open_rest:
            left_out.extend({"case_id": cid, "reader": r, "reason": (
                f"marked done with {sc['unlabelled_volume_mm3']:,.1f} mm3 of calcium unlabelled "
                "and no confirmation that it is not coronary")} for r, sc in open_rest)
            continue
        total = "coronary_agatston" if ag else "coronary_volume_mm3"
        for m in coronary:
            values[m].append((sa["labels"][m][key], sb["labels"][m][key]))
        values["coronary_total"].append((sa[total], sb[total]))
        risk[0].append(sa["risk_category"])
        risk[1].append(sb["risk_category"])
        for le in view.lesions:
            for i in (0, 1):
                lesion_labels[i].append(_lesion_label(view, reads[i], le["lesion_id"], ag))
        for (lid, k) in sorted(view.parts):
            for i in (0, 1):
                part_labels[i].append(reads[i].label_of(lid, k) or "unlabelled")
        for m in coronary:
            case_rows.append({"case_id": cid, "measure": m + suffix,
                              "reader_a": sa["labels"][m][key], "reader_b": sb["labels"][m][key]})
        case_rows.append({"case_id": cid, "measure": "coronary_total" + suffix,
                          "reader_a": sa[total], "reader_b": sb[total]})
        case_rows.append({"case_id": cid, "measure": "risk_category",
                          "reader_a": sa["risk_category"], "reader_b": sb["risk_category"]})
    if not case_rows:
        reasons = "; ".join(f"{x['case_id']} ({x['reader']}): {x['reason']}" for x in left_out[:5])
        raise UsageError(f"{ra} and {rb} have no case that both finished as rescore accepts "
                         f"it ({reasons})",
                         hint="mark finished cases done in vascalc review (label the "
                              "calcium, or confirm the rest is not coronary)")
    rows = []
    for m, pairs in values.items():
        x = np.asarray(pairs, dtype=float).reshape(-1, 2)
        v, note = icc_2_1(x)
        ci = icc_2_1_ci(x) if v is not None else None
        rows.append({"measure": f"{m}_{key}", "statistic": "icc_2_1", "n": len(pairs),
                     "value": v, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                     "note": note or ("" if ci else "no confidence interval: ICC = 1")})
    for name, (a, b) in (("risk_category", risk), ("lesion_label", lesion_labels),
                         ("lesion_part_label", part_labels)):
        v, note = cohen_kappa(a, b)
        ci = kappa_ci(a, b) if v is not None else None
        rows.append({"measure": name, "statistic": "cohen_kappa", "n": len(a), "value": v,
                     "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                     "note": note or ("" if ci else "no confidence interval: zero standard error")})
    for r in rows:
        r.update(reader_a=ra, reader_b=rb)
    folder = out / "agreement"
    folder.mkdir(exist_ok=True)
    write_all({folder / "agreement.csv": to_csv(rows, [c.name for c in AGREEMENT_COLUMNS]),
               folder / "agreement_cases.csv": to_csv(case_rows, [c.name for c in CASE_COLUMNS]),
               folder / "agreement_left_out.csv": to_csv(left_out,
                                                         [c.name for c in LEFT_OUT_COLUMNS]),
               folder / "agreement.html": _html(rows, case_rows, ra, rb, left_out)})
    return {"rows": rows, "cases": case_rows, "folder": str(folder), "unfinished": unfinished,
            "left_out": left_out}


def _interval(row: dict[str, Any]) -> str:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return "" if lo is None or hi is None else f"{lo:.3f} to {hi:.3f}"


def _html(rows, case_rows, ra: str, rb: str, left_out=()) -> str:
    def cell(v):
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else html.escape(str(v)))

    body = "".join(f"<tr><td>{html.escape(r['measure'])}</td><td>{r['statistic']}</td>"
                   f"<td class=n>{r['n']}</td><td class=n>{cell(r['value'])}</td>"
                   f"<td class=n>{_interval(r)}</td>"
                   f"<td>{html.escape(r['note'])}</td></tr>" for r in rows)
    cases = "".join(f"<tr><td>{html.escape(r['case_id'])}</td><td>{html.escape(r['measure'])}</td>"
                    f"<td class=n>{cell(r['reader_a'])}</td><td class=n>{cell(r['reader_b'])}</td></tr>"
                    for r in case_rows)
    gone = "".join(f"<tr><td>{html.escape(x['case_id'])}</td><td>{html.escape(x['reader'])}</td>"
                   f"<td>{html.escape(x['reason'])}</td></tr>" for x in left_out)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Reader agreement: {html.escape(ra)} and {html.escape(rb)}</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:960px}}
table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border-bottom:1px solid #ccc;
padding:3px 10px;text-align:left}}.n{{text-align:right;font-variant-numeric:tabular-nums}}
.ruo{{color:#666}}</style></head><body>
<h1>Reader agreement: {html.escape(ra)} and {html.escape(rb)}</h1>
<p class="ruo">For research use only. ICC(2,1): two-way random effects, absolute agreement,
single rater (Shrout and Fleiss 1979), 95 % CI of McGraw and Wong (1996). Cohen's kappa
(Cohen 1960), 95 % CI with the standard error of Fleiss, Cohen and Everitt (1969);
'unlabelled' counts as a category. An empty value is one the definition does not give (reason
in the note).</p>
<table><tr><th>measure</th><th>statistic</th><th>n</th><th>value</th><th>95 % CI</th>
<th>note</th></tr>{body}</table>
<h2>Per case</h2>
<table><tr><th>case</th><th>measure</th><th>{html.escape(ra)}</th><th>{html.escape(rb)}</th></tr>{cases}</table>
<h2>Left out</h2>
<p>Reads rescore would not make a final of are not compared.</p>
<table><tr><th>case</th><th>reader</th><th>reason</th></tr>{gone}</table>
</body></html>
"""
