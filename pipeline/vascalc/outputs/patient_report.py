"""Per-patient reports (``OUT/patients/<patient_id>/report.html`` and ``.pdf``): every scan of
the patient in date order with its headline measures and Calc/BSA, a small chart of both over
time, the progression between consecutive scans (:mod:`vascalc.cohort.progression`: Hokanson's
square-root volume difference, Raggi's annual rate), the covariates the manifest carried, and
a link to each scan's report. Kidney-disease cohorts follow a patient over years: this is the
page a reader opens for one patient."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

from ..cohort.progression import _dated, pair_rows
from ..results.columns import names
from ..values import finite_float
from .paths import patient_folder
from .render import fmt as _fmt
from .render import html_to_pdf, render, stylesheet, typed

log = logging.getLogger("vascalc")


def known_columns() -> set[str]:
    return set(names("scans"))


def patient_files(out: Path, scans: list[dict[str, Any]], *, pdf: bool,
                  ) -> dict[Path, str | bytes]:
    """The report files of every patient with a patient_id (HTML, and PDF when asked)."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for s in scans:
        pid = (s.get("patient_id") or "").strip()
        if pid:
            by_patient.setdefault(pid, []).append(s)
    files: dict[Path, str | bytes] = {}
    failed = 0
    for pid, rows in sorted(by_patient.items()):
        folder = out / "patients" / patient_folder(pid)
        try:  # one patient's report never costs another's, nor the run's tables
            text = patient_html(pid, rows)
            pages = html_to_pdf(text) if pdf else None
        except Exception as err:  # noqa: BLE001 - logged (without the patient id), then skipped
            failed += 1
            log.error("a patient report could not be written: %s: %s", type(err).__name__, err)
            continue
        files[folder / "report.html"] = text
        if pages is not None:
            files[folder / "report.pdf"] = pages
    if failed:
        log.error("%d patient report(s) not written (see above)", failed)
    return files


def _chart(rows: list[tuple[Any, dict[str, Any]]]) -> tuple[str, list[str]]:
    """The headline score, calcium volume and Calc/BSA over time as small separate panels, each
    on its own axis (two measures on twin axes hide each other), as a base64 PNG, and the
    panels' titles; a panel needs 2 dated ok scans with that measure ('' when none has)."""
    ok = [(d, r) for d, r in rows if d is not None and r.get("status") == "ok"]
    labels = {r.get("score_label") or "" for _, r in ok}
    score_title = labels.pop() if len(labels) == 1 and "" not in labels else "headline score"
    panels = []
    for key, title in (("agatston", score_title), ("volume_mm3", "volume (mm3)"),
                       ("volume_per_bsa_mm3_m2", "Calc/BSA (mm3/m2)")):
        # a value no chart axis can hold (1e308 in a hand-made table) is left off the panel
        pts = [(d, v) for d, r in ok for v in [finite_float(r.get(key))]
               if v is not None and abs(v) < 1e12]
        if len(pts) >= 2:
            panels.append((title, pts))
    if not panels:
        return "", []
    from matplotlib import dates as mdates  # lazy: matplotlib, for figures only

    from .figures import _plt  # lazy: matplotlib, for figures only

    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.4), dpi=110,
                             squeeze=False)
    for ax, (title, pts) in zip(axes[0], panels):
        ax.plot([d for d, _ in pts], [v for _, v in pts], marker="o", color="#2f5d8a")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        locator = mdates.AutoDateLocator(minticks=2, maxticks=4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode(), [t for t, _ in panels]


def patient_html(patient_id: str, scans: list[dict[str, Any]]) -> str:
    """One patient's report (template ``patient.html``) from their scans rows."""
    scans = [{**typed(r, "scans"), **{k: "" if v is None else str(v) for k, v in r.items()
                                      if k not in known_columns()}} for r in scans]
    dated = sorted(((_dated(r)[0], r) for r in scans),
                   key=lambda x: (x[0] is None, x[0] or 0, x[1].get("case_id", "")))
    known = set(names("scans"))
    covariates = list(dict.fromkeys(k for r in scans for k in r if k not in known))
    head = ["scan", "date", "status", "scope", "score", "volume (mm3)", "mass (mg)",
            "Calc/BSA (mm3/m2)", "risk category"]
    rows = []
    for d, r in dated:
        status = r.get("status", "")
        if status != "ok":
            status = f"failed: {r.get('error_code', '')}"
        cells = [d.isoformat() if d else "date not recorded", status, r.get("scope") or "",
                 _fmt(finite_float(r.get("agatston"))), _fmt(finite_float(r.get("volume_mm3"))),
                 _fmt(finite_float(r.get("mass_mg"))),
                 _fmt(finite_float(r.get("volume_per_bsa_mm3_m2"))),
                 r.get("risk_category") or ("not given (not coronary)" if status == "ok" else "")]
        rows.append({"case_id": r["case_id"], "cells": cells,
                     "link": f"../../cases/{r['case_id']}/report.html" if status == "ok" else ""})
    try:
        pairs, _ = pair_rows([r for _, r in dated])
        why_none = "Fewer than two scored scans with a date: no progression to show."
    except ValueError as err:  # a table the progression refuses, by name
        pairs, why_none = [], f"No progression: {err}."
    pair_cells = [[f"{p['case_id_1']} \u2192 {p['case_id_2']}", p["interval_days"],
                   _fmt(p["volume_mm3_change"]), _fmt(p["volume_mm3_change_per_year"]),
                   _fmt(p["sqrt_volume_difference"], 2), _yes(p["progression_hokanson"]),
                   _fmt(None if p["volume_annual_relative_change"] is None
                        else 100 * p["volume_annual_relative_change"]),
                   _yes(p["progression_raggi"]), p["parameters_differ"] or "none"]
                  for p in pairs]
    versions = sorted({(r.get("pipeline_version") or "", r.get("config_sha256") or "")
                       for r in scans})
    # the manifest's covariates, one row each, one column per scan: a wide table of them
    # would run off the page
    cov_rows = [(c, [str(r.get(c) if r.get(c) is not None else "") for _, r in dated])
                for c in covariates]
    chart, measures = _chart(dated)
    return render("patient.html", css=stylesheet(), patient_id=patient_id, n_scans=len(scans),
                  head=head, rows=rows, covariates=cov_rows,
                  scan_ids=[r["case_id"] for _, r in dated], chart=chart, chart_measures=", ".join(measures),
                  chart_width=250 * max(len(measures), 1), pairs=pair_cells,
                  why_no_pairs=why_none,
                  versions="; ".join(f"{v}, config sha256 {c}" for v, c in versions),
                  top=f"vascalc patient report {patient_id}", top_right="",
                  footer=f"patient {patient_id}")


def _yes(v: Any) -> str:
    return "-" if v is None else ("yes" if v else "no")
