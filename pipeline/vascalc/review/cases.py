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

import hashlib
import json
import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..analyse import measure
from ..config.load import config_from_dict, with_study_secret
from ..config.schema import Config
from ..core.regions import OUTSIDE, matches
from ..errors import ReviewError, UsageError, VascalcError
from ..measure.headline import unconfirmed_rest
from ..measure.layout import checked_masks
from ..measure.reads import Measured, reader_split
from ..records import LesionLabels
from ..results.document import lesion_rows_of, read_result, result_path
from ..run.case import load_case, score_loaded
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
    #: the calcium as the case path found it: a reader's scores are split from it by the
    #: case path's own function (:func:`vascalc.measure.reads.reader_split`)
    measured: Measured

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
    loaded = load_case(case, config)
    volume, settings = loaded.volume, loaded.settings
    measured = measure(volume, settings, checked_masks(volume, loaded.masks, settings.regions),
                       need_voxels=True)
    result = score_loaded(case, loaded, keep_voxels=True, measured=measured)
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
                    np.asarray(volume.direction, dtype=float), lesions, parts, measured)


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
    """What identifies each lesion, by geometry only (never its number or a slice index):
    its voxel count, peak HU and voxel-weighted centroid in patient coordinates (LPS, 0.1 mm),
    from the case's lesion rows (one pass). A read stores it; a read whose lesion has another
    signature now was made on another lesion (a config change, a re-exported or shifted
    series renumbers the lesions) and is stale: refused, never applied to a new lesion."""
    acc: dict[int, list[float]] = {}  # lesion -> [voxels, peak, sum x, sum y, sum z]
    for r in lesion_rows_of(doc):
        n = int(r["n_voxels"])
        a = acc.setdefault(int(r["lesion_id"]), [0, -math.inf, 0.0, 0.0, 0.0])
        a[0] += n
        a[1] = max(a[1], float(r["peak_hu"]))
        for i, ax in enumerate("xyz", start=2):
            a[i] += float(r[f"centroid_{ax}_mm"]) * n
    return {lid: f"{SIGNATURE}:{int(n)}:{peak:.1f}:" + ",".join(f"{s / n:.1f}" for s in sums)
            for lid, (n, peak, *sums) in acc.items() if n}


#: the kind of signature this vascalc writes (geometric; an earlier kind began with the
#: run config's sha256, whose lesion part is compared the same way)
SIGNATURE = "g1"
#: how far (mm, HU) two signatures' positions and peaks may differ and name one lesion (the
#: 0.1 mm rounding of a value computed again after a slice shift)
SIGNATURE_TOLERANCE = 0.15


def lesion_set_id(doc: dict[str, Any]) -> str:
    """The identity of a case's lesion set as a review server loaded it: the input's
    fingerprint, the run config's sha256 and every lesion's signature (a run redone over
    other inputs or another config has another)."""
    sigs = sorted(lesion_signatures(doc).items())
    text = json.dumps([doc.get("fingerprint"), doc.get("config_sha256"), sigs])
    return hashlib.sha256(text.encode()).hexdigest()


def lesion_signature(doc: dict[str, Any], lesion_id: int) -> str:
    """The signature of one lesion (:func:`lesion_signatures`; '' for no such lesion)."""
    return lesion_signatures(doc).get(lesion_id, "")


def part_signature(doc: dict[str, Any], lesion_id: int, slice_index: int) -> str:
    """The signature of a lesion on one slice: the lesion's, and the patient position (LPS,
    0.1 mm) of that slice, so that a slice read follows the slice, not its index ('' when
    the result records no slice positions, as an earlier vascalc's, or no such lesion)."""
    lesion, place = lesion_signature(doc, lesion_id), _slice_place(doc, slice_index)
    return f"{lesion}@{place}" if lesion and place else ""


def _slice_place(doc: dict[str, Any], k: int) -> str:
    """The patient position (LPS, 0.1 mm) of slice ``k``: the record's origin plus k steps
    ('' for a failed case or a result of an earlier vascalc, which records neither)."""
    record = (doc.get("outcome") or {}).get("record") or {}
    origin, step = record.get("origin_mm"), record.get("slice_step_mm")
    if origin is None or step is None:
        return ""
    return ",".join(f"{float(o) + k * float(d):.1f}" for o, d in zip(origin, step))


def _same(stored: str, now: str) -> bool:
    """Whether a stored signature and today's name one lesion (or lesion part): the same
    voxel count, peak HU and centroid (and slice place) within SIGNATURE_TOLERANCE. A read
    stored without a signature matches nothing."""
    if not stored or not now:
        return False
    a, b = stored.split("@"), now.split("@")
    if len(a) != len(b):
        return False
    ga, gb = a[0].split(":")[1:], b[0].split(":")[1:]  # without the kind (or legacy sha)
    try:
        if len(ga) != 3 or len(gb) != 3 or int(ga[0]) != int(gb[0]):
            return False
        nums_a = [float(ga[1]), *map(float, ga[2].split(","))]
        nums_b = [float(gb[1]), *map(float, gb[2].split(","))]
        if len(a) == 2:
            nums_a += map(float, a[1].split(","))
            nums_b += map(float, b[1].split(","))
    except ValueError:
        return False
    return len(nums_a) == len(nums_b) and all(
        abs(x - y) <= SIGNATURE_TOLERANCE for x, y in zip(nums_a, nums_b))


def stale_reads(reads: Reads, doc: dict[str, Any]) -> list[int]:
    """The lesions with a read in force that was made on another lesion (or lesion part)
    than the one that has its number (and slice) now. A read stored without a signature (an
    earlier vascalc's database) is stale: it cannot be shown to be on this lesion."""
    now = lesion_signatures(doc)
    stale = {lid for lid in reads.lesion if not _same(reads.signatures.get(lid, ""),
                                                        now.get(lid, ""))}
    for (lid, k) in reads.slices:
        if lid in stale:
            continue
        lesion, place = now.get(lid, ""), _slice_place(doc, k)
        current = f"{lesion}@{place}" if lesion and place else ""
        if not _same(reads.slice_signatures.get((lid, k), ""), current):
            stale.add(lid)
    return sorted(stale)


def lesion_labels(reads: Reads, config: Config, reader: str = "") -> LesionLabels:
    """A reader's reads as the record analyse splits by."""
    labels = config.review.labels
    return LesionLabels(lesion=dict(reads.lesion), slices=dict(reads.slices),
                        names=tuple(lab.name for lab in labels),
                        classes=tuple(lab.label_class for lab in labels), reader=reader,
                        done=reads.done, done_at=reads.done_at,
                        rest_confirmed_at=reads.rest_confirmed_at)


def reader_scores(view: CaseView, reads: Reads, config: Config) -> dict[str, Any]:
    """Per label and coronary totals of one reader's reads, by the case path's arithmetic
    (:func:`vascalc.measure.reads.reader_split`, the function rescore's
    :func:`vascalc.analyse.analyse` uses): each label's Agatston and volume as the label's
    region in regions.csv, the coronary total as the coronary headline, risk category and
    CAC-DRS (with N) only for a final read, Agatston empty (None) when the case's settings
    give none (``scoring.agatston: false``). ``unlabelled_*`` is the calcium no label covers
    (regions.csv 'outside'); ``final`` whether the read would be a final (done, and every
    calcium lesion labelled or the rest confirmed not coronary)."""
    labels = lesion_labels(reads, config)
    breakdown, headline = reader_split(view.measured, labels)
    ag = view.measured.config.scoring.agatston
    region = {r.region: r for r in breakdown.regions}
    counts: dict[str, int] = {}
    for (lid, k) in view.parts:
        label = reads.label_of(lid, k)
        counts[label] = counts.get(label, 0) + 1
    by_label = {lab.name: {"agatston": region[lab.name].agatston if ag else None,
                           "volume_mm3": region[lab.name].volume_mm3,
                           "n_parts": counts.get(lab.name, 0)}
                for lab in config.review.labels}
    rest = region.get(OUTSIDE)
    coronary = headline.score if headline.scope == "coronary" else None
    final = reads.done and unconfirmed_rest(breakdown, labels) is None
    return {"labels": by_label,
            "coronary_agatston": coronary.agatston if coronary is not None and ag else None,
            "coronary_volume_mm3": coronary.volume_mm3 if coronary is not None else None,
            # until the read is final its labels may be partial: no category
            "pending": not final, "final": final, "done": reads.done,
            "risk_category": headline.risk_category, "cac_drs": headline.cac_drs,
            "cac_drs_vessels": headline.cac_drs_vessels, "risk_basis": headline.risk_basis,
            "unlabelled_agatston": (rest.agatston if rest is not None else 0.0) if ag else None,
            "unlabelled_volume_mm3": rest.volume_mm3 if rest is not None else 0.0,
            "rest_confirmed_not_coronary": bool(reads.rest_confirmed_at),
            "rest_confirmed_at": reads.rest_confirmed_at,
            "labelled_parts": sum(n for lab, n in counts.items() if lab in by_label),
            "parts": len(view.parts)}
