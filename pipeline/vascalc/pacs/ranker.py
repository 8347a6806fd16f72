"""Which series of a received study to score: the rules and points of
:mod:`vascalc.run.eligibility` (one set for ``vascalc run`` and the node, ``listen.rules``) applied
to the headers :mod:`vascalc.io` reads, with the reason for every series written into the
study's record. Ties go to more images, then the SeriesInstanceUID (so the choice never depends
on arrival)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..config.schema import Config
from ..io.dicom import index_tree
from ..run.eligibility import facts_of, points, refusal


@dataclass(frozen=True)
class SeriesChoice:
    """One series of a study as the ranker saw it."""

    series_uid: str
    folder: str
    description: str
    n_images: int
    slice_thickness_mm: float | None
    points: int
    eligible: bool
    reason: str
    chosen: bool = False


def _rank_one(folder: str, headers: list, config: Config) -> SeriesChoice:
    f = facts_of(headers)
    base: dict[str, Any] = dict(
        series_uid=f.series_uid, folder=Path(folder).name, description=f.description,
        n_images=f.n_images, slice_thickness_mm=f.thickness_mm)
    why = refusal(f, config.listen.rules)
    if why:
        return SeriesChoice(**base, points=0, eligible=False, reason=why)
    pts, reasons = points(f, config)
    return SeriesChoice(**base, points=pts, eligible=True, reason="; ".join(reasons))


def rank_series(study_folder: Path, config: Config) -> list[SeriesChoice]:
    """Every series folder of a received study, best first, the chosen one marked."""
    headers, _ = index_tree(study_folder)
    by_folder: dict[str, list] = defaultdict(list)
    for h in headers:
        by_folder[str(Path(h.path).parent)].append(h)
    ranked = [_rank_one(folder, sorted(hs, key=lambda h: h.path), config)
              for folder, hs in sorted(by_folder.items())]
    patients = {h.meta.patient_id for h in headers if h.meta.patient_id}
    if len(patients) > 1:  # a PACS error: results would be filed into the wrong patient
        why = (f"the study holds series of {len(patients)} different PatientIDs; a result "
               "could be filed into the wrong patient's record, so none is scored")
        return [replace(r, eligible=False, reason=why, points=0) for r in ranked]
    ranked.sort(key=lambda s: (not s.eligible, -s.points, -s.n_images, s.series_uid))
    if ranked and ranked[0].eligible:
        ranked[0] = replace(ranked[0], chosen=True)
    return ranked


def record_of(ranked: list[SeriesChoice]) -> list[dict[str, Any]]:
    """The ranking as the study record keeps it."""
    return [asdict(s) for s in ranked]
