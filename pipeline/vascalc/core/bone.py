"""Bone-exclusion heuristic for chest and abdominal CT without region masks (pure).

Bone (spine, ribs, sternum, pelvis) forms large connected structures of dense voxels, while
vascular calcifications are small: voxels >= ``bone_threshold_hu`` (200 HU) are grouped into
3-D 26-connected components, and every component of at least ``bone_min_volume_cm3`` (5 cm3)
is bone; the bone mask is grown by ``bone_margin_mm`` (1 mm) to take its partial-volume rim.
This is a heuristic of this project, not a published method: a heavily calcified aorta that
touches a vertebra would be removed with it, and a small isolated bone fragment would stay;
use region masks where that matters. Rows scored this way say scope=bone_excluded.
"""

from __future__ import annotations

import numpy as np

from .regions import grow


def bone_mask(hu: np.ndarray, spacing_mm, *, threshold_hu: float = 200.0,
              min_volume_cm3: float = 5.0, margin_mm: float = 1.0) -> np.ndarray:
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    dense = hu >= threshold_hu
    labels, n = ndimage.label(dense, np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return np.zeros(hu.shape, dtype=bool)
    voxel_cm3 = float(np.prod(spacing_mm)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_cm3
    big = sizes >= min_volume_cm3
    big[0] = False
    mask = big[labels]
    return grow(mask, spacing_mm, margin_mm) if margin_mm > 0 else mask
