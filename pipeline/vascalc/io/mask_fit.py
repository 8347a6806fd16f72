"""Whether region masks fit the CT they are applied to: extent and anatomy.

A label map of another crop of the scan (same affine, fewer slices), or one shifted by a few
centimetres, lands on the CT without an error: nearest-neighbour resampling puts 0 wherever
the map's grid does not reach, and calcium there silently becomes 'outside' every region.
Two checks, each a quality flag, never a changed number:

- **extent** (``regions_partial_coverage``): the share of the CT's voxel centres that fall
  inside the masks' own grid, counted by the resampling that puts a mask of another grid on
  the CT (:func:`vascalc.io.masks.mask_on_ct_grid`; a mask on the CT's own grid covers it
  whole). Under :data:`MIN_COVERAGE` the masks do not cover the CT.
- **anatomy** (``regions_misaligned``): bone regions (``regions.bone`` patterns) lie on bone.
  On TotalSegmentator's own output for the Siemens example CT 74 % of the bone classes' voxels
  are at 150 HU or more; the same map shifted by 10 mm gives 31 %, by 20 mm or more 17 % and
  less. A share under :data:`MIN_BONE_SHARE` (over at least :data:`MIN_BONE_VOXELS` voxels)
  says the masks are shifted or belong to another scan. Osteoporotic cancellous bone (about
  100 HU) lowers the share of an aligned map but keeps its cortex and ribs far above 20 %.

A DICOM SEG is placed by its referenced images, so only the anatomy check applies to it.
"""

from __future__ import annotations

import numpy as np

from ..core.regions import RegionMask, matches
from ..records import CTVolume

#: masks whose grid holds less than this share of the CT's voxel centres do not cover it
MIN_COVERAGE = 0.995
#: bone regions with less than this share of voxels at BONE_HU or more are not on bone
MIN_BONE_SHARE = 0.20
BONE_HU = 150.0
MIN_BONE_VOXELS = 1000


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


def fit_flags(volume: CTVolume, masks: list[tuple[str, RegionMask]], coverage: list[float],
              bone_patterns) -> tuple[str, ...]:
    """The quality flags of masks that do not fit ``volume`` (see the module docstring);
    ``coverage``: what the loader measured of each resampled mask."""
    flags = []
    if coverage and min(coverage) < MIN_COVERAGE:
        flags.append("regions_partial_coverage")
    share = bone_share(volume.hu, masks, bone_patterns)
    if share is not None and share[1] >= MIN_BONE_VOXELS and share[0] < MIN_BONE_SHARE:
        flags.append("regions_misaligned")
    return tuple(flags)
