"""Mass calibration from a scan of a calibration phantom.

Each insert of known hydroxyapatite density (mg HA/cm^3) is measured as the mean HU inside a
sphere of the given radius around its centre; water (density 0) is the reference. The mass
calibration factor is the slope of density against HU above water through the origin,
c = sum(d_i * dHU_i) / sum(dHU_i^2), dHU_i = HU_i - HU_water, which for one insert is
c = density / (HU_insert - HU_water) (Hong C et al., Coronary artery calcium: absolute
quantification in nonenhanced and contrast-enhanced multi-detector row CT studies,
Radiology 2002;223:474-480; McCollough CH et al., Radiology 2007;243:527-538).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import CTVolume


@dataclass(frozen=True, kw_only=True)
class Insert:
    name: str
    density_mg_per_cm3: float
    center_mm: tuple[float, float, float]  # patient LPS
    radius_mm: float


@dataclass(frozen=True, kw_only=True)
class Calibration:
    c_mg_per_cm3_per_hu: float
    water_hu: float
    inserts: list[dict]


def roi_mean(volume: CTVolume, center_mm, radius_mm: float) -> tuple[float, int]:
    """Mean HU and voxel count inside a sphere (voxel centres within the radius)."""
    d = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    centre_idx = np.linalg.solve(d, np.asarray(center_mm, float) - np.asarray(volume.origin_mm))
    reach = np.ceil(radius_mm / np.asarray(volume.spacing_mm)).astype(int) + 1
    lo = np.maximum(np.floor(centre_idx).astype(int) - reach, 0)
    hi = np.minimum(np.ceil(centre_idx).astype(int) + reach + 1, volume.shape)
    if np.any(hi <= lo):
        raise ValueError(f"the ROI at {tuple(center_mm)} mm lies outside the volume")
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    idx = np.stack([g.ravel() for g in grids], axis=1)
    pos = (idx - centre_idx) @ d.T
    inside = np.linalg.norm(pos, axis=1) <= radius_mm
    if not inside.any():
        raise ValueError(f"no voxel centre within {radius_mm} mm of {tuple(center_mm)}")
    sel = idx[inside]
    vals = volume.hu[sel[:, 0], sel[:, 1], sel[:, 2]].astype(float)
    return float(vals.mean()), int(vals.size)


def calibrate(volume: CTVolume, inserts: list[Insert]) -> Calibration:
    water = [i for i in inserts if i.density_mg_per_cm3 == 0]
    dense = [i for i in inserts if i.density_mg_per_cm3 > 0]
    if len(water) != 1 or not dense:
        raise ValueError("give one water insert (density 0) and at least one HA insert")
    w_hu, w_n = roi_mean(volume, water[0].center_mm, water[0].radius_mm)
    rows = [{"name": water[0].name, "density_mg_per_cm3": 0.0, "mean_hu": w_hu, "voxels": w_n}]
    num = den = 0.0
    for ins in dense:
        hu, n = roi_mean(volume, ins.center_mm, ins.radius_mm)
        dhu = hu - w_hu
        if dhu <= 0:
            raise ValueError(f"insert {ins.name!r} reads {hu:.1f} HU, not above water "
                             f"({w_hu:.1f} HU): check its position")
        num += ins.density_mg_per_cm3 * dhu
        den += dhu * dhu
        rows.append({"name": ins.name, "density_mg_per_cm3": ins.density_mg_per_cm3,
                     "mean_hu": hu, "voxels": n,
                     "c_from_this_insert": ins.density_mg_per_cm3 / dhu})
    return Calibration(c_mg_per_cm3_per_hu=num / den, water_hu=w_hu, inserts=rows)
