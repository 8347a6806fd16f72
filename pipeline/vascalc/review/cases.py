"""A run's cases, found again for review and rescore, and what a reader needs of each.

``vascalc run`` records in run.json the inputs it scored (absolute paths) and its resolved
config; the same discovery over the same inputs gives the same cases and case ids, and the
same case path gives the same lesions (identical numbers on every run). A case whose files
changed since the run (its fingerprint differs) is refused: its lesion ids may not be the
ones the reader labelled.

Per case the reader sees lesion *parts*: a 3-D lesion on one slice. A part's Agatston score
is the sum over its voxels of the density weight of their slice lesion, times the pixel
area and the increment scale (the per-voxel form of Agatston 1990 that the region split
uses, docs, conventions), so the parts of a lesion add up to its Agatston score, and a
label's score is the sum of the parts labelled so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..config.load import config_from_dict, with_study_secret
from ..config.schema import Config
from ..core.regions import matches
from ..core.score import cac_drs, risk_category
from ..errors import ReviewError, UsageError, VascalcError
from ..records import LesionLabels
from ..results.document import lesion_rows_of, read_result, result_path
from ..run.case import score_case
from ..run.discovery import Case, collect_cases
from ..run.rebuild import read_run
from .store import Reads


def run_record(out: Path) -> dict[str, Any]:
    """OUT/run.json, with the inputs the run scored."""
    run = read_run(out / "run.json")
    if not (run.get("inputs") or {}).get("paths") or not run.get("config"):
        raise UsageError(f"{out / 'run.json'} names no inputs or config (written by an older "
                         "vascalc, or merged from shards of different inputs)",
                         hint="run vascalc run again over the inputs with this vascalc")
    return run


@dataclass(frozen=True)
class OpenRun:
    """A finished run, opened for review: run.json, its config, its cases found again from
    its inputs, and their results (of ``case_ids``, or of every case of the run)."""

    run: dict[str, Any]
    config: Config
    cases: dict[str, Case]
    docs: dict[str, dict[str, Any]]


def open_run(out: Path, case_ids=None) -> OpenRun:
    run = run_record(out)
    config = with_study_secret(config_from_dict(run["config"]))  # run.json holds no key
    cases = find_cases(out, run, config)
    if case_ids is None:
        wanted = run.get("case_ids") or list(cases)
    else:
        wanted = [c for c in case_ids if c in cases]
    return OpenRun(run, config, cases, case_documents(out, wanted))


def find_cases(out: Path, run: dict[str, Any], config: Config) -> dict[str, Case]:
    """The run's cases, by case id, found again from its inputs (missing inputs: an error
    that names them)."""
    inputs = run["inputs"]
    paths = [Path(p) for p in inputs["paths"]]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"the run's input {missing[0]!r} is gone",
                         hint="restore the inputs at the paths run.json names")
    cases, _ = collect_cases(paths, config, work_dir=out / ".work")
    if inputs.get("regions") and len(cases) == 1:
        cases = [replace(cases[0], regions=inputs["regions"])]
    wanted = set(run.get("case_ids") or [c.case_id for c in cases])
    return {c.case_id: c for c in cases if c.case_id in wanted}


def case_documents(out: Path, case_ids) -> dict[str, dict[str, Any]]:
    """Each case's result.json; one that cannot be read (gone, or of another schema) stops
    review and rescore by name: tables rebuilt without it would lose the case."""
    docs = {}
    for cid in sorted(case_ids):
        try:
            docs[cid] = read_result(result_path(out, cid))
        except VascalcError as err:
            raise ReviewError(f"case {cid}: {str(err).split(' -> ')[0]}") from None
    return docs


def lesion_ids(doc: dict[str, Any]) -> list[int]:
    return sorted({int(r["lesion_id"]) for r in lesion_rows_of(doc)})


@dataclass(frozen=True, eq=False)
class CaseView:
    """One case as the reader sees it: the scored HU (int16), each kept voxel's lesion id,
    and the lesions with their parts (one per slice) and suggested labels."""

    case_id: str
    hu: np.ndarray  # (slice, row, col) int16
    lesion_labels: np.ndarray  # int32, 0 = no kept calcium
    spacing_mm: tuple[float, float, float]
    direction: np.ndarray
    lesions: list[dict[str, Any]]  # lesion_id, slices, agatston, volume_mm3, peak_hu, suggestion
    parts: dict[tuple[int, int], tuple[float, float]]  # (lesion, slice) -> (agatston, volume)

    def slices_of(self, lesion_id: int) -> list[int]:
        """The slices a lesion is on ([] for no such lesion)."""
        le = self._by_id.get(lesion_id)
        return le["slices"] if le else []

    @cached_property
    def _by_id(self) -> dict[int, dict[str, Any]]:
        return {le["lesion_id"]: le for le in self.lesions}


def load_view(case: Case, config: Config, doc: dict[str, Any]) -> CaseView:
    """Score the case again, keeping its voxels, and check it is the case of the run."""
    if case.fingerprint() != doc.get("fingerprint"):
        raise ReviewError(f"case {case.case_id}: its files changed since the run (fingerprint "
                          "differs), so its lesion ids may not be the ones in lesions.csv")
    volume, settings, result = score_case(case, config, keep_voxels=True)
    vox = result.voxels
    assert vox is not None
    want = {int(r["lesion_id"]) for r in lesion_rows_of(doc)}
    if {le.lesion_id for le in result.lesions} != want:
        raise ReviewError(f"case {case.case_id}: scoring it again found other lesions than the "
                          "run did (another config or vascalc version?)")
    inc, drow, dcol = volume.spacing_mm
    scale = settings.scoring.increment_scale(inc)
    idx = np.flatnonzero(vox.bands)
    n_sl = vox.bands.shape[0]
    les = vox.lesion_labels.ravel()[idx].astype(np.int64)
    k = idx // (vox.bands.shape[1] * vox.bands.shape[2])
    keys, inv = np.unique(les * n_sl + k, return_inverse=True)
    weights = np.bincount(inv, weights=vox.bands.ravel()[idx].astype(np.float64))
    counts = np.bincount(inv)
    vv = volume.voxel_volume_mm3
    parts = {(int(key // n_sl), int(key % n_sl)): (float(w * drow * dcol * scale), float(c * vv))
             for key, w, c in zip(keys, weights, counts)}
    suggestion = _suggestions(result.lesions, config)
    own: dict[int, list[int]] = {}
    for lid, k2 in sorted(parts):  # the parts of each lesion, in slice order
        own.setdefault(lid, []).append(k2)
    peak = {le.lesion_id: le.peak_hu for le in result.lesions}
    lesions = [{"lesion_id": lid, "slices": ks,
                "agatston": math.fsum(parts[(lid, k2)][0] for k2 in ks),
                "volume_mm3": math.fsum(parts[(lid, k2)][1] for k2 in ks), "peak_hu": peak[lid],
                "suggestion": suggestion.get(lid, "")} for lid, ks in sorted(own.items())]
    hu = np.clip(vox.hu, -32768, 32767).astype(np.int16)
    return CaseView(case.case_id, hu, vox.lesion_labels.astype(np.int32),
                    tuple(float(s) for s in volume.spacing_mm),  # type: ignore[arg-type]
                    np.asarray(volume.direction, dtype=float), lesions, parts)


def _suggestions(pieces, config: Config) -> dict[int, str]:
    """A label to suggest per lesion, from the region masks of the run (TotalSegmentator's
    bone and aorta, artery masks): the region of the lesion's largest piece, when it names a
    label, is an aorta part, or is bone. Suggestions are not reads until a reader confirms."""
    labels = config.review.labels
    names = {lab.name for lab in labels}
    first = {c: next((lab.name for lab in labels if lab.label_class == c), "")
             for c in ("bone", "vascular")}
    rc = config.regions
    best: dict[int, Any] = {}
    for p in pieces:
        region = getattr(p, "region", "") or ""
        if region and region != "outside" and (
                p.lesion_id not in best or p.agatston > best[p.lesion_id].agatston):
            best[p.lesion_id] = p
    out = {}
    for lid, p in best.items():
        if p.region in names:
            out[lid] = p.region
        elif p.region.startswith("aorta") and "aorta" in names:
            out[lid] = "aorta"
        elif matches(p.region, rc.bone) and first["bone"]:
            out[lid] = first["bone"]
        elif matches(p.region, rc.vascular) and "other_vascular" in names:
            out[lid] = "other_vascular"
    return out


def lesion_signatures(doc: dict[str, Any]) -> dict[int, str]:
    """What identifies each lesion beyond its number: the run's config sha256, its voxel
    count, peak HU and voxel-weighted centroid (0.1 mm), from the case's lesion rows (one
    pass). A read stores it; a read whose lesion has another signature now was made on
    another lesion set (a config change renumbers the lesions) and is refused, never applied
    to a new lesion."""
    sha = str(doc.get("config_sha256"))[:12]
    acc: dict[int, list[float]] = {}  # lesion -> [voxels, peak, sum x, sum y, sum z]
    for r in lesion_rows_of(doc):
        n = int(r["n_voxels"])
        a = acc.setdefault(int(r["lesion_id"]), [0, -math.inf, 0.0, 0.0, 0.0])
        a[0] += n
        a[1] = max(a[1], float(r["peak_hu"]))
        for i, ax in enumerate("xyz", start=2):
            a[i] += float(r[f"centroid_{ax}_mm"]) * n
    return {lid: f"{sha}:{int(n)}:{peak:.1f}:" + ",".join(f"{s / n:.1f}" for s in sums)
            for lid, (n, peak, *sums) in acc.items() if n}


def lesion_signature(doc: dict[str, Any], lesion_id: int) -> str:
    """The signature of one lesion (:func:`lesion_signatures`; 'none' for no such lesion)."""
    return lesion_signatures(doc).get(lesion_id, f"{str(doc.get('config_sha256'))[:12]}:none")


def stale_reads(reads: Reads, doc: dict[str, Any]) -> list[int]:
    """The lesions whose reads were made on another lesion than the one that has their number
    now (reads stored without a signature, by an earlier vascalc, are not checked)."""
    now = lesion_signatures(doc) if reads.signatures else {}
    return sorted(lid for lid, sig in reads.signatures.items() if sig != now.get(lid))


def lesion_labels(reads: Reads, config: Config, reader: str = "") -> LesionLabels:
    """A reader's reads as the record analyse splits by."""
    labels = config.review.labels
    return LesionLabels(lesion=dict(reads.lesion), slices=dict(reads.slices),
                        names=tuple(lab.name for lab in labels),
                        classes=tuple(lab.label_class for lab in labels), reader=reader,
                        done=reads.done, done_at=reads.done_at)


def reader_scores(view: CaseView, reads: Reads, config: Config) -> dict[str, Any]:
    """Per label and coronary totals of one reader's reads: each label's Agatston and volume
    is the exact (fsum) sum of the parts labelled so; the coronary score sums the coronary
    labels; risk category and CAC-DRS follow from it (vascalc.core.score), the vessel count N
    is the number of coronary labels with calcium."""
    per: dict[str, list[tuple[float, float]]] = {lab.name: [] for lab in config.review.labels}
    unlabelled: list[tuple[float, float]] = []
    for (lid, k), v in view.parts.items():
        label = reads.label_of(lid, k)
        (per[label] if label in per else unlabelled).append(v)
    by_label = {n: {"agatston": math.fsum(a for a, _ in v), "volume_mm3": math.fsum(b for _, b in v),
                    "n_parts": len(v)} for n, v in per.items()}
    coronary = config.review.coronary()
    total = math.fsum(by_label[n]["agatston"] for n in coronary)
    n_vessels = sum(1 for n in coronary if by_label[n]["agatston"] > 0)
    rk = config.risk
    return {"labels": by_label, "coronary_agatston": total,
            "coronary_volume_mm3": math.fsum(by_label[n]["volume_mm3"] for n in coronary),
            # until the reader marks the case done its labels may be partial: no category
            "pending": not reads.done,
            "risk_category": risk_category(total, upper_bounds=rk.agatston_upper_bounds)
            if reads.done else "",
            "cac_drs": cac_drs(total, lower_bounds=rk.cac_drs_lower_bounds) if reads.done else "",
            "cac_drs_vessels": f"N{n_vessels}" if n_vessels and reads.done else "",
            "unlabelled_agatston": math.fsum(a for a, _ in unlabelled),
            "labelled_parts": sum(v["n_parts"] for v in by_label.values()),
            "parts": len(view.parts)}
