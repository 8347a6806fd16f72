"""Masks as NIfTI: the calcium mask and lesion label map on the CT grid.

The affine is built from the volume's own geometry (LPS direction x spacing, origin) and
converted to NIfTI's RAS+ (diag(-1, -1, 1)), so the mask overlays the CT in any viewer.
"""

from __future__ import annotations

import numpy as np

from ..types import CTVolume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_ras(volume: CTVolume) -> np.ndarray:
    d = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    aff = np.eye(4)
    aff[:3, :3] = LPS_TO_RAS @ d
    aff[:3, 3] = LPS_TO_RAS @ np.asarray(volume.origin_mm, dtype=float)
    return aff


def nifti_bytes(array: np.ndarray, volume: CTVolume) -> bytes:
    """A gzipped NIfTI-1 of ``array`` (slice, row, col) on the grid of ``volume``."""
    import gzip

    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(array), affine_ras(volume))
    img.header.set_xyzt_units("mm")
    return gzip.compress(img.to_bytes(), mtime=0)
