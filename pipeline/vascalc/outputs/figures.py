"""Cohort figures and the patient chart as PNG (matplotlib, Agg backend; imported only when
figures are asked for). Per-case key images are drawn by :mod:`vascalc.outputs.key_images`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..cohort.progression import _date, _num


def _plt():
    import matplotlib  # lazy: matplotlib, for figures only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib, for figures only

    return plt


def agatston_distribution(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    vals = [math.log(a + 1) for a in (_num(r.get("agatston")) for r in rows
                                      if r.get("status") == "ok") if a is not None]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.hist(vals, bins=max(5, min(40, len(vals))), color="#5b7fa6", edgecolor="white")
    ax.set_xlabel("log(Agatston + 1)")
    ax.set_ylabel("scans")
    ax.set_title(f"Agatston score distribution (n = {len(vals)})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def calc_bsa_by_group(rows: list[dict[str, Any]], group: str | None, path: Path) -> Path:
    plt = _plt()
    groups: dict[str, list[float]] = {}
    for r in rows:
        v = _num(r.get("volume_per_bsa_mm3_m2"))
        if r.get("status") == "ok" and v is not None:
            groups.setdefault(str(r.get(group, "")) if group else "all", []).append(v)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    names = sorted(groups)
    if names:
        ax.boxplot([groups[n] for n in names], tick_labels=names)
        for i, n in enumerate(names, start=1):
            ax.scatter([i] * len(groups[n]), groups[n], s=12, color="#c0504d", zorder=3)
    ax.set_ylabel("Calc/BSA (mm3/m2)")
    ax.set_xlabel(group or "")
    ax.set_title("Calcium volume / body surface area")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def progression_per_patient(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    by_patient: dict[str, list] = {}
    for r in rows:
        d, v = _date(r), _num(r.get("volume_mm3"))
        if r.get("status") == "ok" and r.get("patient_id") and d and v is not None:
            by_patient.setdefault(r["patient_id"], []).append((d, v))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for pid, pts in sorted(by_patient.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=pid)
    ax.set_ylabel("calcium volume (mm3)")
    ax.set_title("Calcium volume per patient over time")
    if 0 < len(by_patient) <= 12:
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
