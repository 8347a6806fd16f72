"""Step 3: the calcium found and scored: slice lesions at the threshold, 3-D lesions, their
Agatston, volume (voxel count or interpolated) and mass, and the all-calcium total."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config.schema import Config
from ..core.lesions import density_band_mask, find_slice_lesions
from ..core.score import (
    density_score,
    interpolated_counts,
    interpolation_steps,
    mass_mg,
    score_lesions,
    volume_mm3,
)
from ..core.thresholds import Thresholds
from ..records import CTVolume, Lesion, RegionScore


@dataclass(frozen=True, eq=False)
class KeptVoxels:
    """The kept voxels as volumes: density band (uint8, 0 = not kept) and 3-D lesion label,
    and the interpolated voxels each kept voxel counts for (None: each counts itself), each of
    volume ``unit`` mm3."""

    bands: np.ndarray
    lesion_labels: np.ndarray
    counts: np.ndarray | None
    unit: float


@dataclass(frozen=True, eq=False)
class Calcium:
    """The scored calcium of a scan: its lesions, the all-calcium total (``whole``), the
    number of slice lesions, and the kept voxels when a later step needs them."""

    lesions: tuple[Lesion, ...]
    whole: RegionScore
    kept: KeptVoxels | None
    large_volume_mm3: float  # volume in lesions of at least scoring.bone_min_volume_cm3


def find_calcium(volume: CTVolume, config: Config, th: Thresholds, *,
                 need_voxels: bool) -> Calcium:
    """Find and score the calcium of ``volume`` (its HU as prepared) at ``th``."""
    sc = config.scoring
    inc, drow, dcol = volume.spacing_mm
    min_area = sc.min_area_mm2(drow * dcol)
    sl = find_slice_lesions(
        volume.hu, pixel_area_mm2=drow * dcol, threshold_hu=th.threshold_hu,
        min_lesion_area_mm2=min_area, slice_connectivity=sc.slice_connectivity,
        lesion_connectivity=sc.lesion_connectivity)
    ls = score_lesions(sl, spacing_mm=volume.spacing_mm, weight_hu=th.weight_hu,
                       reference_increment_mm=sc.reference_increment_mm,
                       scale_by_increment=sc.scale_by_increment)
    lesions = _lesions(volume, config, ls, sl.n_lesions)
    total_voxels, total_sum_hu = ls.total_voxels, ls.total_sum_hu
    total_volume = float(volume_mm3(total_voxels, volume.voxel_volume_mm3))
    interpolate = (sc.volume_method == "interpolated" and sl.n_lesions
                   and interpolation_steps(volume.spacing_mm) > 1)  # m = 1: the voxel count
    kept: KeptVoxels | None = None
    if need_voxels or interpolate:
        bands, labels = kept_voxels(volume, config, th, lesions)
        kept = KeptVoxels(bands, labels, None, volume.voxel_volume_mm3)
    if interpolate and kept is not None:
        counts, unit = interpolated_counts(volume.hu, kept.bands > 0, spacing_mm=volume.spacing_mm,
                                           threshold_hu=th.threshold_hu)
        at = np.flatnonzero(counts)  # kept voxels only: the bincount stays small
        per_lesion = np.bincount(kept.lesion_labels.ravel()[at], weights=counts.ravel()[at],
                                 minlength=sl.n_lesions + 1)[1:]
        lesions = tuple(replace(le, volume_mm3=float(per_lesion[le.lesion_id - 1] * unit))
                        for le in lesions)
        total_volume = float(per_lesion.sum() * unit)
        kept = replace(kept, counts=counts, unit=unit)
    if sc.volume_threshold_hu is not None and sc.volume_threshold_hu != th.threshold_hu:
        # a preset that measures volume and mass at its own threshold (Philips: 112.5 HU)
        vsl = find_slice_lesions(
            volume.hu, pixel_area_mm2=drow * dcol, threshold_hu=sc.volume_threshold_hu,
            min_lesion_area_mm2=min_area, slice_connectivity=sc.slice_connectivity,
            lesion_connectivity=sc.lesion_connectivity)
        total_voxels = int(vsl.area_px[vsl.kept].sum())
        total_sum_hu = float(vsl.sum_hu[vsl.kept].sum())
        total_volume = float(volume_mm3(total_voxels, volume.voxel_volume_mm3))
    mass = mass_mg(total_sum_hu, total_voxels, volume.voxel_volume_mm3,
                   sc.mass_calibration_mg_per_cm3_per_hu, sc.calibration_water_hu)
    whole = RegionScore(
        region="whole", agatston=ls.total_agatston, volume_mm3=total_volume,
        mass_mg=None if mass is None else float(mass), n_lesions=sl.n_lesions,
        n_slice_lesions=ls.n_slice_lesions, threshold_hu=th.threshold_hu,
        density_score=density_score(ls.total_agatston, ls.total_voxels, drow * dcol,
                                    sc.increment_scale(inc)) if sc.agatston else None)
    big = sum(le.volume_mm3 for le in lesions if le.volume_mm3 >= sc.bone_min_volume_cm3 * 1e3)
    return Calcium(lesions=lesions, whole=whole, kept=kept, large_volume_mm3=big)


def _lesions(volume: CTVolume, config: Config, ls, n: int) -> tuple[Lesion, ...]:
    sc = config.scoring
    vv = volume.voxel_volume_mm3
    centroids = volume.index_to_patient(ls.centroid_index) if n else np.zeros((0, 3))
    les_vol = volume_mm3(ls.n_voxels, vv)
    les_mass = mass_mg(ls.sum_hu, ls.n_voxels, vv, sc.mass_calibration_mg_per_cm3_per_hu,
                       sc.calibration_water_hu)
    return tuple(
        Lesion(lesion_id=i + 1, n_slices=int(ls.n_slices[i]), n_voxels=int(ls.n_voxels[i]),
               volume_mm3=float(les_vol[i]),
               mass_mg=None if les_mass is None else float(les_mass[i]),
               agatston=float(ls.agatston[i]), peak_hu=float(ls.peak_hu[i]),
               mean_hu=float(ls.sum_hu[i] / ls.n_voxels[i]),
               centroid_x_mm=float(centroids[i, 0]), centroid_y_mm=float(centroids[i, 1]),
               centroid_z_mm=float(centroids[i, 2]))
        for i in range(n))


def kept_voxels(volume: CTVolume, config: Config, th: Thresholds, lesions):
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
