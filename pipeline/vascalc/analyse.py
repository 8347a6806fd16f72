"""analyse(volume, config) -> ScanResult: the pure stages composed, nothing read or written.

Order: calcium mask and slice lesions (segment), scores (score), body surface area (bsa).
The input volume is never modified.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import numpy as np

from .config.schema import Config
from .config.thresholds import resolve as resolve_thresholds
from .core.bone import bone_mask
from .core.bsa import FORMULAS, check_anthropometry
from .core.contrast import AORTA_CONTRAST_MEDIAN_HU, contrast_evidence, lumen_median_hu, lumen_threshold
from .core.lesions import density_band_mask, find_slice_lesions
from .core.regions import (
    OUTSIDE,
    as_region_mask,
    combine,
    label_regions,
    merge_territories,
    region_class,
    split_aorta,
    split_by_region,
    voxel_z_mm,
)
from .core.scopes import aggregate, resolve_scope, risk_basis
from .core.score import (
    cac_drs,
    density_score,
    interpolated_counts,
    interpolation_steps,
    mass_mg,
    risk_category,
    score_lesions,
    volume_mm3,
)
from .core.thresholds import Thresholds
from .errors import AnthropometryError, ContrastError
from .flags import check as check_flags
from .records import (  # noqa: F401 - Anthropometry re-exported: analyse's input record
    Anthropometry,
    BSAResult,
    CTVolume,
    Lesion,
    LesionLabels,
    RegionScore,
    ScanResult,
    ScoredVoxels,
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
            regions: list[tuple[str, np.ndarray]] | None = None,
            region_source: str = "", keep_voxels: bool = False,
            reads: LesionLabels | None = None) -> ScanResult:
    """Score one CT volume (and, given region masks on its grid, each region). Pure: reads
    nothing, writes nothing, modifies nothing. With ``keep_voxels`` the result also carries
    the scored voxels (:class:`ScoredVoxels`: the scored HU, bone removed under scope
    bone_excluded, the density bands and 3-D lesion labels at the scan's own thresholds), so
    the artefacts show exactly the scored calcium. The headline covers the scope
    (:mod:`vascalc.core.scopes`); ``region_source`` says where the region masks came from.

    With a reader's ``reads`` the calcium is found exactly as without them (the same
    threshold, contrast handling and bone removal, from the same region masks), then split
    by the reader's labels instead of the masks; the headline is the coronary scope of the
    coronary labels, with risk category and CAC-DRS, and the region source is 'reader'."""
    sc = config.scoring
    t0 = time.perf_counter()
    inc, drow, dcol = volume.spacing_mm
    if regions:
        for name, m in regions:
            if tuple(m.shape) != tuple(volume.shape):
                raise ValueError(f"region {name!r} has shape {m.shape}, the CT {volume.shape}")
        regions = [(name, as_region_mask(m)) for name, m in regions]
    scope = "whole_volume"
    if sc.scope == "bone_excluded":
        bone = bone_mask(volume.hu, volume.spacing_mm, threshold_hu=sc.bone_threshold_hu,
                         min_volume_cm3=sc.bone_min_volume_cm3, margin_mm=sc.bone_margin_mm)
        hu = np.where(bone, np.asarray(-1000, dtype=volume.hu.dtype), volume.hu)
        hu.flags.writeable = False
        volume = replace(volume, hu=hu)  # a new record: the caller's volume is untouched
        scope = "bone_excluded"
    th = resolve_thresholds(sc, volume.meta.kvp)
    contrast = contrast_evidence(volume, regions)
    if contrast and sc.contrast == "refuse":
        raise ContrastError(f"contrast-enhanced: {contrast}")
    if contrast and sc.contrast == "lumen_adaptive":
        th = lumen_threshold(volume, regions, sc, th)
    min_area = sc.min_area_mm2(drow * dcol)
    sl = find_slice_lesions(
        volume.hu, pixel_area_mm2=drow * dcol, threshold_hu=th.threshold_hu,
        min_lesion_area_mm2=min_area, slice_connectivity=sc.slice_connectivity,
        lesion_connectivity=sc.lesion_connectivity)
    t1 = time.perf_counter()
    ls = score_lesions(sl, spacing_mm=volume.spacing_mm, weight_hu=th.weight_hu,
                       reference_increment_mm=sc.reference_increment_mm,
                       scale_by_increment=sc.scale_by_increment)
    vv = volume.voxel_volume_mm3
    c = sc.mass_calibration_mg_per_cm3_per_hu
    water = sc.calibration_water_hu
    centroids = volume.index_to_patient(ls.centroid_index) if sl.n_lesions else np.zeros((0, 3))
    les_vol = volume_mm3(ls.n_voxels, vv)
    les_mass = mass_mg(ls.sum_hu, ls.n_voxels, vv, c, water)
    lesions = tuple(
        Lesion(lesion_id=i + 1, n_slices=int(ls.n_slices[i]), n_voxels=int(ls.n_voxels[i]),
               volume_mm3=float(les_vol[i]),
               mass_mg=None if les_mass is None else float(les_mass[i]),
               agatston=float(ls.agatston[i]), peak_hu=float(ls.peak_hu[i]),
               mean_hu=float(ls.sum_hu[i] / ls.n_voxels[i]),
               centroid_x_mm=float(centroids[i, 0]), centroid_y_mm=float(centroids[i, 1]),
               centroid_z_mm=float(centroids[i, 2]))
        for i in range(sl.n_lesions))
    total_voxels, total_sum_hu = ls.total_voxels, ls.total_sum_hu
    total_volume = float(volume_mm3(total_voxels, vv))
    # the kept voxels as a volume (bands, 3-D labels): only for regions or interpolation
    interpolate = (sc.volume_method == "interpolated" and sl.n_lesions
                   and interpolation_steps(volume.spacing_mm) > 1)  # m = 1: the voxel count
    need_voxels = regions or interpolate or keep_voxels or reads is not None
    kept = _kept_voxels(volume, config, th, lesions) if need_voxels else None
    counts, unit = None, vv  # volume of a kept voxel: itself, or its interpolated voxels
    if interpolate:
        counts, unit = interpolated_counts(volume.hu, kept[0] > 0, spacing_mm=volume.spacing_mm,
                                           threshold_hu=th.threshold_hu)
        at = np.flatnonzero(counts)  # kept voxels only: the bincount stays small
        per_lesion = np.bincount(kept[1].ravel()[at], weights=counts.ravel()[at],
                                 minlength=sl.n_lesions + 1)[1:]
        lesions = tuple(replace(le, volume_mm3=float(per_lesion[le.lesion_id - 1] * unit))
                        for le in lesions)
        total_volume = float(per_lesion.sum() * unit)
    if sc.volume_threshold_hu is not None and sc.volume_threshold_hu != th.threshold_hu:
        # a preset that measures volume and mass at its own threshold (Philips: 112.5 HU)
        vsl = find_slice_lesions(
            volume.hu, pixel_area_mm2=drow * dcol, threshold_hu=sc.volume_threshold_hu,
            min_lesion_area_mm2=min_area, slice_connectivity=sc.slice_connectivity,
            lesion_connectivity=sc.lesion_connectivity)
        total_voxels = int(vsl.area_px[vsl.kept].sum())
        total_sum_hu = float(vsl.sum_hu[vsl.kept].sum())
        total_volume = float(volume_mm3(total_voxels, vv))
    total_mass = mass_mg(total_sum_hu, total_voxels, vv, c, water)
    whole = RegionScore(region="whole", agatston=ls.total_agatston,
                        volume_mm3=total_volume,
                        mass_mg=None if total_mass is None else float(total_mass),
                        n_lesions=sl.n_lesions, n_slice_lesions=ls.n_slice_lesions)
    bsa = resolve_bsa(volume, config, anthropometry)
    flags = list(volume.quality_flags)
    if c is None:
        flags.append("mass_uncalibrated")
    if contrast:
        flags.append("contrast_enhanced")
    kvp = volume.meta.kvp
    adapted = th.source.startswith(("kvp_table", "calibration"))
    if not adapted and kvp is not None and abs(kvp - 120.0) > 0.5:
        # 130 HU is defined at 120 kVp (Agatston 1990); calcium reads brighter at lower kVp
        flags.append("kvp_not_120")
    if bsa.source.startswith("implausible"):
        flags.append("bsa_implausible_dicom")
    density = density_score(ls.total_agatston, ls.total_voxels, drow * dcol,
                            sc.increment_scale(inc)) if sc.agatston else None
    whole = replace(whole, density_score=density)
    big = sum(le.volume_mm3 for le in lesions if le.volume_mm3 >= sc.bone_min_volume_cm3 * 1e3)
    region_scores: tuple[RegionScore, ...] = ()
    aggregates: dict[str, RegionScore] = {}
    region_map: tuple = (None, (), ())
    if reads is not None:
        region_scores, lesions, aggregates, region_map = _split(
            volume, config, label_regions(kept[1], reads), lesions, whole, kept, counts, unit,
            flags, reads=reads)
    elif regions:
        region_scores, lesions, aggregates, region_map = _split(
            volume, config, regions, lesions, whole, kept, counts, unit, flags)
    classes = {r.region: r.region_class for r in region_scores
               if r.region_class in ("coronary", "vascular", "bone", "other")}
    requested = "coronary" if reads is not None else (
        scope if sc.scope in ("whole_volume", "bone_excluded") else sc.scope)
    scope, scope_regions = resolve_scope(requested, classes, fov_is_coronary=sc.fov_is_coronary,
                                         has_regions=bool(regions) or reads is not None)
    headline = aggregates[scope] if scope_regions else replace(whole, region=scope)
    if scope == "bone_excluded":
        flags.append("bone_heuristic")  # README, 'Scopes': what the heuristic misses and takes
    if scope in ("whole_volume", "bone_excluded") and whole.volume_mm3 > 0:
        bone = sum(r.volume_mm3 for r in region_scores if r.region_class == "bone")
        if max(big, bone) > 0.5 * whole.volume_mm3:
            flags.append("bone_dominated")  # most of the headline is bone-like structure
    coronary_scope = scope == "coronary" and sc.agatston
    voxels = None
    if keep_voxels:
        voxels = ScoredVoxels(hu=volume.hu, bands=kept[0], lesion_labels=kept[1],
                              threshold_hu=th.threshold_hu, weight_hu=tuple(th.weight_hu),
                              region_labels=region_map[0], region_names=region_map[1],
                              region_classes=region_map[2])
    t2 = time.perf_counter()
    rk = config.risk
    return ScanResult(
        case_id=case_id, meta=volume.meta, whole=whole, lesions=lesions, bsa=bsa,
        volume_per_bsa_mm3_m2=None if bsa.bsa_m2 is None else headline.volume_mm3 / bsa.bsa_m2,
        risk_category=risk_category(headline.agatston, upper_bounds=rk.agatston_upper_bounds)
        if coronary_scope else "",
        cac_drs=cac_drs(headline.agatston, lower_bounds=rk.cac_drs_lower_bounds)
        if coronary_scope else "",
        settings={**config.provenance(), "scope": scope, "min_lesion_area_mm2": min_area,
                  "threshold_hu": th.threshold_hu, "threshold_source": th.source,
                  "agatston": sc.agatston},
        shape=volume.shape, spacing_mm=tuple(float(s) for s in volume.spacing_mm),  # type: ignore[arg-type]
        quality_flags=check_flags(tuple(flags)),
        timings_s={"segment": t1 - t0, "score": t2 - t1},
        regions=region_scores,
        density_score=headline.density_score,
        cac_drs_vessels=_cac_drs_vessels(
            region_scores, reads.coronary() if reads is not None
            else config.regions.coronary_vessels) if coronary_scope else "",
        scope=scope, headline=headline, scope_regions=scope_regions,
        region_source="reader" if reads is not None else region_source if regions else "",
        reader=reads.reader if reads is not None else "",
        risk_basis=risk_basis(scope, agatston=sc.agatston, regions=scope_regions),
        vascular=aggregates.get("vascular"), coronary=aggregates.get("coronary"),
        voxels=voxels,
    )


def _cac_drs_vessels(region_scores, vessel_names) -> str:
    """CAC-DRS vessel modifier N1-N4: the number of coronary vessels (LM, LAD, LCX, RCA by
    default) with calcium (Hecht HS et al., CAC-DRS, J Cardiovasc Comput Tomogr
    2018;12:185-191); empty without coronary regions or without calcium in them."""
    vessels = set(vessel_names)
    given = [r for r in region_scores if r.region in vessels]
    if not given:
        return ""
    n = sum(1 for r in given if r.agatston > 0)
    return f"N{n}" if n else ""


def _kept_voxels(volume: CTVolume, config: Config, th: Thresholds, lesions):
    """The kept voxels' density bands (uint8, 0 = not kept) and their 3-D lesion labels,
    checked voxel by voxel against the lesions the scoring found."""
    from scipy import ndimage  # lazy: about 0.1 s of start-up that a plain scoring run skips

    sc = config.scoring
    inc, drow, dcol = volume.spacing_mm
    bands = density_band_mask(volume.hu, pixel_area_mm2=drow * dcol,
                              threshold_hu=th.threshold_hu,
                              min_lesion_area_mm2=sc.min_area_mm2(drow * dcol),
                              weight_hu=th.weight_hu, slice_connectivity=sc.slice_connectivity)
    structure = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[sc.lesion_connectivity])
    lesion_labels, n = ndimage.label(bands > 0, structure)
    # scipy numbers 3-D components in raster order of their first voxel, as the kernel
    # numbers lesions; check it voxel by voxel before joining pieces to lesions by id
    sizes = np.bincount(lesion_labels.ravel(), minlength=n + 1)[1:]
    if n != len(lesions) or any(int(sizes[le.lesion_id - 1]) != le.n_voxels for le in lesions):
        raise AssertionError("the region pass and the scoring found different lesions")
    return bands, lesion_labels


def _split(volume: CTVolume, config: Config, regions, lesions, whole, kept, counts, unit,
           flags: list[str], *, reads: LesionLabels | None = None):
    """Per-region scores and lesion pieces (vascalc.core.regions), checked against the totals,
    and the coronary and vascular aggregates (vascalc.core.scopes). ``kept`` is (bands, lesion
    labels) from :func:`_kept_voxels`; ``counts`` the interpolated voxels of each kept voxel
    (None: each counts itself) and ``unit`` their volume; quality flags are appended to
    ``flags``: the aorta not split, contrast in a vascular region's lumen. With ``reads``
    the regions are the reader's labels (:func:`vascalc.core.regions.label_regions`): as given,
    classed by the reader's label set, with no lumen (they hold calcium only)."""

    sc, rc = config.scoring, config.regions
    inc, drow, dcol = volume.spacing_mm
    bands, lesion_labels = kept
    if reads is not None:
        rc = rc.model_copy(update={"split_aorta": "none", "territories": {}, "order": [],
                                   "margin_mm": {}, "default_margin_mm": 0.0, "exclude": []})
    if rc.split_aorta != "none" and "aorta" in dict(regions):
        z = voxel_z_mm(volume.shape, volume.origin_mm, volume.direction, volume.spacing_mm)
        regions, split = split_aorta(regions, z, mode=rc.split_aorta,
                                     plane_z_mm=rc.split_aorta_z_mm)
        if not split:
            flags.append("aorta_not_split")
    regions = merge_territories(regions, rc.territories)
    labels, names = combine(regions, spacing_mm=volume.spacing_mm, order=rc.order,
                            margins_mm=rc.margin_mm, default_margin_mm=rc.default_margin_mm,
                            exclude=rc.exclude)
    sp = split_by_region(volume.hu, bands, lesion_labels, labels, names,
                         pixel_area_mm2=drow * dcol, scale=sc.increment_scale(inc),
                         volume_counts=counts)
    if not np.isclose(sp.agatston.sum(), whole.agatston, rtol=1e-9, atol=1e-12 + 1e-9 * abs(
            whole.agatston)):
        raise AssertionError("per-region Agatston does not add up to the total")
    vv = volume.voxel_volume_mm3
    c, water = sc.mass_calibration_mg_per_cm3_per_hu, sc.calibration_water_hu
    all_names = [OUTSIDE, *names]
    given = dict(regions)
    cls = {OUTSIDE: OUTSIDE} | ({n: c for n, c in zip(reads.names, reads.classes)}
                                if reads is not None else
                                {n: region_class(n, coronary=rc.coronary, vascular=rc.vascular,
                                                 bone=rc.bone) for n in names})
    lumen = {} if reads is not None else {n: lumen_median_hu(volume, given[n]) for n in names
                                          if cls[n] in ("vascular", "coronary")}
    flags.extend(f"contrast_filled:{n}" for n, med in lumen.items()
                 if med is not None and med > AORTA_CONTRAST_MEDIAN_HU)
    scores = []
    for i, name in enumerate(all_names):
        m = mass_mg(float(sp.sum_hu[i]), int(sp.n_voxels[i]), vv, c, water)
        scores.append(RegionScore(region=name, agatston=float(sp.agatston[i]),
                                  region_class=cls[name], lumen_median_hu=lumen.get(name),
                                  volume_mm3=float(sp.volume_units[i] * unit),
                                  mass_mg=None if m is None else float(m),
                                  n_lesions=int(sp.n_lesions[i]), n_slice_lesions=None,
                                  density_score=density_score(
                                      float(sp.agatston[i]), int(sp.n_voxels[i]), drow * dcol,
                                      sc.increment_scale(inc)) if sc.agatston else None))
    cen = volume.index_to_patient(sp.piece_centroid_index) if sp.piece_lesion.size else []
    by_id = {le.lesion_id: le for le in lesions}
    pieces = []
    for j in range(sp.piece_lesion.size):
        le = by_id[int(sp.piece_lesion[j])]
        m = mass_mg(float(sp.piece_sum_hu[j]), int(sp.piece_voxels[j]), vv, c, water)
        pieces.append(Lesion(
            lesion_id=le.lesion_id, n_slices=int(sp.piece_slices[j]),
            n_voxels=int(sp.piece_voxels[j]),
            volume_mm3=float(sp.piece_volume_units[j] * unit),
            mass_mg=None if m is None else float(m),
            agatston=float(sp.piece_agatston[j]), peak_hu=float(sp.piece_peak[j]),
            mean_hu=float(sp.piece_sum_hu[j] / sp.piece_voxels[j]),
            centroid_x_mm=float(cen[j][0]), centroid_y_mm=float(cen[j][1]),
            centroid_z_mm=float(cen[j][2]), region=all_names[int(sp.piece_region[j])]))
    agg = partial(aggregate, sp, unit=unit, voxel_volume_mm3=vv, c=c, water_hu=water,
                  pixel_area_mm2=drow * dcol, scale=sc.increment_scale(inc), agatston=sc.agatston)
    aggregates = {}
    for scope, members in (("coronary", ("coronary",)), ("vascular", ("coronary", "vascular"))):
        idx = [i for i, n in enumerate(all_names) if cls[n] in members]
        if idx:
            aggregates[scope] = agg(scope, idx)
    return (tuple(scores), tuple(pieces), aggregates,
            (labels, tuple(names), tuple(cls[n] for n in names)))
