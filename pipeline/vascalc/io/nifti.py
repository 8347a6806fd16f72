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

from ..errors import DecodeError, GeometryError, ImplausibleHUError, NotCTError
from ..records import CTVolume, ScanMeta
from .geometry import SPACING_RANGE_MM
from .plausibility import HU_DECIMALS, SLOPE_RANGE, check_hu

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


def nifti_rescale(proxy: Any, path: str) -> tuple[float, float]:
    """The header's scl_slope and scl_inter as the decimals they were written from (float32
    in the header: 0.7 is stored as 0.699999988; its shortest decimal is taken, as dcm2niix
    wrote it from DICOM's decimal strings), checked as a DICOM rescale is; (1, 0) when the
    header says no scaling (scl_slope 0 or NaN, NIfTI-1 3.3). ``proxy`` is the image's
    array proxy (nibabel moves the header's scaling onto it when it loads the file)."""
    slope, inter = getattr(proxy, "slope", None), getattr(proxy, "inter", None)
    if slope is None or not np.isfinite(slope) or slope == 0:
        return 1.0, 0.0 if inter is None or not np.isfinite(inter) else _decimal(inter)
    slope = _decimal(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else _decimal(inter)
    if not SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]:
        raise ImplausibleHUError(f"scl_slope {slope:g} is outside {SLOPE_RANGE[0]:g} to "
                                 f"{SLOPE_RANGE[1]:g} (a CT rescale is positive)", path=path)
    return slope, inter


def _decimal(v: float) -> float:
    """The shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def rescaled(data: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """HU from stored values: int16 when exact and in range, else float64 rounded to
    HU_DECIMALS decimals (decimal rescales give the exact decimal HU of the definition, as
    for DICOM)."""
    if (data.dtype.kind in "iu" and slope == 1.0 and float(inter).is_integer() and data.size
            and data.min() + inter >= -32768 and data.max() + inter <= 32767):
        return (data.astype(np.int32) + int(inter)).astype(np.int16)
    if data.dtype.kind == "f" and slope == 1.0 and inter == 0.0:
        # values stored as HU: taken as they are (a float32 volume stays float32, exactly)
        return data if data.dtype in (np.float32, np.float64) else data.astype(np.float64)
    hu = np.round(data.astype(np.float64) * slope + inter, HU_DECIMALS)
    if np.all(hu == np.round(hu)) and hu.size and hu.min() >= -32768 and hu.max() <= 32767:
        return hu.astype(np.int16)
    return hu


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
        # the stored values, unscaled: the rescale is applied below as DICOM's is
        data = np.asanyarray(img.dataobj.get_unscaled())  # a truncated file fails here
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
    slope, inter = nifti_rescale(img.dataobj, path)
    hu = rescaled(data, slope, inter)
    hu = np.ascontiguousarray(hu.transpose(order))
    if hu.shape[0] < 2:
        # as for DICOM: one slice has no increment (pixdim's default 1 mm would scale Agatston)
        raise GeometryError("the volume has a single slice; the slice increment needs at "
                            "least two", path=path, hint="give the complete volume")
    if hu.size:
        check_hu(hu, path, require_hu=require_hu)
    hu.flags.writeable = False
    origin = RAS_TO_LPS @ affine[:3, 3]
    direction = tuple(tuple(float(x) for x in row) for row in dirs[:, order])
    meta = ScanMeta(series_description=os.path.basename(path), n_files=1,
                    transfer_syntax="NIfTI")
    return CTVolume(hu=hu, spacing_mm=tuple(float(spacing[a]) for a in order),  # type: ignore[arg-type]
                    origin_mm=tuple(float(x) for x in origin),  # type: ignore[arg-type]
                    direction=direction, meta=meta, quality_flags=("nifti_input",))
