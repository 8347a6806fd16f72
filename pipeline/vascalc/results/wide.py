"""regions_wide.csv: one row per scored scan, one column per region and measure, for
statistics without a pivot.

Column names are snake_case (``lad_agatston``, ``vertebrae_l1_volume_mm3``): the region's name
in lower case. The set of columns is stable for a run: every region the config names (its
territories, the aorta's split parts, ``outside``) comes first, in the config's order, whether
or not a case has it, then the other regions the run met, in the order met; a region a case
lacks is empty in its row. Like regions.csv, the columns of one measure partition the scan's
kept calcium, so they sum to its all-calcium total.
"""

from __future__ import annotations

import re
from typing import Any

from ..config.schema import Config
from .columns import WIDE_MEASURES


def wide_name(region: str) -> str:
    """The snake_case stem of a region's wide columns.

    >>> wide_name("LAD"), wide_name("vertebrae_L1"), wide_name("aorta-thoracic")
    ('lad', 'vertebrae_l1', 'aorta_thoracic')
    """
    return re.sub(r"[^0-9a-z]+", "_", region.lower()).strip("_") or "region"


def named_regions(config: Config | None) -> list[str]:
    """The regions a config names, in its order: territories, the aorta's split parts, and
    ``outside`` whenever it asks for regions at all."""
    if config is None:
        return []
    rc = config.regions
    names = list(rc.territories)
    if rc.split_aorta != "none":
        names += [n for n in ("aorta_thoracic", "aorta_abdominal") if n not in names]
    return [*names, "outside"] if names else []


def wide_stems(regions: list[str]) -> dict[str, str]:
    """region -> column stem; two regions of one snake_case name (``LAD`` and ``lad``) get
    ``_2``, ``_3`` after the first, in the order given, so no column holds two regions."""
    stems: dict[str, str] = {}
    taken: set[str] = set()
    for reg in regions:
        stem, n = wide_name(reg), 1
        while (stem if n == 1 else f"{stem}_{n}") in taken:
            n += 1
        stems[reg] = stem if n == 1 else f"{stem}_{n}"
        taken.add(stems[reg])
    return stems


def wide_rows(docs_regions: list[tuple[str, list[dict[str, Any]]]], config: Config | None
              ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The wide rows of the scored cases (case id, its regions.csv rows) and region -> stem of
    every region in the table, in column order."""
    regions = named_regions(config)
    for _, rows in docs_regions:
        regions += [r["region"] for r in rows if r["region"] not in regions]
    stems = wide_stems(regions)
    out = []
    for case_id, rows in docs_regions:
        wide: dict[str, Any] = {"case_id": case_id}
        for reg in rows:
            wide.update({f"{stems[reg['region']]}_{m.name}": reg[m.name] for m in WIDE_MEASURES})
        out.append(wide)
    return out, stems
