"""Step 2: the contrast plan. On a contrast-enhanced scan no number may count contrast-filled
lumen: each contrast-filled vascular territory gets a threshold from the rule the config
names (``scoring.contrast``), checked against its own lumen, or has its numbers withheld
with the reason; every other region but bone is withheld too, since at 130 HU it counts
enhanced tissue. The plan is applied to the HU before the calcium is found, so the lesions,
the tables and the artefacts all see the same voxels.

The rules:

- ``phase_threshold``: the fixed thresholds that best matched non-contrast Agatston in 1,125
  triphasic CT angiograms ("Improving aortic calcium assessment in contrast-enhanced CT:
  exploring Hounsfield Unit thresholds for cardiovascular scoring", retrospective
  single-centre study, PubMed, May 2026): 300 HU in the venous phase (Spearman 0.93 thoracic,
  0.92 abdominal aorta; R2 0.66 / 0.68), 900 HU thoracic and 800 HU abdominal aorta in the
  arterial phase (R2 0.51 / 0.45); dynamic thresholds did worse. Its abstract (the full text
  was not available to us) compares the score at each fixed threshold with the non-contrast
  Agatston score by correlation, regression and Bland-Altman analysis, that is on Agatston's
  scale, and reports growing underestimation at high burden: vascalc therefore scores
  Agatston-style at the moved threshold, keeping the density weights of the HU bands (a voxel
  kept at 300 HU weighs 3 or 4), and never calls the result Agatston.
  A threshold applies only above the territory's lumen (median + ``lumen_margin_k`` x robust
  spread); a brighter lumen withholds the territory. The study measured the aorta: other
  contrast-filled territories (``contrast.fixed_regions`` says which count) are withheld
  under this rule rather than scored at a threshold derived elsewhere.
- ``lumen_adaptive``: the lumen median + ``scoring.lumen_k`` x robust spread
  (:func:`vascalc.core.contrast.lumen_adaptive_hu`).
- ``lumen_adaptive_comp2comp``: Comp2Comp's median + 3 x (median - 15.87th percentile)
  (:func:`vascalc.core.contrast.comp2comp_hu`).
- ``withhold`` (the default): contrast-filled territories are withheld.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config.schema import Config
from ..core.blood_pool import BloodPool
from ..core.contrast import (
    AORTA_CONTRAST_MEDIAN_HU,
    MIN_LUMEN_VOXELS,
    comp2comp_hu,
    contrast_evidence,
    header_phase,
    lumen_adaptive_hu,
    lumen_median_hu,
    lumen_phase,
    robust_spread,
)
from ..core.regions import OUTSIDE, RegionMask, matches
from ..errors import ContrastError
from ..records import CTVolume
from .layout import RegionLayout

#: the removed voxels' value: below every threshold vascalc allows
_REMOVED = -1000


@dataclass(frozen=True)
class TerritoryRule:
    """How one region is scored on a contrast scan: at ``threshold_hu`` by ``rule``, or
    withheld (``withheld`` says why; the threshold is then None)."""

    threshold_hu: float | None
    rule: str = ""
    withheld: str = ""


@dataclass(frozen=True)
class ContrastPlan:
    """The contrast evidence, the rule and phase used, and what each region gets (regions
    not named keep the scan's threshold). ``whole_withheld`` says why the all-calcium total
    (and a whole-volume headline) is not given."""

    evidence: str = ""
    rule: str = ""
    phase: str = ""
    phase_source: str = ""
    regions: dict[str, TerritoryRule] = field(default_factory=dict)
    whole_withheld: str = ""
    lumen_median_hu: dict[str, float | None] = field(default_factory=dict)
    #: quality flags of the plan: contrast_from_image, contrast_phase_disagrees
    notes: tuple[str, ...] = ()

    @property
    def enhanced(self) -> bool:
        return bool(self.evidence)


def plan_contrast(volume: CTVolume, config: Config, masks: list[tuple[str, RegionMask]],
                  layout: RegionLayout | None, scan_threshold_hu: float,
                  pool: BloodPool | None = None) -> ContrastPlan:
    """The plan of a case (see the module's text). ``pool`` is the image's blood pool
    (:func:`vascalc.core.blood_pool.find_blood_pool`, found on the scan before bone removal):
    contrast is found from the image when the header is silent. Raises ContrastError under
    ``scoring.contrast: refuse`` when the scan is contrast-enhanced."""
    sc = config.scoring
    pool = pool or BloodPool()
    names = layout.names if layout is not None else ()
    cls = layout.class_of() if layout is not None else {}
    # an empty mask (a territory outside the scan) holds nothing to score: it needs no rule
    measured = [n for n in names if cls[n] in ("vascular", "coronary") and layout is not None
                and n in layout.masks and layout.masks[n].any()]
    lumen = {n: lumen_median_hu(volume, layout.masks[n]) for n in measured} if layout else {}
    empty = {n for n in names if layout is not None and n in layout.masks
             and not layout.masks[n].any()}
    evidence = contrast_evidence(volume, {}, pool.evidence())
    if not evidence and layout is not None and not pool.judged:
        # a field of view too small to hold a blood pool: the masks' lumen decides as measured
        evidence = contrast_evidence(volume, lumen)
    elif not evidence and layout is not None:
        # the image shows no enhanced blood: the masks witness contrast only by their lumen
        # without calcium and its rim (a mask that hugs a plaque has a bright median)
        strict = {n: lumen_median_hu(volume, layout.masks[n], threshold_hu=scan_threshold_hu,
                                     blood_pool=pool.mask) for n in measured}
        evidence = contrast_evidence(volume, strict)
        if not evidence:
            lumen = strict
    filled = {n for n, med in lumen.items() if med is not None and med > AORTA_CONTRAST_MEDIAN_HU}
    if not evidence:
        return ContrastPlan(lumen_median_hu=lumen)
    notes: list[str] = []
    if not evidence.startswith("ContrastBolusAgent"):
        notes.append("contrast_from_image")  # the header is silent or says none: the image decides
    if sc.contrast == "refuse":
        raise ContrastError(f"contrast-enhanced: {evidence}")
    # a territory too small to measure is taken as filled on an enhanced scan
    filled |= {n for n, med in lumen.items() if med is None}
    proxy = dict(masks).get(sc.lumen_region)
    proxy_values = (proxy.values(volume.hu) if proxy is not None
                    and proxy.sum() >= MIN_LUMEN_VOXELS else None)
    phase, phase_source, disagree = _phase(volume, config, proxy_values)
    if disagree:
        notes.append("contrast_phase_disagrees")
    rules: dict[str, TerritoryRule] = {}
    assert layout is not None or not names
    hu_max = float(np.max(volume.hu)) if volume.hu.size else 0.0
    for n in names:
        if n in filled and layout is not None:
            own = layout.masks[n]
            values = own.values(volume.hu) if own.sum() >= MIN_LUMEN_VOXELS else proxy_values
            rule = _territory(n, values, config, phase, scan_threshold_hu,
                              proxy=values is proxy_values)
            if rule.threshold_hu is not None and rule.threshold_hu > hu_max:
                # nothing can reach it: a 0 would read as 'no calcium' where the rule is blind
                rule = TerritoryRule(None, withheld=f"{rule.rule} threshold {rule.threshold_hu:.0f}"
                                     f" HU is above every voxel of the scan (max {hu_max:.0f} "
                                     "HU): it cannot find calcium here")
            rules[n] = rule
        elif cls[n] != "bone" and n not in empty:
            rules[n] = TerritoryRule(None, withheld=_ENHANCED_TISSUE)
    rules[OUTSIDE] = TerritoryRule(None, withheld=_ENHANCED_TISSUE)
    return ContrastPlan(
        evidence=evidence, rule=sc.contrast, phase=phase if sc.contrast == "phase_threshold"
        else "", phase_source=phase_source if sc.contrast == "phase_threshold" else "",
        regions=rules, lumen_median_hu=lumen, notes=tuple(notes),
        whole_withheld="contrast-enhanced scan: the all-calcium total at the scan threshold "
        "counts contrast-filled lumen and enhanced tissue")


_ENHANCED_TISSUE = ("contrast-enhanced scan: at the scan threshold this region counts "
                    "enhanced tissue, and no contrast rule applies to it")


def _phase(volume: CTVolume, config: Config, proxy_values) -> tuple[str, str, bool]:
    """The contrast phase, where it came from (the config, the header, the lumen HU), and
    whether the header and the image disagreed: when the header names a phase and the lumen
    measures another, the lumen's measurement decides (a venous scan described "Angio")."""
    if config.contrast.phase != "auto":
        return config.contrast.phase, "config", False
    med = None if proxy_values is None else float(np.median(proxy_values))
    measured = lumen_phase(med, config.contrast.arterial_lumen_hu)
    phase, source = header_phase(volume.meta.contrast_phase, volume.meta.series_description)
    if phase and measured and measured != phase:
        return measured, "lumen_hu", True
    if phase:
        return phase, source, False
    return (measured, "lumen_hu", False) if measured else ("", "", False)


def _territory(name: str, values, config: Config, phase: str, scan_threshold_hu: float, *,
               proxy: bool) -> TerritoryRule:
    sc, cc = config.scoring, config.contrast
    if sc.contrast == "withhold":
        return TerritoryRule(None, withheld="contrast-filled lumen; scoring.contrast is "
                             "withhold (choose a contrast rule to score it)")
    if values is None or len(values) == 0:
        return TerritoryRule(None, withheld=f"contrast-filled lumen too small to measure and no "
                             f"{sc.lumen_region!r} lumen to stand in for it")
    where = f" ({sc.lumen_region} lumen)" if proxy else ""
    if sc.contrast == "lumen_adaptive":
        t = lumen_adaptive_hu(values, sc.lumen_k)
        return TerritoryRule(max(t, scan_threshold_hu), rule="lumen_adaptive" + where)
    if sc.contrast == "lumen_adaptive_comp2comp":
        return TerritoryRule(max(comp2comp_hu(values), scan_threshold_hu),
                             rule="lumen_adaptive_comp2comp" + where)
    if not matches(name, cc.fixed_regions):
        return TerritoryRule(None, withheld="contrast-filled lumen; the published phase "
                             "thresholds were derived for the aorta only (contrast.fixed_regions)")
    if not phase:
        return TerritoryRule(None, withheld="contrast phase unknown (not in the header, no "
                             f"{sc.lumen_region!r} lumen to infer it; set contrast.phase)")
    if phase == "venous":
        t, rule = cc.venous_threshold_hu, "phase_threshold:venous"
    elif matches(name, cc.abdominal):
        t, rule = cc.arterial_abdominal_threshold_hu, "phase_threshold:arterial_abdominal"
    else:
        t, rule = cc.arterial_thoracic_threshold_hu, "phase_threshold:arterial_thoracic"
    med, spread = robust_spread(values)
    ceiling = med + cc.lumen_margin_k * spread
    if t <= ceiling:
        return TerritoryRule(None, withheld=f"lumen too bright for {rule} at {t:g} HU (lumen "
                             f"median {med:.0f} HU, + {cc.lumen_margin_k:g} spreads = "
                             f"{ceiling:.0f} HU){where}")
    return TerritoryRule(max(t, scan_threshold_hu), rule=rule + where)


def apply_plan(hu: np.ndarray, plan: ContrastPlan, layout: RegionLayout | None) -> np.ndarray:
    """The HU with the plan applied: in a territory with its own threshold the voxels below it
    are removed; a withheld region is removed whole. ``hu`` itself is not modified."""
    if not plan.regions:
        return hu
    out = np.array(hu, copy=True)
    labels = layout.labels if layout is not None else np.zeros(hu.shape, dtype=np.uint16)
    index = {OUTSIDE: 0} | ({n: i for i, n in enumerate(layout.names, start=1)}
                           if layout is not None else {})
    lut_thr = np.full(len(index) + 1, -np.inf)
    for name, r in plan.regions.items():
        lut_thr[index[name]] = np.inf if r.threshold_hu is None else r.threshold_hu
    below = out < lut_thr[labels]
    out[below] = np.asarray(_REMOVED, dtype=out.dtype)
    out.flags.writeable = False
    return out
