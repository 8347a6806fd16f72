"""The report's per-artery table: the coronary arteries' scores, from the case's regions.csv
rows (region masks named LM, LAD, LCX, RCA, or a reader's finished labels after rescore).

Agatston is shown as a whole number, as calcium-scoring reports print it (the tables keep full
precision); the four main arteries come first in their usual order, then any other coronary
region, and left main involvement is said in words, since calcium in the left main carries
weight of its own in the CAC-DRS vessel count (Hecht HS et al., J Cardiovasc Comput Tomogr
2018;12:185-191: the N modifier counts LM, LAD, LCX and RCA).
"""

from __future__ import annotations

import math
from typing import Any

#: the main coronary arteries, in the order reports list them
MAIN = ("LM", "LAD", "LCX", "RCA")


def whole(value: Any) -> str:
    """A score as a whole number (half up), or '-' when empty.

    >>> whole(15.68), whole(0.5), whole(""), whole(1234.4), whole("nan"), whole("x")
    ('16', '1', '-', '1,234', '-', '-')
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{math.floor(x + 0.5):,}" if math.isfinite(x) else "-"


def artery_rows(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The coronary rows of a case's regions, main arteries first, in order."""
    coronary = [r for r in regions if r.get("region_class") == "coronary"]
    rank = {name: i for i, name in enumerate(MAIN)}
    return sorted(coronary, key=lambda r: (rank.get(r["region"], len(MAIN)), r["region"]))


def left_main_text(regions: list[dict[str, Any]]) -> str:
    """Left main involvement in words, from the case's regions rows."""
    lm = next((r for r in artery_rows(regions) if r["region"] == "LM"), None)
    if lm is None:
        return "Left main: not assessed (no LM region or label)."
    if lm.get("agatston") in (None, ""):
        return f"Left main: {lm.get('withheld_reason') or 'not scored'}."
    if float(lm["agatston"]) > 0:
        return f"Left main: involved (Agatston {whole(lm['agatston'])})."
    return "Left main: no calcium."
