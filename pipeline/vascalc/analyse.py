"""analyse(volume, config) -> ScanResult: the pure stages composed, nothing read or written.

Order: calcium mask and slice lesions (segment), scores (score), body surface area (bsa).
The input volume is never modified.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .config.energy import resolve_energy, spectral_flags
from .config.schema import Config
from .config.thresholds import resolve as resolve_thresholds
from .core.blood_pool import find_blood_pool
from .core.bone import bone_mask
from .core.bsa import FORMULAS, check_anthropometry
from .core.contrast import AORTA_CONTRAST_MEDIAN_HU, agent_route
from .core.regions import RegionMask
from .errors import AnthropometryError, UsageError
from .flags import check as check_flags
from .measure.breakdown import Breakdown, break_down
from .measure.calcium import Calcium, find_calcium
from .measure.contrast import apply_plan, plan_contrast
from .measure.headline import Headline, Prepared, choose_headline, unconfirmed_rest
from .measure.layout import checked_masks, layout_regions
from .measure.protocol import deviations
from .measure.reads import Measured, reader_split
from .measure.shape import lesion_shapes
from .measure.uncertainty import headline_uncertainty
from .records import (  # noqa: F401 - Anthropometry re-exported: analyse's input record
    Anthropometry,
    BSAResult,
    CTVolume,
    LesionLabels,
    ScanResult,
    ScoredVoxels,
    Uncertainty,
)


def resolve_bsa(volume: CTVolume, config: Config, given: Anthropometry | None) -> BSAResult:
    """Height and weight from the manifest first, then DICOM PatientSize (m) and
    PatientWeight (kg); BSA empty, with the reason in ``source``, when either is missing.

    Implausible manifest values raise AnthropometryError (the user typed them and must fix
    them); implausible DICOM values leave BSA empty with the reason, because a 0 in a header
    usually means 'not recorded'."""
    formula = config.bsa.formula
    h = w = None
    hs = ws = ""
    if given is not None:
        if given.height_cm is not None:
            h, hs = given.height_cm, given.source
        if given.weight_kg is not None:
            w, ws = given.weight_kg, given.source
    if given is not None and h is not None and w is not None:
        check_anthropometry(h, w, source=given.source)
    meta = volume.meta
    if h is None and meta.patient_size_m is not None:
        h, hs = meta.patient_size_m * 100.0, "dicom"
    if w is None and meta.patient_weight_kg is not None:
        w, ws = meta.patient_weight_kg, "dicom"
    if h is None or w is None:
        missing = " and ".join(n for n, v in (("height", h), ("weight", w)) if v is None)
        return BSAResult(height_cm=h, weight_kg=w, bsa_m2=None, formula=formula,
                         source=f"missing: no {missing} in manifest or DICOM")
    try:
        check_anthropometry(h, w, source=hs if hs == ws else f"{hs}/{ws}")
    except AnthropometryError as err:
        return BSAResult(height_cm=h, weight_kg=w, bsa_m2=None, formula=formula,
                         source=f"implausible: {str(err).split(' -> ')[0]}")
    source = hs if hs == ws else f"height:{hs};weight:{ws}"
    return BSAResult(height_cm=h, weight_kg=w, bsa_m2=FORMULAS[formula].func(h, w),
                     formula=formula, source=source)


def analyse(volume: CTVolume, config: Config, *, case_id: str,
            anthropometry: Anthropometry | None = None,
            regions: Sequence[tuple[str, np.ndarray | RegionMask]] | None = None,
            region_source: str = "", keep_voxels: bool = False,
            reads: LesionLabels | None = None, measured: Measured | None = None,
            ) -> ScanResult:
    """Score one CT volume (and, given region masks on its grid, each region). Pure: reads
    nothing, writes nothing, modifies nothing. With ``keep_voxels`` the result also carries
    the scored voxels (:class:`ScoredVoxels`), so the artefacts show exactly the scored
    calcium. The headline covers the scope (:mod:`vascalc.core.scopes`); ``region_source``
    says where the region masks came from. On a contrast-enhanced scan no number counts
    contrast-filled lumen (:mod:`vascalc.measure.contrast`).

    With a reader's ``reads`` the calcium is found exactly as without them (the same
    threshold, contrast handling and bone removal, from the same region masks), then split
    by the reader's labels instead of the masks; the headline is the coronary scope of the
    coronary labels, and the region source is 'reader'.

    Parameters
    ----------
    volume : CTVolume
        The HU volume on its grid (slice, row, column) with its header facts.
    config : Config
        The conventions (threshold, connectivity, scope, contrast rule, ...).
    case_id : str
        The case's id, carried into the result.
    anthropometry : Anthropometry, optional
        Height and weight given outside the DICOM (they win over the header's).
    regions : sequence of (name, mask), optional
        Region masks on the volume's grid (boolean arrays or RegionMask).
    region_source : str
        How the masks were given (nifti_masks, label_map, ...), for the rows.
    keep_voxels : bool
        Keep the scored voxels in ``result.voxels`` (for the artefacts).
    reads : LesionLabels, optional
        A reader's labels of the lesions (``vascalc rescore``).
    measured : Measured, optional
        The calcium :func:`measure` found on this volume with this config and these regions
        (the review page keeps it to score a reader's labels with :func:`reader_split`).

    Returns
    -------
    ScanResult
        The scores of the whole volume, each region and the headline's scope, the lesions,
        BSA, risk fields, quality flags and the protocol gate.

    Raises
    ------
    VascalcError
        A subclass with its stable code: e.g. ScopeError (SCOPE_UNRESOLVED), ContrastError
        (CONTRAST_ENHANCED under ``scoring.contrast: refuse``), RegionError.

    Examples
    --------
    >>> import numpy as np
    >>> from vascalc import CTVolume, Config
    >>> hu = np.zeros((3, 16, 16), dtype=np.int16)
    >>> hu[1, 4:8, 4:8] = 450          # one 4 x 4 px plaque of weight 4 on one slice
    >>> r = analyse(CTVolume(hu=hu, spacing_mm=(3.0, 0.5, 0.5)), Config(), case_id="demo")
    >>> r.whole.agatston, r.whole.volume_mm3, r.scope
    (16.0, 12.0, 'whole_volume')
    """
    if not isinstance(volume, CTVolume) or not isinstance(config, Config):
        raise UsageError(f"analyse takes a CTVolume and a Config, not a "
                         f"{type(volume).__name__} and a {type(config).__name__}",
                         hint="read a series with vascalc.score_series(path), or build "
                              "CTVolume(hu=..., spacing_mm=...) and Config.model_validate(d)")
    t0 = time.perf_counter()
    masks = checked_masks(volume, regions, config.regions)
    if measured is None:
        measured = measure(volume, config, masks, need_voxels=bool(masks) or keep_voxels
                           or reads is not None or config.output.lesion_shape)
    prepared, calcium = measured.prepared, measured.calcium
    t1 = time.perf_counter()
    breakdown = mask_breakdown = Breakdown()
    if reads is not None and prepared.layout is not None:  # the masks' partition, kept beside
        mask_breakdown = break_down(prepared.volume, config, calcium, prepared.layout,
                                    prepared.plan, prepared.thresholds.threshold_hu)
    if reads is not None:  # the one arithmetic of a reader's scores (page, agreement, rescore)
        breakdown, headline = reader_split(measured, reads)
    else:
        if prepared.layout is not None:
            breakdown = break_down(prepared.volume, config, calcium, prepared.layout,
                                   prepared.plan, prepared.thresholds.threshold_hu)
        headline = choose_headline(prepared, config, calcium, breakdown, reads=None,
                                   has_regions=bool(masks))
    bsa = resolve_bsa(volume, config, anthropometry)
    flags = quality_flags(volume, config, prepared, calcium, breakdown, headline, bsa, reads)
    protocol = check_flags(deviations(prepared.volume, config, scope=headline.scope,
                                      kvp_adapted=prepared.kvp_adapted, plan=prepared.plan,
                                      layout=prepared.layout, flags=flags))
    comparable = (config.scoring.agatston and not headline.withheld and not protocol
                  and not headline.score.threshold_rule)
    t2 = time.perf_counter()
    result = _result(volume, config, case_id, prepared, calcium, breakdown, headline, bsa,
                     flags=flags, protocol=protocol, comparable=comparable,
                     region_source=region_source, reads=reads, keep_voxels=keep_voxels,
                     timings={"segment": t1 - t0, "score": t2 - t1})
    if mask_breakdown.regions:
        result = replace(result, mask_regions=mask_breakdown.regions, mask_source=region_source)
    if config.uncertainty.enabled:
        t3 = time.perf_counter()
        result = replace(result, uncertainty=_uncertainty(prepared, config, breakdown, headline),
                         timings_s={**result.timings_s, "uncertainty": time.perf_counter() - t3})
    if config.output.lesion_shape and calcium.kept is not None:
        t3 = time.perf_counter()
        shapes = lesion_shapes(calcium.kept.lesion_labels, volume.spacing_mm)
        result = replace(result, lesion_shapes=shapes,
                         timings_s={**result.timings_s, "shape": time.perf_counter() - t3})
    return result


def measure(volume: CTVolume, config: Config, masks, *, need_voxels: bool) -> Measured:
    """The scan prepared (:func:`prepare`) and its calcium found on it: what every number of
    the case, and every reader's split of it, is computed from. ``masks`` as
    :func:`vascalc.measure.layout.checked_masks` returns them."""
    prepared = prepare(volume, config, masks)
    calcium = find_calcium(prepared.volume, config, prepared.thresholds,
                           need_voxels=need_voxels)
    return Measured(prepared, calcium, config)


def prepare(volume: CTVolume, config: Config, masks) -> Prepared:
    """Bone removed (scope bone_excluded), thresholds resolved, regions laid out, and the
    contrast plan made and applied. The caller's volume is never modified."""
    sc = config.scoring
    base_scope = "whole_volume"
    th = resolve_energy(sc, volume.meta) or resolve_thresholds(sc, volume.meta.kvp)
    # the blood pool is looked for on the scan as given (bone removal would take an enhanced
    # aorta for bone), unless the header already names intravascular contrast
    pool = (find_blood_pool(volume.hu, volume.spacing_mm, threshold_hu=th.threshold_hu)
            if agent_route(volume.meta.contrast_agent) != "intravascular" else None)
    if sc.scope == "bone_excluded":
        bone = bone_mask(volume.hu, volume.spacing_mm, threshold_hu=sc.bone_threshold_hu,
                         min_volume_cm3=sc.bone_min_volume_cm3, margin_mm=sc.bone_margin_mm)
        hu = np.where(bone, np.asarray(-1000, dtype=volume.hu.dtype), volume.hu)
        hu.flags.writeable = False
        volume = replace(volume, hu=hu)  # a new record: the caller's volume is untouched
        base_scope = "bone_excluded"
    layout = layout_regions(volume, config.regions, masks) if masks else None
    plan = plan_contrast(volume, config, masks, layout, th.threshold_hu, pool)
    if plan.regions:
        volume = replace(volume, hu=apply_plan(volume.hu, plan, layout))
    return Prepared(volume=volume, thresholds=th, base_scope=base_scope, layout=layout,
                    plan=plan,  # a VMI's HU are set by its keV, not the tube's kVp
                    kvp_adapted=th.source.startswith(("kvp_table", "calibration", "energy_"))
                    or volume.meta.series_kind == "vmi")


def quality_flags(volume: CTVolume, config: Config, prepared: Prepared, calcium: Calcium,
                  breakdown: Breakdown, headline: Headline, bsa: BSAResult,
                  reads: LesionLabels | None = None) -> tuple[str, ...]:
    """The case's quality flags (codes of :mod:`vascalc.flags`), in a fixed order."""
    sc = config.scoring
    flags = list(volume.quality_flags)
    if reads is not None and (not reads.done or unconfirmed_rest(breakdown, reads)):
        flags.append("review_incomplete")
    if sc.mass_calibration_mg_per_cm3_per_hu is None:
        flags.append("mass_uncalibrated")
    if prepared.plan.enhanced:
        flags.append("contrast_enhanced")
        flags.extend(prepared.plan.notes)
    flags.extend(spectral_flags(volume.meta, sc, adapted=prepared.kvp_adapted))
    kvp = volume.meta.kvp
    if not prepared.kvp_adapted and kvp is not None and abs(kvp - 120.0) > 0.5:
        # 130 HU is defined at 120 kVp (Agatston 1990); calcium reads brighter at lower kVp
        flags.append("kvp_not_120")
    if bsa.source.startswith("implausible"):
        flags.append("bsa_implausible_dicom")
    if breakdown.layout is not None and breakdown.layout is prepared.layout:
        # the masks' own flags: a reader's labels replace the masks in the breakdown
        flags.extend(prepared.layout.flags)
        flags.extend(f"contrast_filled:{n}" for n, med in prepared.plan.lumen_median_hu.items()
                     if med is not None and med > AORTA_CONTRAST_MEDIAN_HU)
    scope, whole = headline.scope, calcium.whole
    if scope == "bone_excluded":
        flags.append("bone_heuristic")  # docs, conventions: 'Scopes': what the heuristic misses and takes
    if scope in ("whole_volume", "bone_excluded") and whole.volume_mm3:  # found: never withheld
        bone = sum(r.volume_mm3 or 0.0 for r in breakdown.regions if r.region_class == "bone")
        if max(calcium.large_volume_mm3, bone) > 0.5 * whole.volume_mm3:
            flags.append("bone_dominated")  # most of the headline is bone-like structure
    return check_flags(tuple(flags))


def _result(volume: CTVolume, config: Config, case_id: str, prepared: Prepared,
            calcium: Calcium, breakdown: Breakdown, headline: Headline, bsa: BSAResult, *,
            flags, protocol, comparable: bool, region_source: str,
            reads: LesionLabels | None, keep_voxels: bool, timings) -> ScanResult:
    sc, th, plan = config.scoring, prepared.thresholds, prepared.plan
    drow, dcol = volume.spacing_mm[1:]
    voxels = None
    if keep_voxels:
        layout, kept = breakdown.layout, calcium.kept
        assert kept is not None  # find_calcium keeps them when keep_voxels is asked
        w1, w2, w3, w4 = th.weight_hu
        voxels = ScoredVoxels(
            hu=prepared.volume.hu, bands=kept.bands,
            lesion_labels=kept.lesion_labels, threshold_hu=th.threshold_hu,
            weight_hu=(w1, w2, w3, w4), region_labels=None if layout is None else layout.labels,
            region_names=() if layout is None else layout.names,
            region_classes=() if layout is None else layout.classes)
    score = headline.score
    return ScanResult(
        case_id=case_id, meta=volume.meta,
        whole=replace(calcium.whole, withheld=plan.whole_withheld),
        lesions=breakdown.pieces if breakdown.layout is not None else calcium.lesions, bsa=bsa,
        volume_per_bsa_mm3_m2=None if bsa.bsa_m2 is None or score.volume_mm3 is None
        else score.volume_mm3 / bsa.bsa_m2,
        risk_category=headline.risk_category, cac_drs=headline.cac_drs,
        settings={**config.provenance(), "scope": headline.scope,
                  "min_lesion_area_mm2": sc.min_area_mm2(drow * dcol),
                  "threshold_hu": th.threshold_hu, "threshold_source": th.source,
                  "energy_threshold": sc.energy_threshold,
                  "agatston": sc.agatston},
        shape=volume.shape, spacing_mm=tuple(float(s) for s in volume.spacing_mm),  # type: ignore[arg-type]
        quality_flags=flags, timings_s=timings, regions=breakdown.regions,
        density_score=score.density_score, cac_drs_vessels=headline.cac_drs_vessels,
        scope=headline.scope, headline=score, scope_regions=headline.regions,
        region_source="reader" if reads is not None else region_source
        if prepared.layout is not None else "",
        reader=reads.reader if reads is not None else "", risk_basis=headline.risk_basis,
        read_at=reads.done_at if reads is not None and reads.done else "",
        rest_confirmed_at=reads.rest_confirmed_at if reads is not None and reads.done else "",
        origin_mm=_floats(volume.origin_mm), slice_step_mm=_floats(
            np.asarray(volume.direction, dtype=float)[:, 0] * float(volume.spacing_mm[0])),
        vascular=breakdown.aggregates.get("vascular"),
        coronary=breakdown.aggregates.get("coronary"), voxels=voxels,
        contrast_rule=plan.rule if plan.regions else "", contrast_phase=plan.phase,
        contrast_phase_source=plan.phase_source, agatston_comparable=comparable,
        protocol_deviations=protocol)


def _floats(v) -> tuple[float, float, float]:
    a, b, c = (float(x) for x in v)
    return a, b, c


def _uncertainty(prepared: Prepared, config: Config, breakdown: Breakdown,
                 headline: Headline) -> Uncertainty:
    """The headline's rescan model (:mod:`vascalc.measure.uncertainty`), within the scope's
    regions when it has some."""
    layout = breakdown.layout
    mask = None
    if headline.regions and layout is not None:
        mask = np.isin(layout.labels, [layout.index(n) for n in headline.regions
                                       if n in layout.names])
    try:
        return headline_uncertainty(prepared.volume, config, prepared.thresholds,
                                    observed=headline.score, scope_mask=mask,
                                    coronary_risk=bool(headline.risk_category))
    except MemoryError:  # the scores stand; only their intervals are missing, with the reason
        uc = config.uncertainty
        return Uncertainty(n_rescans=uc.n_rescans, seed=uc.seed,
                           reason="not enough memory for the rescan model")
