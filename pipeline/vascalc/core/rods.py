"""Density calibration from hydroxyapatite rods scanned with the sample's settings.

Each rod of known density (mg HA/cm3) is measured as the mean stored value inside a sphere of
the given radius around its centre (mm from the stack's first voxel: index x voxel size, in
slice, row, col order given as x = col, y = row, z = slice). The calibration is the
least-squares line density = slope x value + intercept through the rods (two or more, at
distinct values), as Bruker's CTAn calibrates bone mineral density against two or more CaHA
phantoms (Bruker microCT method note 'Bone mineral density (BMD) and tissue mineral
density (TMD) calibration and measurement by micro-CT using Bruker-MicroCT CT-Analyser').
Its residuals are reported per rod, and its valid range is the rods' densities: attenuation is
not linear over 0-1,860 mg HA/cm3 (Deuerling JM et al., Improved accuracy of cortical bone
mineralization measured by polychromatic microcomputed tomography using a novel high mineral
density composite calibration phantom, Med Phys 2010;37:5138-5145), so a denser voxel is
flagged, never silently extrapolated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .calibrate import Insert
from .microct import DensityCalibration


@dataclass(frozen=True, kw_only=True)
class RodFit:
    """The fitted line, its rods and residuals.

    Attributes
    ----------
    calibration : DensityCalibration
        slope, intercept, source and valid range (the rods' densities).
    rods : tuple of dict
        Per rod: name, density_mg_ha_cm3, mean_value, voxels, fitted_mg_ha_cm3,
        residual_mg_ha_cm3 (fitted - known).
    """

    calibration: DensityCalibration
    rods: tuple[dict, ...]


def sphere_mean(read: Callable[[int, int], np.ndarray], shape: tuple[int, int, int],
                spacing_mm: tuple[float, float, float], center_xyz_mm, radius_mm: float,
                ) -> tuple[float, int]:
    """Mean stored value and voxel count of the voxel centres within ``radius_mm`` of
    ``center_xyz_mm`` (x = col, y = row, z = slice, mm from voxel 0), reading only the slices
    the sphere spans through ``read(first, stop)``."""
    x, y, z = (float(v) for v in center_xyz_mm)
    centre = np.array([z, y, x]) / np.asarray(spacing_mm, dtype=float)  # index (slice, row, col)
    reach = np.ceil(radius_mm / np.asarray(spacing_mm)).astype(int) + 1
    lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
    hi = np.minimum(np.ceil(centre).astype(int) + reach + 1, shape)
    if np.any(hi <= lo):
        raise ValueError(f"the rod at {tuple(center_xyz_mm)} mm lies outside the stack "
                         f"({shape[2]} x {shape[1]} x {shape[0]} voxels)")
    block = read(int(lo[0]), int(hi[0]))[:, lo[1]:hi[1], lo[2]:hi[2]]
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    dist = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_mm)))
    inside = dist <= radius_mm
    if not inside.any():
        raise ValueError(f"no voxel centre within {radius_mm} mm of {tuple(center_xyz_mm)} mm")
    vals = block[inside].astype(np.float64)
    return float(vals.mean()), int(vals.size)


def fit_rods(read: Callable[[int, int], np.ndarray], shape: tuple[int, int, int],
             spacing_mm: tuple[float, float, float], rods: list[Insert], *,
             source: str) -> RodFit:
    """The least-squares line through two or more rods (see the module's docstring).

    Examples
    --------
    >>> v = np.zeros((20, 20, 40), dtype=np.int16)
    >>> v[:, :, :20], v[:, :, 20:] = 1000, 3000          # two rods: 1000 and 3000 stored
    >>> rods = [Insert(name="low", density_mg_per_cm3=250.0, center_mm=(0.1, 0.1, 0.1),
    ...                radius_mm=0.05),
    ...         Insert(name="high", density_mg_per_cm3=750.0, center_mm=(0.3, 0.1, 0.1),
    ...                radius_mm=0.05)]
    >>> fit = fit_rods(lambda a, b: v[a:b], v.shape, (0.01, 0.01, 0.01), rods, source="rods")
    >>> fit.calibration.slope, fit.calibration.intercept
    (0.25, 0.0)
    """
    if len(rods) < 2:
        raise ValueError(f"a rod calibration needs two or more rods of known density, got "
                         f"{len(rods)}")
    means = []
    rows = []
    for rod in rods:
        m, n = sphere_mean(read, shape, spacing_mm, rod.center_mm, rod.radius_mm)
        means.append(m)
        rows.append({"name": rod.name, "density_mg_ha_cm3": rod.density_mg_per_cm3,
                     "mean_value": m, "voxels": n})
    x = np.asarray(means)
    d = np.asarray([r.density_mg_per_cm3 for r in rods], dtype=float)
    if np.ptp(x) <= 0 or np.ptp(d) <= 0:
        raise ValueError("the rods must differ in density and in mean value (all read "
                         f"{x.mean():.1f}): check their centres and densities")
    slope = float(((x - x.mean()) * (d - d.mean())).sum() / ((x - x.mean()) ** 2).sum())
    intercept = float(d.mean() - slope * x.mean())
    if slope <= 0:
        raise ValueError(f"denser rods read lower values (slope {slope:.4g}): check the "
                         "rods' centres and densities")
    cal = DensityCalibration(slope=slope, intercept=intercept, source=source,
                             valid_min_mg_ha_cm3=float(d.min()),
                             valid_max_mg_ha_cm3=float(d.max()))
    for r, m, known in zip(rows, means, d):
        fitted = slope * m + intercept
        r.update(fitted_mg_ha_cm3=fitted, residual_mg_ha_cm3=fitted - known)
    return RodFit(calibration=cal, rods=tuple(rows))
