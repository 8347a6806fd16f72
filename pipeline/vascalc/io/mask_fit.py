"""Whether region masks fit the CT they are applied to: extent and anatomy.

A label map of another crop of the scan (same affine, fewer slices), or one shifted by a few
centimetres, lands on the CT without an error: nearest-neighbour resampling puts 0 wherever
the map's grid does not reach, and calcium there silently becomes 'outside' every region.
Two checks, each a quality flag, never a changed number:

- **extent** (``regions_partial_coverage``): the share of the CT's voxel centres that fall
  inside the masks' own grid, from the affines and shapes alone (NIfTI headers; nothing is
  resampled). Under :data:`MIN_COVERAGE` the masks do not cover the CT.
- **anatomy** (``regions_misaligned``): bone regions (``regions.bone`` patterns) lie on bone.
  On TotalSegmentator's own output for the Siemens example CT 74 % of the bone classes' voxels
  are at 150 HU or more; the same map shifted by 10 mm gives 31 %, by 20 mm or more 17 % and
  less. A share under :data:`MIN_BONE_SHARE` (over at least :data:`MIN_BONE_VOXELS` voxels)
  says the masks are shifted or belong to another scan. Osteoporotic cancellous bone (about
  100 HU) lowers the share of an aligned map but keeps its cortex and ribs far above 20 %.

A DICOM SEG is placed by its referenced images, so only the anatomy check applies to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.regions import RegionMask, matches
from ..records import CTVolume
from .nifti import is_nifti

#: masks whose grid holds less than this share of the CT's voxel centres do not cover it
MIN_COVERAGE = 0.995
#: bone regions with less than this share of voxels at BONE_HU or more are not on bone
MIN_BONE_SHARE = 0.20
BONE_HU = 150.0
MIN_BONE_VOXELS = 1000
#: CT voxel centres sampled per axis for the extent (a 33 x 33 x 33 lattice at most)
_SAMPLES = 33


def grid_coverage(volume: CTVolume, affine_ras: np.ndarray, shape: tuple[int, ...]) -> float:
    """The share of ``volume``'s voxel centres (a regular lattice of them, corners included)
    that lie inside a grid of ``shape`` with the RAS ``affine_ras`` (nearest voxel, as the
    resampling takes it)."""
    axes = [np.unique(np.linspace(0, n - 1, min(n, _SAMPLES)).round()) for n in volume.shape]
    k, r, c = (a.ravel() for a in np.meshgrid(*axes, indexing="ij"))
    d = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    lps = np.asarray(volume.origin_mm, dtype=float) + np.outer(k, d[:, 0]) + \
        np.outer(r, d[:, 1]) + np.outer(c, d[:, 2])
    ras = lps * np.array([-1.0, -1.0, 1.0])
    inv = np.linalg.inv(np.asarray(affine_ras, dtype=float))
    ijk = np.rint(ras @ inv[:3, :3].T + inv[:3, 3])
    inside = np.all((ijk >= 0) & (ijk < np.asarray(shape[:3])), axis=1)
    return float(inside.mean())


def nifti_coverage(volume: CTVolume, path: str | Path) -> float | None:
    """The least coverage of the CT by the NIfTI grids at ``path`` (a label map, or a folder
    of masks: each distinct grid once); None for a DICOM SEG or nothing readable (the
    readers name those errors)."""
    import nibabel as nib  # lazy: nibabel, for NIfTI files only

    p = Path(path)
    files = sorted(f for f in p.iterdir() if is_nifti(f)) if p.is_dir() else [p]
    seen: dict[tuple, float] = {}
    for f in files:
        if not is_nifti(f):
            continue
        try:
            img: Any = nib.load(str(f))  # a Nifti1Image (nibabel types it as the base)
            key = (np.asarray(img.affine).round(4).tobytes(), tuple(img.shape[:3]))
        except Exception:  # noqa: BLE001 - the reader reports an unreadable mask by name
            continue
        if key not in seen:
            seen[key] = grid_coverage(volume, np.asarray(img.affine), tuple(img.shape[:3]))
    return min(seen.values()) if seen else None


def bone_share(hu: np.ndarray, masks: list[tuple[str, RegionMask]], bone_patterns,
               ) -> tuple[float, int] | None:
    """The share of the bone regions' voxels at :data:`BONE_HU` or more, and their count;
    None when no region is bone."""
    dense = total = 0
    for name, m in masks:
        if m.crop.size and matches(name, bone_patterns):
            values = hu[m.box][m.crop]
            dense += int(np.count_nonzero(values >= BONE_HU))
            total += values.size
    return (dense / total, total) if total else None


def fit_flags(volume: CTVolume, masks: list[tuple[str, RegionMask]], path: str | Path,
              bone_patterns) -> tuple[str, ...]:
    """The quality flags of masks that do not fit ``volume`` (see the module docstring)."""
    flags = []
    coverage = nifti_coverage(volume, path)
    if coverage is not None and coverage < MIN_COVERAGE:
        flags.append("regions_partial_coverage")
    share = bone_share(volume.hu, masks, bone_patterns)
    if share is not None and share[1] >= MIN_BONE_VOXELS and share[0] < MIN_BONE_SHARE:
        flags.append("regions_misaligned")
    return tuple(flags)
