"""Read CT DICOM series: index headers once, sort slices, decode pixels, convert to HU.

This module and its siblings in ``pipeline/io`` are the only places that import pydicom.
Conventions (DICOM PS3.3 C.7.6.2, Image Plane Module; C.11.1, Modality LUT):

- slices are sorted by their position along the slice normal, ``n = row_cos x col_cos``,
  ``d = ImagePositionPatient . n``; the slice increment is the distance between consecutive
  positions, never SliceThickness;
- HU = stored value x RescaleSlope + RescaleIntercept, computed here; a CT image without the
  rescale is refused (pydicom's ``apply_modality_lut`` would silently return stored values,
  see ``src/pydicom/pixels/processing.py``);
- arrays are (slice, row, col); ``spacing_mm`` = (increment, PixelSpacing[0] between rows,
  PixelSpacing[1] between columns).

Fast path: for uncompressed little-endian 16-bit single-sample single-frame data, the header
pass records where the pixel bytes start; after the sort each file's bytes are read straight
into its slot of one preallocated int16 array and the rescale is applied in place. Every
assumption of that path is checked per file; anything else falls back to pydicom's decoders.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import (
    DecodeError,
    DuplicateSliceError,
    GeometryError,
    InconsistentSeriesError,
    MissingRescaleError,
    MissingTagError,
    NotCTError,
    UnevenSpacingError,
)
from ..types import CTVolume, ScanMeta
from .dicom_header import _FAST_SYNTAXES, DicomHeader, read_header

_UNCOMPRESSED = _FAST_SYNTAXES | {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
_CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def ct_image_problem(h: DicomHeader) -> str | None:
    """Why a file is not a CT image slice this reader scores, or None."""
    if h.sop_class_uid == _MEDIA_DIRECTORY:
        return "DICOMDIR (media directory), not an image"
    if h.sop_class_uid not in _CT_SOP_CLASSES:
        try:
            from pydicom.uid import UID

            name = UID(h.sop_class_uid).name if h.sop_class_uid else "no SOP class"
        except ValueError:
            name = h.sop_class_uid
        return f"{name} is not a CT image"
    if h.modality != "CT":
        return f"Modality is {h.modality or 'missing'}, not CT"
    if h.samples_per_pixel != 1 or h.photometric not in ("MONOCHROME2", "MONOCHROME1"):
        return f"not a greyscale image ({h.samples_per_pixel} samples, {h.photometric or 'no'} photometric)"
    if h.rows <= 0 or h.cols <= 0:
        return "no image pixels (Rows/Columns missing)"
    if h.is_localizer:
        return "localizer (ImageType LOCALIZER)"
    return None


# --------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class SortedSeries:
    headers: tuple[DicomHeader, ...]
    increment_mm: float
    origin: tuple[float, float, float]
    direction: tuple[tuple[float, ...], ...]
    pixel_spacing: tuple[float, float]


def sort_slices(headers: list[DicomHeader], *, abs_tol_mm: float = 0.01,
                rel_tol: float = 0.01) -> SortedSeries:
    """Sort slices along the normal and check the grid is regular, or raise a GeometryError."""
    first = headers[0]
    where = os.path.dirname(first.path)
    for h in headers:
        for name, value in (("ImagePositionPatient", h.position),
                            ("ImageOrientationPatient", h.orientation),
                            ("PixelSpacing", h.pixel_spacing)):
            if value is None:
                raise MissingTagError(f"{name} is missing or malformed", path=h.path)
        if h.n_frames != 1:
            raise GeometryError(f"multi-frame image ({h.n_frames} frames) is not supported yet",
                                path=h.path, hint="export the series as single-frame images")
    if len(headers) < 2:
        raise GeometryError(
            "the series has a single slice; the slice increment needs at least two",
            path=first.path, hint="point vascalc at the complete series folder")
    sizes = np.array([(h.rows, h.cols) for h in headers])
    orients = np.array([h.orientation for h in headers], dtype=float)
    spacings = np.array([h.pixel_spacing for h in headers], dtype=float)
    bad_size = np.flatnonzero(np.any(sizes != sizes[0], axis=1))
    if bad_size.size:
        h = headers[bad_size[0]]
        raise InconsistentSeriesError(
            f"matrix {h.rows}x{h.cols} differs from {first.rows}x{first.cols} of "
            f"{os.path.basename(first.path)}", path=h.path)
    bad_orient = np.flatnonzero(np.any(np.abs(orients - orients[0]) > 1e-4, axis=1))
    if bad_orient.size:
        raise InconsistentSeriesError("ImageOrientationPatient differs between slices",
                                      path=headers[bad_orient[0]].path)
    bad_spacing = np.flatnonzero(np.any(np.abs(spacings - spacings[0])
                                        > 1e-5 + 1e-4 * np.abs(spacings[0]), axis=1))
    if bad_spacing.size:
        h = headers[bad_spacing[0]]
        raise InconsistentSeriesError(
            f"PixelSpacing {h.pixel_spacing} differs from {first.pixel_spacing}", path=h.path)
    iop = np.asarray(first.orientation, dtype=float)
    row_cos, col_cos = iop[:3], iop[3:]
    if not (abs(np.linalg.norm(row_cos) - 1) < 1e-3 and abs(np.linalg.norm(col_cos) - 1) < 1e-3
            and abs(row_cos @ col_cos) < 1e-3):
        raise GeometryError(f"ImageOrientationPatient {tuple(iop)} is not two orthonormal "
                            "direction cosines", path=first.path)
    normal = np.cross(row_cos, col_cos)
    pos = np.array([h.position for h in headers], dtype=float)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    d = d[order]
    steps = np.diff(d)
    tol = max(abs_tol_mm, 0.0)
    dup = np.flatnonzero(steps <= tol)
    if dup.size:
        a, b = headers[order[dup[0]]], headers[order[dup[0] + 1]]
        raise DuplicateSliceError(
            f"two slices share position {d[dup[0]]:.3f} mm along the normal: "
            f"{os.path.basename(a.path)} and {os.path.basename(b.path)}", path=where,
            hint="remove the duplicated file or split the series")
    inc = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - inc) > max(abs_tol_mm, rel_tol * inc))
    if bad.size:
        raise UnevenSpacingError(
            f"slice increments range {steps.min():.3f}-{steps.max():.3f} mm around a median of "
            f"{inc:.3f} mm (first irregular step after position {d[bad[0]]:.3f} mm)", path=where)
    # gantry tilt: the positions must advance along the normal, not sideways
    span = pos[order[-1]] - pos[order[0]]
    sideways = span - (span @ normal) * normal
    if np.linalg.norm(sideways) > max(abs_tol_mm * len(headers), 1e-3 * np.linalg.norm(span)):
        angle = math.degrees(math.atan2(np.linalg.norm(sideways), abs(span @ normal)))
        raise GeometryError(
            f"slice positions are sheared by {angle:.1f} degrees against the slice normal "
            "(gantry tilt)", path=where,
            hint="resample the series onto an orthogonal grid before scoring")
    hs = tuple(headers[i] for i in order)
    direction = tuple(tuple(float(x) for x in row) for row in
                      np.stack([normal, col_cos, row_cos], axis=1))
    return SortedSeries(hs, inc, tuple(float(x) for x in pos[order[0]]), direction,
                        tuple(float(x) for x in first.pixel_spacing))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# pixels


def _fast_ok(h: DicomHeader) -> bool:
    return (h.transfer_syntax in _FAST_SYNTAXES and h.pixel_offset >= 0
            and h.bits_allocated == 16 and h.samples_per_pixel == 1 and h.n_frames == 1
            and h.pixel_length == h.rows * h.cols * 2 and 1 <= h.bits_stored <= 16
            and h.pixel_representation in (0, 1))


def _read_fast(h: DicomHeader, out: np.ndarray) -> None:
    buf = memoryview(out).cast("B")
    with open(h.path, "rb") as fp:
        fp.seek(h.pixel_offset)
        got = fp.readinto(buf)
    if got != len(buf):
        raise DecodeError(f"pixel data truncated: {got} of {len(buf)} bytes", path=h.path,
                          hint="the file is incomplete; copy it again from the source")


def _read_pydicom(h: DicomHeader) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(h.path)
        arr = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - decoders raise many kinds; name the file
        raise DecodeError(f"cannot decode pixel data ({h.transfer_syntax}): {err}",
                          path=h.path) from None
    if arr.shape != (h.rows, h.cols):
        raise DecodeError(f"decoded pixels have shape {arr.shape}, header says "
                          f"{h.rows}x{h.cols}", path=h.path)
    return arr


def _read_sitk(h: DicomHeader) -> np.ndarray:
    """Decode one compressed file with SimpleITK; returns HU (rescale applied by GDCM)."""
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(h.path)
        arr = sitk.GetArrayFromImage(reader.Execute())
    except RuntimeError as err:
        raise DecodeError(f"cannot decode pixel data ({h.transfer_syntax}): "
                          f"{str(err).strip().splitlines()[-1]}", path=h.path) from None
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (h.rows, h.cols):
        raise DecodeError(f"decoded pixels have shape {arr.shape}, header says "
                          f"{h.rows}x{h.cols}", path=h.path)
    return arr


def _stored_bounds(h: DicomHeader) -> tuple[int, int] | None:
    """Range of stored values that BitsStored allows on the fast path (after masking)."""
    bs = h.bits_stored
    if h.pixel_representation == 1:
        return -(1 << (bs - 1)), (1 << (bs - 1)) - 1
    return (0, (1 << bs) - 1) if bs < 16 else None


def _stored_to_int(raw: np.ndarray, h: DicomHeader) -> np.ndarray:
    """Interpret int16 raw bytes as the stored values of ``h`` (bits stored, sign)."""
    bs = h.bits_stored
    if h.pixel_representation == 1:
        if bs < 16:
            shift = 16 - bs
            raw <<= shift
            raw >>= shift  # arithmetic shift: sign-extends BitsStored-bit values
        return raw
    u = raw.view(np.uint16)
    if bs < 16:
        u &= np.uint16((1 << bs) - 1)
        return raw  # values < 2**15 read identically as int16
    return u


def load_series(headers: list[DicomHeader], *, abs_tol_mm: float = 0.01,
                rel_tol: float = 0.01) -> CTVolume:
    """Load one CT series (its headers already indexed) into a CTVolume in HU."""
    if not headers:
        raise GeometryError("no files in the series")
    for h in headers:
        problem = ct_image_problem(h)
        if problem:
            raise NotCTError(problem, path=h.path)
        if h.slope is None or h.intercept is None:
            missing = [n for n, v in (("RescaleSlope", h.slope), ("RescaleIntercept", h.intercept))
                       if v is None]
            raise MissingRescaleError(f"{' and '.join(missing)} missing", path=h.path)
        if h.slope == 0:
            raise MissingRescaleError("RescaleSlope is 0", path=h.path)
        if h.photometric == "MONOCHROME1":
            raise NotCTError("MONOCHROME1 CT images are not supported yet", path=h.path,
                             hint="re-export the series as MONOCHROME2")
    ss = sort_slices(headers, abs_tol_mm=abs_tol_mm, rel_tol=rel_tol)
    hs = ss.headers
    n, rows, cols = len(hs), hs[0].rows, hs[0].cols
    integral = all(h.slope == 1.0 and float(h.intercept).is_integer() for h in hs)
    # integral rescale: HU in place in one int16 volume; else one int16 slice buffer
    raw = np.empty((n if integral else 1, rows, cols), dtype=np.int16)
    out: np.ndarray = raw if integral else np.empty((n, rows, cols), dtype=np.float32)
    for k, h in enumerate(hs):
        icpt, slope = float(h.intercept), float(h.slope)  # type: ignore[arg-type]
        fast = _fast_ok(h)
        if fast:
            slot = raw[k] if integral else raw[0]
            _read_fast(h, slot)
            stored = _stored_to_int(slot, h)
        elif h.transfer_syntax not in _UNCOMPRESSED:
            # compressed: SimpleITK (GDCM) decodes 2-3x faster than pydicom's plugins and
            # returns stored x slope + intercept; undo nothing, only check the shape
            stored, icpt, slope = _read_sitk(h), 0.0, 1.0
        else:
            stored = _read_pydicom(h)
        if integral:
            exact = stored.dtype.kind in "iu" or bool(np.all(np.mod(stored, 1) == 0))
            bounds = _stored_bounds(h) if fast else None
            if bounds is not None and -32768 <= bounds[0] + icpt and bounds[1] + icpt <= 32767:
                lo, hi = bounds  # BitsStored bounds the values: no pass over the data
            else:
                lo, hi = (int(stored.min()), int(stored.max())) if exact else (0, 0)
            if exact and -32768 <= lo + icpt and hi + icpt <= 32767:
                if stored.dtype == np.int16 and np.shares_memory(stored, raw):
                    if icpt:
                        raw[k] += np.int16(icpt)  # in place: no temporary volume
                else:
                    raw[k] = stored.astype(np.int32) + int(icpt)
                continue
            # HU not integral or not within int16: the series continues in float32
            out = np.empty((n, rows, cols), dtype=np.float32)
            out[:k] = raw[:k]
            integral = False
        out[k] = stored.astype(np.float32) * np.float32(slope) + np.float32(icpt)
    out.flags.writeable = False
    first = hs[0]
    meta = ScanMeta(**{**first.meta.__dict__, "n_files": n})
    return CTVolume(hu=out, spacing_mm=(ss.increment_mm, *ss.pixel_spacing), origin_mm=ss.origin,
                    direction=ss.direction, meta=meta)


def index_tree(root: str | os.PathLike) -> tuple[list[DicomHeader], list[tuple[str, str]]]:
    """Headers of every DICOM file under ``root`` (a folder or one file), read once; and
    (path, reason) for files that are not readable DICOM (hidden files are skipped)."""
    from ..errors import NotDicomError

    root = Path(root)
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    headers: list[DicomHeader] = []
    skipped: list[tuple[str, str]] = []
    for p in files:
        try:
            headers.append(read_header(p))
        except NotDicomError as err:
            skipped.append((str(p), str(err)))
        except OSError as err:
            skipped.append((str(p), f"unreadable: {err.strerror}"))
    return headers, skipped
