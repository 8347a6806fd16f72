"""Step 4: the calcium split by region: per-region scores and lesion pieces, checked against
the totals, and the coronary and vascular aggregates (:mod:`vascalc.core.scopes`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from ..config.schema import Config
from ..core.regions import OUTSIDE, split_by_region
from ..core.scopes import aggregate
from ..core.score import density_score, mass_mg
from ..records import CTVolume, Lesion, RegionScore
from .calcium import Calcium
from .contrast import ContrastPlan
from .layout import RegionLayout


@dataclass(frozen=True, eq=False)
class Breakdown:
    """Per region (and ``outside``) scores, the lesion pieces by region, the coronary and
    vascular aggregates (those the case has regions for) and the layout they were split by."""

    regions: tuple[RegionScore, ...] = ()
    pieces: tuple[Lesion, ...] = ()
    aggregates: dict[str, RegionScore] = field(default_factory=dict)
    layout: RegionLayout | None = None

    def classes(self) -> dict[str, str]:
        return {r.region: r.region_class for r in self.regions
                if r.region_class in ("coronary", "vascular", "bone", "other")}


def break_down(volume: CTVolume, config: Config, calcium: Calcium, layout: RegionLayout,
               plan: ContrastPlan, scan_threshold_hu: float) -> Breakdown:
    """Split ``calcium`` by ``layout``; a region the contrast plan withholds keeps its row
    with the reason, and an aggregate over a withheld region is withheld too."""
    sc = config.scoring
    inc, drow, dcol = volume.spacing_mm
    kept = calcium.kept
    assert kept is not None, "the breakdown needs the kept voxels"
    sp = split_by_region(volume.hu, kept.bands, kept.lesion_labels, layout.labels,
                         list(layout.names), pixel_area_mm2=drow * dcol,
                         scale=sc.increment_scale(inc), volume_counts=kept.counts)
    whole = calcium.whole
    assert whole.agatston is not None, "the calcium found is never withheld"
    if not np.isclose(sp.agatston.sum(), whole.agatston, rtol=1e-9, atol=1e-12 + 1e-9 * abs(
            whole.agatston)):
        raise AssertionError("per-region Agatston does not add up to the total")
    vv, unit = volume.voxel_volume_mm3, kept.unit
    c, water = sc.mass_calibration_mg_per_cm3_per_hu, sc.calibration_water_hu
    all_names = [OUTSIDE, *layout.names]
    cls = {OUTSIDE: OUTSIDE} | layout.class_of()
    scores = []
    for i, name in enumerate(all_names):
        m = mass_mg(float(sp.sum_hu[i]), int(sp.n_voxels[i]), vv, c, water)
        rule = plan.regions.get(name)
        scores.append(RegionScore(
            region=name, agatston=float(sp.agatston[i]), region_class=cls[name],
            lumen_median_hu=plan.lumen_median_hu.get(name),
            volume_mm3=float(sp.volume_units[i] * unit), mass_mg=None if m is None else float(m),
            n_lesions=int(sp.n_lesions[i]), n_slice_lesions=None,
            density_score=density_score(float(sp.agatston[i]), int(sp.n_voxels[i]), drow * dcol,
                                        sc.increment_scale(inc)) if sc.agatston else None,
            threshold_hu=scan_threshold_hu if rule is None else rule.threshold_hu,
            threshold_rule="" if rule is None else rule.rule,
            withheld="" if rule is None else rule.withheld))
    pieces = _pieces(volume, config, calcium, sp, all_names, unit)
    agg = partial(aggregate, sp, unit=unit, voxel_volume_mm3=vv, c=c, water_hu=water,
                  pixel_area_mm2=drow * dcol, scale=sc.increment_scale(inc), agatston=sc.agatston)
    aggregates = {}
    for scope, members in (("coronary", ("coronary",)), ("vascular", ("coronary", "vascular"))):
        idx = [i for i, n in enumerate(all_names) if cls[n] in members]
        if idx:
            aggregates[scope] = _withheld_if_any(agg(scope, idx), [scores[i] for i in idx])
    return Breakdown(regions=tuple(scores), pieces=pieces, aggregates=aggregates, layout=layout)


def _withheld_if_any(total: RegionScore, members: list[RegionScore]) -> RegionScore:
    """An aggregate is withheld when a member is (a partial sum would pass for the whole);
    its threshold rule lists the members' rules (without the lumen each was measured on)."""
    withheld = [f"{m.region}: {m.withheld}" for m in members if m.withheld]
    rules = sorted({m.threshold_rule.split(" (")[0] for m in members if m.threshold_rule})
    # the thresholds that found something or were set by a rule (an empty territory at the
    # scan threshold adds nothing to the aggregate, so it does not make it 'mixed')
    given = {m.threshold_hu for m in members if m.threshold_hu is not None}
    thresholds = {m.threshold_hu for m in members if m.threshold_hu is not None
                  and (m.threshold_rule or (m.volume_mm3 or 0.0) > 0)} or given
    return replace(total, withheld="; ".join(withheld), threshold_rule=";".join(rules),
                   threshold_hu=thresholds.pop() if len(thresholds) == 1 else None)


def _pieces(volume: CTVolume, config: Config, calcium: Calcium, sp, all_names,
            unit: float) -> tuple[Lesion, ...]:
    sc = config.scoring
    vv = volume.voxel_volume_mm3
    c, water = sc.mass_calibration_mg_per_cm3_per_hu, sc.calibration_water_hu
    cen: Any = volume.index_to_patient(sp.piece_centroid_index) if sp.piece_lesion.size else []
    by_id = {le.lesion_id: le for le in calcium.lesions}
    pieces = []
    for j in range(sp.piece_lesion.size):
        le = by_id[int(sp.piece_lesion[j])]
        m = mass_mg(float(sp.piece_sum_hu[j]), int(sp.piece_voxels[j]), vv, c, water)
        pieces.append(Lesion(
            lesion_id=le.lesion_id, n_slices=int(sp.piece_slices[j]),
            n_voxels=int(sp.piece_voxels[j]), volume_mm3=float(sp.piece_volume_units[j] * unit),
            mass_mg=None if m is None else float(m),
            agatston=float(sp.piece_agatston[j]), peak_hu=float(sp.piece_peak[j]),
            mean_hu=float(sp.piece_sum_hu[j] / sp.piece_voxels[j]),
            centroid_x_mm=float(cen[j][0]), centroid_y_mm=float(cen[j][1]),
            centroid_z_mm=float(cen[j][2]), region=all_names[int(sp.piece_region[j])]))
    return tuple(pieces)
