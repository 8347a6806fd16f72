"""What a CT slice and its HU must satisfy before a number is computed from them (docs, conventions:
'Geometry and pixel values'): a rescale that is a CT rescale, a matrix a header can mean,
pixel data of the length the header declares (not truncated, not encapsulated fragments under
an uncompressed transfer syntax), and HU that a CT field of view can hold. Each refusal names
the file and the value (DICOM PS3.3 C.7.6.3 Image Pixel, C.11.1 Modality LUT)."""

from __future__ import annotations

import numpy as np

from ..errors import DecodeError, ImplausibleHUError, MissingRescaleError
from .dicom_header import _FAST_SYNTAXES, DicomHeader

_UNCOMPRESSED = _FAST_SYNTAXES | {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}

#: HU plausibility (docs, conventions): a CT field of view holds air or fat
#: below this (as for NIfTI input) ...
HU_MUST_REACH_BELOW = -100.0
#: ... and no value beyond these (extended-scale metal reaches about 30,000 HU; stored values
#: read with the wrong sign or a wild slope land far outside)
HU_PLAUSIBLE_RANGE = (-10000.0, 35000.0)
#: air reads -1000 HU (water 0 HU by the definition of the scale; DICOM PS3.3 C.11.1.1.2 and
#: Hounsfield 1973) and scanners clip it at -1024 HU; more than :data:`AIR_BELOW_SHARE` of a
#: volume below this (padding of the corners outside the reconstruction circle aside) is air
#: read on another scale: an offset applied twice (-2024 HU) or pixels already in HU rescaled
AIR_FLOOR_HU = -1124.0
#: the share of voxels below :data:`AIR_FLOOR_HU` that is refused (a choice: noise and metal
#: streaks reach below it in a few voxels; air around a body fills a tenth of an image or more)
AIR_BELOW_SHARE = 0.01
#: RescaleSlope outside this range is not a CT rescale
SLOPE_RANGE = (1e-4, 1e3)
#: HU are rounded to this many decimals after the rescale, so that decimal slopes and
#: intercepts give the exact decimal HU of the definition (0.9 x 1278 - 1020.2 = 130, not
#: 129.99999999999997) and band edges are kept as the definition says
HU_DECIMALS = 9
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: rows and columns per slice beyond this are a corrupt header, not a CT (micro-CT: ~4000)
MAX_MATRIX = 16384


def check_hu(hu: np.ndarray, path: str, *, require_hu: bool) -> None:
    """Refuse values that are not plausible HU (see the constants above)."""
    lo, hi = float(hu.min()), float(hu.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImplausibleHUError("non-finite values after the rescale", path=path)
    if not require_hu:
        return
    if lo < HU_PLAUSIBLE_RANGE[0] or hi > HU_PLAUSIBLE_RANGE[1]:
        raise ImplausibleHUError(
            f"values from {lo:g} to {hi:g} HU are outside {HU_PLAUSIBLE_RANGE[0]:g} to "
            f"{HU_PLAUSIBLE_RANGE[1]:g} HU (signed data labelled unsigned? a wrong rescale?)",
            path=path)
    _check_air(hu, lo, path)
    if lo >= HU_MUST_REACH_BELOW:
        raise ImplausibleHUError(
            f"the lowest value is {lo:g} HU: a CT field of view holds air or fat below "
            f"{HU_MUST_REACH_BELOW:g} HU (another modality labelled CT? a mask?)", path=path)


def _check_air(hu: np.ndarray, lo: float, path: str) -> None:
    """Refuse a volume whose air is far below -1024 HU (see :data:`AIR_FLOOR_HU`). Voxels at
    the volume's minimum outside the central disc of the image are padding of the corners
    outside the reconstruction circle (-2048 or -3024 HU on many scanners) and are not air."""
    if lo >= AIR_FLOOR_HU or hu.ndim != 3 or hu.size == 0:
        return
    below = int(np.count_nonzero(hu < AIR_FLOOR_HU))
    if below <= AIR_BELOW_SHARE * hu.size:
        return
    _, rows, cols = hu.shape
    rr, cc = np.ogrid[:rows, :cols]
    radius = 0.48 * min(rows, cols)
    corners = ((rr - (rows - 1) / 2) ** 2 + (cc - (cols - 1) / 2) ** 2) > radius ** 2
    padding = int(np.count_nonzero((hu == lo) & corners[None]))
    if below - padding <= AIR_BELOW_SHARE * hu.size:
        return
    air = float(np.median(hu[(hu < AIR_FLOOR_HU) & ~((hu == lo) & corners[None])]))
    raise ImplausibleHUError(
        f"{(below - padding) / hu.size:.0%} of the voxels read below {AIR_FLOOR_HU:g} HU "
        f"(their median {air:g} HU); air is -1000 HU and no CT reads far below -1024 HU: the "
        "rescale offset was probably applied twice (RescaleIntercept on pixels already in HU, "
        "or a converter that added it again)", path=path,
        hint="re-export the series from the scanner or PACS, or fix the RescaleIntercept "
             "(NIfTI: scl_inter) so that air reads -1000 HU")


def _starts_with_item(h: DicomHeader) -> bool:
    """Whether the pixel data begins with an item tag (FFFE,E000): encapsulated fragments."""
    if h.pixel_offset < 0:
        return False
    try:
        with open(h.path, "rb") as fp:
            fp.seek(h.pixel_offset)
            return fp.read(4) == b"\xfe\xff\x00\xe0"
    except OSError:
        return False


def check_header(h: DicomHeader) -> None:
    """Refuse a slice whose rescale, matrix or pixel data length cannot be a CT's."""
    if h.slope is None or h.intercept is None:
        missing = [n for n, v in (("RescaleSlope", h.slope), ("RescaleIntercept", h.intercept))
                   if v is None]
        raise MissingRescaleError(f"{' and '.join(missing)} missing", path=h.path)
    if h.slope == 0:
        raise MissingRescaleError("RescaleSlope is 0", path=h.path)
    if not SLOPE_RANGE[0] <= h.slope <= SLOPE_RANGE[1]:
        raise ImplausibleHUError(f"RescaleSlope {h.slope:g} is outside {SLOPE_RANGE[0]:g} to "
                                 f"{SLOPE_RANGE[1]:g} (a CT rescale is positive)", path=h.path)
    if not (0 < h.rows <= MAX_MATRIX and 0 < h.cols <= MAX_MATRIX):
        raise DecodeError(f"a matrix of {h.rows} x {h.cols} pixels is outside 1 to "
                          f"{MAX_MATRIX} per side (a corrupt header?)", path=h.path)
    declared = h.rows * h.cols * max(h.bits_allocated, 8) // 8
    if (h.transfer_syntax in _FAST_SYNTAXES and h.n_frames == 1 and h.frame is None
            and h.pixel_length not in (0, _UNDEFINED_LENGTH)
            and h.pixel_length not in (declared, declared + 1)):
        if _starts_with_item(h):
            raise DecodeError("encapsulated (compressed) pixel data under the uncompressed "
                              f"transfer syntax {h.transfer_syntax}", path=h.path,
                              hint="re-export the file with its true transfer syntax")
        raise DecodeError(f"{h.rows} x {h.cols} pixels of {h.bits_allocated} bits need "
                          f"{declared} bytes; the pixel data holds {h.pixel_length}",
                          path=h.path, hint="the file is incomplete or its header is wrong")
    if h.transfer_syntax in _UNCOMPRESSED and h.pixel_length == _UNDEFINED_LENGTH:
        raise DecodeError("encapsulated (compressed) pixel data under the uncompressed "
                          f"transfer syntax {h.transfer_syntax}", path=h.path,
                          hint="re-export the file with its true transfer syntax")
