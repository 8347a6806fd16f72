"""Scores from slice lesions: Agatston, volume, mass, lesion count, risk categories.

Pure functions over the arrays of :class:`vascalc.core.lesions.SliceLesions`.

- Density weight of a slice lesion from its own peak HU on that slice: 1 for 130-199,
  2 for 200-299, 3 for 300-399, 4 for >= 400 (Agatston et al., J Am Coll Cardiol 1990;15:827).
  With non-integer HU the bands are half-open: [130, 200) -> 1, [200, 300) -> 2, ...
- Agatston = sum over kept slice lesions of area_mm2 x weight, times increment / 3 mm, so that
  thin or overlapping reconstructions stay comparable with the 3 mm standard (the increment
  scaling used by the vendors compared in van Praagh et al., Med Phys 2021, and
  Ohnesorge et al., Eur Radiol 2002;12:1532 for overlapping reconstructions).
- Volume = number of kept voxels x voxel volume (row x column spacing x slice increment),
  the plain voxel count of DESIGN.md; or, with ``volume_method: interpolated``, from the HU
  interpolated linearly along z to isotropic voxels, after the volumetric score of Callister
  TQ et al., Radiology 1998;208:807-814 (see :func:`interpolated_counts` for the exact rule).
- Mass = c x sum(HU - water HU) x voxel volume over the same voxels (water HU 0 unless the
  calibration says otherwise), c in mg/(cm^3 HU) from a phantom
  calibration (Hong et al., Radiology 2002;223:474; McCollough et al., Radiology
  2007;243:527). Without c, mass is None: never a guessed number.
- Risk category on Agatston: 0, 1-10, 11-100, 101-400, > 400 (Rumberger et al., Mayo Clin
  Proc 1999;74:243); CAC-DRS A0-A3: 0, 1-99, 100-299, >= 300 (Hecht et al., J Cardiovasc
  Comput Tomogr 2018;12:185).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lesions import SliceLesions

#: spelled so that spreadsheets keep them as text ('1-10' becomes a date in Excel); the
#: categories' order is the column risk_category_order (0-4)
RISK_LABELS = ("0", "1 to 10", "11 to 100", "101 to 400", ">400")
CAC_DRS_LABELS = ("A0", "A1", "A2", "A3")


def density_weight(peak_hu: np.ndarray, *, weight_hu=(130.0, 200.0, 300.0, 400.0)) -> np.ndarray:
    """Agatston density weight 1-4 from the peak HU of each slice lesion (0 below band 1)."""
    return np.searchsorted(np.asarray(weight_hu, dtype=float), np.asarray(peak_hu, dtype=float),
                           side="right").astype(np.int64)


@dataclass(frozen=True, eq=False)
class LesionScores:
    """Per 3-D lesion arrays (index = lesion id - 1) and the scan totals."""

    agatston: np.ndarray
    n_voxels: np.ndarray
    sum_hu: np.ndarray
    peak_hu: np.ndarray
    n_slices: np.ndarray
    centroid_index: np.ndarray  # (n, 3) fractional (slice, row, col)
    total_agatston: float
    total_voxels: int
    total_sum_hu: float
    n_slice_lesions: int


def score_lesions(
    sl: SliceLesions,
    *,
    spacing_mm: tuple[float, float, float],
    weight_hu=(130.0, 200.0, 300.0, 400.0),
    reference_increment_mm: float = 3.0,
    scale_by_increment: bool = True,
) -> LesionScores:
    """Agatston per slice lesion, summed per 3-D lesion and over the scan (a slice lesion cut
    into pieces, see :class:`SliceLesions`, weighs each piece by the slice lesion's peak, so
    its Agatston is its area x its weight as if whole)."""
    increment, drow, dcol = (float(s) for s in spacing_mm)
    pixel_area = drow * dcol
    scale = increment / reference_increment_mm if scale_by_increment else 1.0
    k = sl.kept
    les = sl.lesion[k]
    m = sl.n_lesions
    area_mm2 = sl.area_px[k] * pixel_area
    weight = density_weight(sl.weight_peak[k], weight_hu=weight_hu)
    ag_slice = area_mm2 * weight * scale
    ag = np.bincount(les, weights=ag_slice, minlength=m)
    nvox = np.bincount(les, weights=sl.area_px[k], minlength=m).astype(np.int64)
    shu = np.bincount(les, weights=sl.sum_hu[k], minlength=m)
    peak = np.full(m, -np.inf)
    np.maximum.at(peak, les, sl.peak_hu[k])
    # slices per lesion: distinct (lesion, slice) pairs
    pairs = np.unique(les * (int(sl.slice_index.max(initial=0)) + 1) + sl.slice_index[k])
    nsl = np.bincount(pairs // (int(sl.slice_index.max(initial=0)) + 1), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        cen = np.stack([
            np.bincount(les, weights=sl.slice_index[k] * sl.area_px[k], minlength=m),
            np.bincount(les, weights=sl.sum_row[k], minlength=m),
            np.bincount(les, weights=sl.sum_col[k], minlength=m),
        ], axis=1) / np.maximum(nvox, 1)[:, None]
    return LesionScores(
        agatston=ag, n_voxels=nvox, sum_hu=shu, peak_hu=peak, n_slices=nsl.astype(np.int64),
        centroid_index=cen, total_agatston=float(ag_slice.sum()), total_voxels=int(nvox.sum()),
        total_sum_hu=float(sl.sum_hu[k].sum()), n_slice_lesions=sl.n_kept_slice_lesions,
    )


def volume_mm3(n_voxels, voxel_volume_mm3: float):
    """Calcium volume: voxel count x voxel volume (mm^3)."""
    return n_voxels * voxel_volume_mm3


def mass_mg(sum_hu, n_voxels, voxel_volume_mm3: float,
            calibration_mg_per_cm3_per_hu: float | None, water_hu: float = 0.0):
    """Calcium mass (mg) = c x sum(HU - water HU) x voxel volume (cm^3) over ``n_voxels``
    voxels whose HU sum to ``sum_hu``; None when uncalibrated."""
    if calibration_mg_per_cm3_per_hu is None:
        return None
    return (calibration_mg_per_cm3_per_hu * (sum_hu - water_hu * n_voxels)
            * (voxel_volume_mm3 / 1000.0))


def density_score(agatston: float, n_voxels: int, pixel_area_mm2: float,
                  increment_scale: float) -> float | None:
    """Agatston / (kept area x increment scaling): the area-weighted mean density weight, 1-4
    (Criqui MH et al., Calcium density of coronary artery plaque and risk of incident
    cardiovascular events, JAMA 2014;311:271-278); None without calcium. Each kept voxel is
    one pixel of area on its slice."""
    area = n_voxels * pixel_area_mm2 * increment_scale
    return None if area <= 0 else agatston / area


def risk_category(agatston: float, *, upper_bounds=(10.0, 100.0, 400.0)) -> str:
    """'0', '1 to 10', '11 to 100', '101 to 400' or '>400' (bounds inclusive above; any score > 0 and
    <= 10 is '1-10')."""
    if not np.isfinite(agatston) or agatston < 0:
        raise ValueError(f"Agatston score must be finite and >= 0, got {agatston!r}")
    if agatston == 0:
        return RISK_LABELS[0]
    return RISK_LABELS[1 + int(np.searchsorted(np.asarray(upper_bounds), agatston, side="left"))]


def cac_drs(agatston: float, *, lower_bounds=(100.0, 300.0)) -> str:
    """CAC-DRS Agatston category: A0 (0), A1 (1-99), A2 (100-299), A3 (>= 300)."""
    if not np.isfinite(agatston) or agatston < 0:
        raise ValueError(f"Agatston score must be finite and >= 0, got {agatston!r}")
    if agatston == 0:
        return CAC_DRS_LABELS[0]
    return CAC_DRS_LABELS[1 + int(np.searchsorted(np.asarray(lower_bounds), agatston, side="right"))]


def interpolation_steps(spacing_mm) -> int:
    """m of :func:`interpolated_counts`: round(increment / smaller pixel spacing), at least 1."""
    inc, drow, dcol = (float(s) for s in spacing_mm)
    return max(1, int(round(inc / min(drow, dcol))))


def interpolated_counts(hu: np.ndarray, kept: np.ndarray, *, spacing_mm,
                        threshold_hu: float) -> tuple[np.ndarray, float]:
    """Interpolated voxels attributed to each kept voxel, and the volume of one (mm^3).

    Between two adjacent slices the HU of every pixel is interpolated linearly at m - 1
    evenly spaced planes, m = round(increment / smaller pixel spacing) (so the voxels are
    about isotropic; m = 1 leaves the plain count). An interpolated voxel is calcium when its
    HU >= ``threshold_hu`` and one of the two voxels it lies between is kept calcium; it is
    attributed to the nearer of them (the lower slice at the midpoint) if that one is kept,
    else to the other. Each kept voxel also counts itself once. Volume of a set of kept
    voxels = sum of their counts x increment / m x pixel area. No planes are added beyond
    the first and the last slice. This follows the isotropic interpolation of Callister TQ
    et al., Radiology 1998;208:807-814; the attribution rule is vascalc's, so that volumes
    split over lesions and regions add up to the scan's.
    """
    inc, drow, dcol = (float(s) for s in spacing_mm)
    m = interpolation_steps(spacing_mm)
    nz = hu.shape[0]
    counts = kept.astype(np.uint16).reshape(nz, -1)
    flat_hu = hu.reshape(nz, -1)
    flat_kept = kept.reshape(nz, -1)
    for k in range(nz - 1):
        ka_all, kb_all = flat_kept[k], flat_kept[k + 1]
        idx = np.flatnonzero(ka_all | kb_all)
        if idx.size == 0 or m == 1:
            continue
        a = flat_hu[k, idx].astype(np.float64)
        b = flat_hu[k + 1, idx].astype(np.float64)
        ka, kb = ka_all[idx], kb_all[idx]
        to_lower = np.zeros(idx.size, dtype=np.uint16)
        to_upper = np.zeros(idx.size, dtype=np.uint16)
        for j in range(1, m):
            t = j / m
            above = a + t * (b - a) >= threshold_hu
            lower = above & (ka if 2 * j <= m else ~kb)
            to_lower += lower
            to_upper += above & ~lower
        counts[k, idx] += to_lower
        counts[k + 1, idx] += to_upper
    return counts.reshape(hu.shape), drow * dcol * inc / m
