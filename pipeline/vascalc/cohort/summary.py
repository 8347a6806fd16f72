"""Cohort summary of a scans table: counts, median and IQR of each score, share with zero
calcium, counts per risk category and CAC-DRS, overall and per group.

Quantiles are numpy's default linear interpolation (Hyndman & Fan type 7, R's default). Pure
functions over rows (dicts of strings, as csv.DictReader gives them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.score import CAC_DRS_LABELS, RISK_LABELS
from .progression import SCORES, _num


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "ok"]
    out: dict[str, Any] = {
        "n_scans": len(rows),
        "status": {s: sum(1 for r in rows if r.get("status") == s)
                   for s in sorted({r.get("status", "") for r in rows})},
        "n_patients": len({r.get("patient_id") for r in ok if r.get("patient_id")}),
    }
    scores: dict[str, Any] = {}
    for s in SCORES:
        vals = np.array([v for v in (_num(r.get(s)) for r in ok) if v is not None])
        if vals.size:
            q1, med, q3 = np.percentile(vals, [25, 50, 75])
            scores[s] = {"n": int(vals.size), "median": float(med), "q1": float(q1),
                         "q3": float(q3), "iqr": float(q3 - q1), "min": float(vals.min()),
                         "max": float(vals.max())}
        else:
            scores[s] = {"n": 0, "median": None, "q1": None, "q3": None, "iqr": None,
                         "min": None, "max": None}
    out["scores"] = scores
    ag = [_num(r.get("agatston")) for r in ok]
    ag = [a for a in ag if a is not None]
    out["zero_calcium"] = {"n": sum(1 for a in ag if a == 0),
                           "share": (sum(1 for a in ag if a == 0) / len(ag)) if ag else None}
    out["risk_category"] = {k: sum(1 for r in ok if r.get("risk_category") == k)
                            for k in RISK_LABELS}
    out["cac_drs"] = {k: sum(1 for r in ok if r.get("cac_drs") == k) for k in CAC_DRS_LABELS}
    return out


def summarise_groups(rows: list[dict[str, Any]], group: str | None) -> dict[str, Any]:
    """{'all': summary} plus one summary per value of ``group`` when given."""
    result = {"all": summarise(rows)}
    if group:
        for value in sorted({str(r.get(group, "")) for r in rows}):
            result[f"{group}={value}"] = summarise([r for r in rows
                                                    if str(r.get(group, "")) == value])
    return result


def long_table(groups: dict[str, Any]) -> list[dict[str, Any]]:
    """The summaries as tidy rows: group, measure, statistic, value."""
    rows = []
    for g, s in groups.items():
        rows.append({"group": g, "measure": "scans", "statistic": "n", "value": s["n_scans"]})
        rows.append({"group": g, "measure": "patients", "statistic": "n",
                     "value": s["n_patients"]})
        for status, n in s["status"].items():
            rows.append({"group": g, "measure": f"status_{status}", "statistic": "n", "value": n})
        for score, st in s["scores"].items():
            for k in ("n", "median", "q1", "q3", "iqr", "min", "max"):
                rows.append({"group": g, "measure": score, "statistic": k, "value": st[k]})
        rows.append({"group": g, "measure": "zero_calcium", "statistic": "n",
                     "value": s["zero_calcium"]["n"]})
        rows.append({"group": g, "measure": "zero_calcium", "statistic": "share",
                     "value": s["zero_calcium"]["share"]})
        for k, n in s["risk_category"].items():
            slug = k.replace(" ", "_").replace(">", "over_")
            rows.append({"group": g, "measure": f"risk_category_{slug}", "statistic": "n",
                         "value": n})
        for k, n in s["cac_drs"].items():
            rows.append({"group": g, "measure": f"cac_drs_{k}", "statistic": "n", "value": n})
    return rows
