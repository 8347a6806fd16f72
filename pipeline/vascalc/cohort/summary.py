"""Cohort summary of a scans table, as pandas operations: counts of scans and of patients,
status counts, and per scope the median, quartiles and IQR of each score, the share with zero
calcium and the counts per risk category and CAC-DRS, overall and per group.

A headline score means what its scope covers (coronary, vascular, bone_excluded,
whole_volume: docs, conventions: 'Scopes'), so scores are never pooled across scopes: every
score statistic carries its ``scope``. ``baseline_only`` keeps each patient's first ok scan
(by ``scan_date``, else ``study_date``, then case id), so no patient counts twice; scans
without a patient id are kept, each as its own patient.

Quantiles are pandas' (and numpy's) default linear interpolation, Hyndman and Fan's type 7,
R's default.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..core.score import CAC_DRS_LABELS, RISK_LABELS
from .progression import SCORES, refuse_non_finite

#: the columns of summary.csv
SUMMARY_COLUMNS = ["group", "scope", "measure", "statistic", "value"]


def scans_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of a scans table (dicts of strings, as csv.DictReader gives them) as a frame with
    the scores numeric (an empty or unreadable cell is missing, never 0). A score that reads
    as infinite or NaN (``inf``, ``-inf``, ``nan``, ``1e999``) is refused with a ValueError
    naming its line and column: vascalc never writes one, and no median, quartile or zero
    share means anything with it."""
    df = pd.DataFrame(rows).fillna("")
    for col in SCORES:
        if col not in df:
            df[col] = float("nan")
            continue
        refuse_non_finite(df, col)
        values = pd.to_numeric(df[col], errors="coerce")
        df[col] = values
    for col in ("status", "patient_id", "scope", "risk_category", "cac_drs", "case_id",
                "study_date", "scan_date"):
        if col not in df:
            df[col] = ""
    return df


def baseline(df: pd.DataFrame) -> pd.DataFrame:
    """Each patient's first ok scan (by scan_date, else study_date, then case id); scans
    without a patient id are each kept."""
    ok = df[df["status"] == "ok"].copy()
    ok["_date"] = ok["scan_date"].where(ok["scan_date"] != "", ok["study_date"])
    ok = ok.sort_values(["patient_id", "_date", "case_id"])
    with_id = ok[ok["patient_id"] != ""].groupby("patient_id", sort=False).head(1)
    return pd.concat([with_id, ok[ok["patient_id"] == ""]]).drop(columns="_date")


def _risk_measure(label: str) -> str:
    """The summary's measure name of a risk category ('>400' -> 'risk_category_over_400')."""
    return "risk_category_" + label.replace(" ", "_").replace(">", "over_")


def _score_rows(ok: pd.DataFrame, group: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(scope: str, measure: str, statistic: str, value: Any) -> None:
        rows.append({"group": group, "scope": scope, "measure": measure,
                     "statistic": statistic, "value": value})

    for scope, part in ok.groupby("scope", sort=True):
        add(str(scope), "scans", "n", len(part))
        for score in SCORES:
            v = part[score].dropna()
            stats: dict[str, Any] = {"n": len(v)}
            if len(v):
                q1, med, q3 = (float(x) for x in v.quantile([0.25, 0.5, 0.75]))
                stats.update(median=med, q1=q1, q3=q3, iqr=q3 - q1, min=float(v.min()),
                             max=float(v.max()))
            for k in ("n", "median", "q1", "q3", "iqr", "min", "max"):
                add(str(scope), score, k, stats.get(k))
        ag = part["agatston"].dropna()
        add(str(scope), "zero_calcium", "n", int((ag == 0).sum()))
        add(str(scope), "zero_calcium", "share", float((ag == 0).mean()) if len(ag) else None)
        counts = part["risk_category"].value_counts()
        for k in RISK_LABELS:
            add(str(scope), _risk_measure(k), "n", int(counts.get(k, 0)))
        drs = part["cac_drs"].value_counts()
        for k in CAC_DRS_LABELS:
            add(str(scope), f"cac_drs_{k}", "n", int(drs.get(k, 0)))
    return rows


def summary_table(df: pd.DataFrame, group: str | None = None, *,
                  baseline_only: bool = False) -> pd.DataFrame:
    """The tidy summary (group, scope, measure, statistic, value): 'all' and, with
    ``group``, one block per value of that column; counts of scans, patients and statuses
    have an empty scope, every score statistic its own."""
    df = baseline(df) if baseline_only else df
    blocks = [("all", df)]
    if group:
        blocks += [(f"{group}={value}", part) for value, part in
                   df.groupby(df[group].astype(str), sort=True)]
    rows: list[dict[str, Any]] = []
    for name, part in blocks:
        ok = part[part["status"] == "ok"]
        patients = ok.loc[ok["patient_id"] != "", "patient_id"].nunique() + int(
            (ok["patient_id"] == "").sum())
        rows.append({"group": name, "scope": "", "measure": "scans", "statistic": "n",
                     "value": len(part)})
        rows.append({"group": name, "scope": "", "measure": "patients", "statistic": "n",
                     "value": int(patients)})
        for status, n in part["status"].value_counts().sort_index().items():
            rows.append({"group": name, "scope": "", "measure": f"status_{status}",
                         "statistic": "n", "value": int(n)})
        rows += _score_rows(ok, name)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS, dtype=object)  # ints stay ints


def summary_json(table: pd.DataFrame) -> dict[str, Any]:
    """The summary as nested JSON: group -> {n_scans, n_patients, status, scopes: {scope:
    {scans, scores: {score: {statistic: value}}, zero_calcium, risk_category, cac_drs}}}."""
    out: dict[str, Any] = {}
    for g, part in table.groupby("group", sort=False):
        top = part[part["scope"] == ""]
        get = dict(zip(top["measure"], top["value"]))
        block: dict[str, Any] = {
            "n_scans": int(get["scans"]), "n_patients": int(get["patients"]),
            "status": {m[len("status_"):]: int(v) for m, v in get.items()
                       if m.startswith("status_")}, "scopes": {}}
        for scope, sp in part[part["scope"] != ""].groupby("scope", sort=True):
            cell = {(m, s): v for m, s, v in zip(sp["measure"], sp["statistic"], sp["value"])}
            block["scopes"][scope] = {
                "n_scans": int(cell[("scans", "n")]),
                "scores": {score: {k: _plain(cell[(score, k)]) for k in
                                   ("n", "median", "q1", "q3", "iqr", "min", "max")}
                           for score in SCORES},
                "zero_calcium": {"n": int(cell[("zero_calcium", "n")]),
                                 "share": _plain(cell[("zero_calcium", "share")])},
                "risk_category": {k: int(cell[(_risk_measure(k), "n")]) for k in RISK_LABELS},
                "cac_drs": {k: int(cell[(f"cac_drs_{k}", "n")]) for k in CAC_DRS_LABELS}}
        out[str(g)] = block
    return out


def _plain(v: Any) -> Any:
    """A JSON value: None for a missing one, never NaN."""
    return None if v is None or (isinstance(v, float) and v != v) else v
