"""Read a CT volume from NIfTI (.nii, .nii.gz) with nibabel.

Orientation is reconciled with DICOM through the affine, never by flipping arrays by habit:
NIfTI's affine maps voxel indices to RAS+ millimetres; LPS = diag(-1, -1, 1) x RAS. The array
axis whose direction is closest to the patient's head-foot axis becomes the slice axis; the
other two keep their order as (row, col). Axes are only transposed (a view), and the direction
matrix of the CTVolume carries their true directions, so positions and scores are those of
the same volume read from DICOM (NIfTI-1 standard, qform/sform; DICOM PS3.3 C.7.6.2).

Values are taken as HU (nibabel applies scl_slope/scl_inter when set); a volume with no value
below -100 HU has no air or fat in it and is refused as 'not a CT' (a mask or a label map).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import DecodeError, GeometryError, NotCTError
from ..records import CTVolume, ScanMeta
from .geometry import SPACING_RANGE_MM

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | os.PathLike) -> str:
    """A NIfTI file's name without .nii or .nii.gz (the structure's name in a mask folder)."""
    name = os.path.basename(str(path))
    return name[:-7] if name.lower().endswith(".nii.gz") else os.path.splitext(name)[0]


def mask_like(path: str | os.PathLike) -> bool:
    """Header-only guess that a NIfTI is a mask or label map (unsigned 8-bit or boolean)."""
    import nibabel as nib  # lazy: nibabel, for NIfTI files only

    img: Any = nib.load(str(path))  # a Nifti1Image (nibabel types its loader as the base)
    dtype = img.get_data_dtype()
    return dtype.kind == "b" or (dtype.kind == "u" and dtype.itemsize == 1)


def load_nifti(path: str | os.PathLike, *, max_shear_deg: float = 0.5,
               require_hu: bool = True) -> CTVolume:
    import nibabel as nib  # lazy: nibabel, for NIfTI files only

    path = str(path)
    try:
        img: Any = nib.load(path)  # a Nifti1Image (nibabel types its loader as the base)
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds for bad files

        raise DecodeError(f"not a readable NIfTI file ({err})", path=path) from None
    if len(img.shape) != 3 and not (len(img.shape) == 4 and img.shape[3] == 1):
        raise GeometryError(f"NIfTI shape {img.shape} is not one 3-D volume", path=path)
    affine = np.asarray(img.affine, dtype=np.float64)
    lps = RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if not np.all(np.isfinite(lps)) or np.any(spacing < SPACING_RANGE_MM[0]) or np.any(
            spacing > SPACING_RANGE_MM[1]):
        raise GeometryError(f"the affine's voxel spacing {np.round(spacing, 6).tolist()} mm is "
                            f"zero, non-finite or outside {SPACING_RANGE_MM[0]:g}-"
                            f"{SPACING_RANGE_MM[1]:g} mm", path=path)
    dirs = lps / spacing
    # orthogonality: a sheared grid is not a CT acquisition grid
    for a, b in ((0, 1), (0, 2), (1, 2)):
        angle = np.degrees(np.arcsin(min(1.0, abs(float(dirs[:, a] @ dirs[:, b])))))
        if angle > max_shear_deg:
            raise GeometryError(f"the affine's axes {a} and {b} are {angle:.1f} degrees from "
                                "orthogonal (sheared grid)", path=path,
                                hint="resample the volume onto an orthogonal grid")
    slice_axis = int(np.argmax(np.abs(dirs[2, :])))
    others = [a for a in range(3) if a != slice_axis]
    order = [slice_axis, *others]
    try:
        data = np.asanyarray(img.dataobj)  # a truncated file fails here, not at nib.load
    except Exception as err:  # noqa: BLE001 - nibabel and gzip raise many kinds
        raise DecodeError(f"cannot read the NIfTI voxel data ({type(err).__name__}: {err})",
                          path=path, hint="the file is incomplete or corrupt; copy it again"
                          ) from None
    if data.ndim == 4:
        data = data[..., 0]
    if data.dtype.kind not in "iuf":
        raise NotCTError(f"NIfTI data type {data.dtype} is not numeric", path=path)
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise DecodeError(f"{int(np.size(data) - np.isfinite(data).sum())} voxel(s) are NaN or "
                          "infinite: not a CT in HU", path=path,
                          hint="fix or re-export the volume (a voxel must hold a number)")
    if data.dtype.kind in "iu" and data.size and data.min() >= -32768 and data.max() <= 32767:
        hu = data.astype(np.int16, copy=False)
    else:
        hu = data.astype(np.float32, copy=False)
    hu = np.ascontiguousarray(hu.transpose(order))
    if require_hu and hu.size and float(hu.min()) > -100:
        raise NotCTError(f"no value below -100 HU (range {hu.min()}..{hu.max()}): no air or fat, "
                         "so this is not a CT in HU (a mask or a label map?)", path=path,
                         hint="give the CT itself; for a volume in other units (micro-CT) set "
                         "input.require_hu: false and calibrate it")
    hu.flags.writeable = False
    origin = RAS_TO_LPS @ affine[:3, 3]
    direction = tuple(tuple(float(x) for x in row) for row in dirs[:, order])
    meta = ScanMeta(series_description=os.path.basename(path), n_files=1,
                    transfer_syntax="NIfTI")
    return CTVolume(hu=hu, spacing_mm=tuple(float(spacing[a]) for a in order),  # type: ignore[arg-type]
                    origin_mm=tuple(float(x) for x in origin),  # type: ignore[arg-type]
                    direction=direction, meta=meta, quality_flags=("nifti_input",))
