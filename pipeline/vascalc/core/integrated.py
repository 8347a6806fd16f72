"""Integrated calcium mass: a threshold-free measure beside Agatston.

Definition (the integrated-intensity method of Black D, Molloi S et al., Integrated
intensity-based technique for coronary artery calcium mass measurement: a phantom study,
Med Phys 2023;50:7418, implemented as ``score(..., Integrated())`` in the Julia package
CalciumScoring.jl, github.com/MolloiLab/CalciumScoring.jl): the calcium of a region is the sum
over the region of the attenuation above the background, so partial-volume voxels below the
threshold still count their share and no voxel is in or out:

    integrated mass (mg) = c x sum over the neighbourhood of (HU - background HU) x voxel volume (cm3)

with c the scan's mass calibration in mg/(cm3 HU) (as mass is, :func:`vascalc.core.score.mass_mg`).
vascalc's choices, stated so they can be checked:

- neighbourhood: the calcium voxels (HU >= the threshold, no area limit) grown by
  ``margin_mm`` in plane and by one slice increment along z (a box), so the partial volume of
  the slice profile and the in-plane blur lies inside it;
- background: the median HU of the shell of ``shell_mm`` around each connected neighbourhood
  (voxels below the threshold only), per neighbourhood: the local surrounding tissue, as the
  background ring of Black et al.;
- nothing is reported where there is no calcium voxel (0 mg).
"""

from __future__ import annotations

import numpy as np

#: in-plane margin of the neighbourhood around the calcium voxels
MARGIN_MM = 1.5
#: width of the background shell around each neighbourhood
SHELL_MM = 2.0


def _size(radius_vox: tuple[int, int, int]) -> tuple[int, int, int]:
    return (2 * radius_vox[0] + 1, 2 * radius_vox[1] + 1, 2 * radius_vox[2] + 1)


def _medians(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The median of ``values`` per label 1..n (NaN for a label without values)."""
    order = np.lexsort((values, labels))
    v, lab = values[order], labels[order]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    starts = np.searchsorted(lab, np.arange(1, n + 1))
    out = np.full(n, np.nan)
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    out[has] = (v[lo] + v[hi]) / 2.0
    return out


def _radius(spacing_mm: tuple[float, float, float], in_plane_mm: float,
            slices: int) -> tuple[int, int, int]:
    _, drow, dcol = spacing_mm
    return (slices, max(1, int(np.ceil(in_plane_mm / drow - 1e-9))),
            max(1, int(np.ceil(in_plane_mm / dcol - 1e-9))))


def integrated_sum_hu(hu: np.ndarray, *, spacing_mm: tuple[float, float, float],
                      threshold_hu: float, within: np.ndarray | None = None,
                      margin_mm: float = MARGIN_MM, shell_mm: float = SHELL_MM) -> float:
    """Sum of (HU - local background) over the neighbourhoods of the calcium voxels (module
    docstring), in HU x voxels; ``within`` (bool, same shape) limits the calcium voxels that
    seed the neighbourhoods (a scope's regions). ``hu`` is not modified.

    >>> hu = np.full((5, 20, 20), 40.0); hu[2, 8:12, 8:12] = 440.0
    >>> integrated_sum_hu(hu, spacing_mm=(3.0, 0.5, 0.5), threshold_hu=130.0)
    6400.0
    """
    from scipy import ndimage  # lazy: only an uncertainty run needs it

    if hu.ndim != 3:
        raise ValueError(f"hu must be 3-D (slice, row, col), got shape {hu.shape}")
    if margin_mm <= 0 or shell_mm <= 0:
        raise ValueError(f"margin_mm and shell_mm must be > 0, got {margin_mm!r}, {shell_mm!r}")
    calcium = hu >= threshold_hu
    if within is not None:
        calcium &= within
    if not calcium.any():
        return 0.0
    # box dilations as separable maximum filters (a box footprint is separable)
    near = ndimage.maximum_filter(calcium.view(np.uint8),
                                  size=_size(_radius(spacing_mm, margin_mm, 1))) > 0
    labels, n = ndimage.label(near)
    grown = ndimage.maximum_filter(labels, size=_size(_radius(spacing_mm, shell_mm, 1)))
    shell = (labels == 0) & (grown > 0) & (hu < threshold_hu)
    values = np.asarray(hu, dtype=np.float64)
    # a neighbourhood filling the field of view has no shell: its voxels below the threshold serve
    below = (labels > 0) & (hu < threshold_hu)
    bg = _medians(values[shell], grown[shell], n)
    fallback = _medians(values[below], labels[below], n)
    bg = np.where(np.isnan(bg), np.nan_to_num(fallback, nan=0.0), bg)
    sums = np.bincount(labels.ravel(), weights=values.ravel(), minlength=n + 1)[1:]
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return float((sums - bg * counts).sum())


def integrated_mass_mg(sum_hu: float, voxel_volume_mm3: float,
                       calibration_mg_per_cm3_per_hu: float | None) -> float | None:
    """Integrated mass (mg) = c x integrated HU sum x voxel volume (cm3); None when the scan
    has no mass calibration (never a guessed number).

    >>> integrated_mass_mg(6400.0, 0.75, 0.8)
    3.84
    """
    if calibration_mg_per_cm3_per_hu is None:
        return None
    return calibration_mg_per_cm3_per_hu * sum_hu * voxel_volume_mm3 / 1000.0
