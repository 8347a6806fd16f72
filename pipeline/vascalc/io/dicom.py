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

import multiprocessing
import os
import stat
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import (
    DecodeError,
    GeometryError,
    NotCTError,
    NotDicomError,
)
from ..records import CTVolume, ScanMeta
from .dicom_header import _FAST_SYNTAXES, DicomHeader, read_header
from .geometry import SortedSeries, _check_consistent, sort_slices  # noqa: F401 - re-exported
from .multiframe import ENHANCED_CT, decode_frames, frame_headers
from .plausibility import HU_DECIMALS, check_header, check_hu

_UNCOMPRESSED = _FAST_SYNTAXES | {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def ct_image_problem(h: DicomHeader) -> str | None:
    """Why a file is not a CT image slice this reader scores, or None."""
    if h.sop_class_uid == _MEDIA_DIRECTORY:
        return "DICOMDIR (media directory), not an image"
    if h.sop_class_uid not in CT_SOP_CLASSES:
        try:
            from pydicom.uid import UID  # lazy: pydicom, only where the fast path cannot read the file

            with warnings.catch_warnings():  # an invalid UID: named below, not warned about
                warnings.simplefilter("ignore")
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
        return f"localizer or projection image (ImageType {'/'.join(h.image_type)})"
    return None


# --------------------------------------------------------------------------------------
# pixels


def _fast_ok(h: DicomHeader) -> bool:
    return (h.transfer_syntax in _FAST_SYNTAXES and h.pixel_offset >= 0
            and h.bits_allocated == 16 and h.samples_per_pixel == 1 and h.n_frames == 1
            and h.pixel_length == h.rows * h.cols * 2 and 1 <= h.bits_stored <= 16
            and h.pixel_representation in (0, 1))


def _read_fast(h: DicomHeader, out: np.ndarray) -> None:
    buf = memoryview(out).cast("B")  # type: ignore[arg-type]  # numpy arrays are buffers
    with open(h.path, "rb") as fp:
        fp.seek(h.pixel_offset)
        got = fp.readinto(buf)
    if got != len(buf):
        raise DecodeError(f"pixel data truncated: {got} of {len(buf)} bytes", path=h.path,
                          hint="the file is incomplete; copy it again from the source")


def _read_pydicom(h: DicomHeader) -> np.ndarray:
    import pydicom  # lazy: pydicom, only where the fast path cannot read the file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # malformed values: our own checks name them
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
    import SimpleITK as sitk  # lazy: SimpleITK, the last-resort decoder

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


AIR_HU = -1000.0  # what padding becomes: air by definition of the Hounsfield scale


def _apply_padding(stored: np.ndarray, h: DicomHeader, icpt: float, slope: float,
                   hu_direct: bool) -> tuple[bool, np.ndarray | None]:
    """Mark padding (PixelPaddingValue .. PixelPaddingRangeLimit, PS3.3 C.7.5.1.1.2) as air.
    Returns (any padding found, mask still to apply after the rescale): the stored value of
    -1000 HU is written into ``stored`` directly when it fits its type."""
    lo, hi = h.padding  # type: ignore[misc]
    if hu_direct:  # a decoder already applied the rescale: compare in HU
        lo, hi = sorted((lo * h.slope + h.intercept, hi * h.slope + h.intercept))  # type: ignore[operator]
    mask = (stored >= lo) & (stored <= hi)
    if not mask.any():
        return False, None
    air = round((AIR_HU - icpt) / slope)
    if stored.dtype.kind in "iu":
        info = np.iinfo(stored.dtype)
        if not info.min <= air <= info.max:
            return True, mask
    stored[mask] = air
    return True, None


def load_series(headers: list[DicomHeader], *, abs_tol_mm: float = 0.01, rel_tol: float = 0.01,
                gantry_tilt: str = "score", max_obliquity_deg: float = 45.0,
                require_hu: bool = True) -> CTVolume:
    """Load one CT series (its headers already indexed) into a CTVolume in HU.

    Quality flags name what was handled: ``monochrome1`` (HU do not depend on the
    photometric interpretation, PS3.3 C.7.6.3.1.2), ``rescale_type_not_hu`` (RescaleType
    given and not HU), ``lossy_compression`` (LossyImageCompression 01 or a syntax that
    allows lossy coding: HU near the threshold may have moved), ``rescale_varies`` (slope or
    intercept differ between slices, applied per slice), ``pixel_padding`` (padding set to
    air), and the geometry flags of
    :func:`sort_slices`.
    """
    if not headers:
        raise GeometryError("no files in the series")
    flags: list[str] = []
    if any(h.n_frames > 1 or h.sop_class_uid in ENHANCED_CT for h in headers):
        expanded: list[DicomHeader] = []
        for h in headers:
            multi = h.n_frames > 1 or h.sop_class_uid in ENHANCED_CT
            expanded.extend(frame_headers(h) if multi else [h])
        headers = expanded
        flags.append("multi_frame")
    frames_cache: dict[str, np.ndarray] = {}
    for h in headers:
        problem = ct_image_problem(h)
        if problem:
            raise NotCTError(problem, path=h.path)
        check_header(h)
    if any(h.photometric == "MONOCHROME1" for h in headers):
        flags.append("monochrome1")
    if any(h.rescale_type not in ("", "HU") for h in headers):
        flags.append("rescale_type_not_hu")
    if len({(h.slope, h.intercept) for h in headers}) > 1:
        flags.append("rescale_varies")
    if any(h.lossy for h in headers):
        flags.append("lossy_compression")
    ss = sort_slices(headers, abs_tol_mm=abs_tol_mm, rel_tol=rel_tol, gantry_tilt=gantry_tilt,
                     max_obliquity_deg=max_obliquity_deg)
    hs = ss.headers
    n, rows, cols = len(hs), hs[0].rows, hs[0].cols
    integral = all(h.slope == 1.0 and h.intercept is not None
                   and float(h.intercept).is_integer() for h in hs)
    # integral rescale: HU in place in one int16 volume; else one int16 slice buffer
    raw = np.empty((n if integral else 1, rows, cols), dtype=np.int16)
    out: np.ndarray = raw if integral else np.empty((n, rows, cols), dtype=np.float64)
    padded = False
    for k, h in enumerate(hs):
        icpt, slope = float(h.intercept), float(h.slope)  # type: ignore[arg-type]
        fast = h.frame is None and _fast_ok(h)
        hu_direct = False
        if h.frame is not None:
            if h.path not in frames_cache:
                frames_cache.clear()  # one multi-frame file in memory at a time
                frames_cache[h.path] = decode_frames(h.path)
            stored = np.array(frames_cache[h.path][h.frame])
        elif fast:
            slot = raw[k] if integral else raw[0]
            _read_fast(h, slot)
            stored = _stored_to_int(slot, h)
        elif h.transfer_syntax not in _UNCOMPRESSED:
            # compressed: SimpleITK (GDCM) decodes 2-3x faster than pydicom's plugins and
            # returns stored x slope + intercept
            stored, hu_direct = _read_sitk(h), True
        else:
            stored = _read_pydicom(h)
        pad_mask = None
        if h.padding is not None:
            found, pad_mask = _apply_padding(stored, h, 0.0 if hu_direct else icpt,
                                             1.0 if hu_direct else slope, hu_direct)
            padded = padded or found
        if hu_direct:
            icpt, slope = 0.0, 1.0
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
                if pad_mask is not None:
                    raw[k][pad_mask] = int(AIR_HU)
                continue
            # HU not integral or not within int16: the series continues in float64
            out = np.empty((n, rows, cols), dtype=np.float64)
            out[:k] = raw[:k]
            integral = False
        out[k] = np.round(stored.astype(np.float64) * slope + icpt, HU_DECIMALS)
        if pad_mask is not None:
            out[k][pad_mask] = AIR_HU
    if padded:
        flags.append("pixel_padding")
    check_hu(out, os.path.dirname(hs[0].path) or hs[0].path, require_hu=require_hu)
    out.flags.writeable = False
    first = hs[0]
    meta = ScanMeta(**{**first.meta.__dict__, "n_files": n})
    return CTVolume(hu=out, spacing_mm=(ss.increment_mm, *ss.pixel_spacing), origin_mm=ss.origin,
                    direction=ss.direction, meta=meta, quality_flags=tuple(flags + list(ss.flags)),
                    source_paths=tuple(h.path for h in hs),
                    source_uids=tuple(h.sop_instance_uid for h in hs),
                    source_instances=tuple(h.instance_number for h in hs))


def index_tree(root: str | os.PathLike, *, jobs: int = 1,
               ) -> tuple[list[DicomHeader], list[tuple[str, str]]]:
    """Headers of every DICOM file under ``root`` (a folder or one file), read once; and
    (path, reason) for files that are not readable DICOM. Hidden files are skipped; symbolic
    links to folders are followed (each folder once); FIFOs, sockets and devices are listed,
    never opened (reading a FIFO would wait forever). With ``jobs`` > 1 and many files the
    headers are read by forked worker processes, in chunks; the result is the same, in the
    same order."""
    root = Path(root)
    files, skipped = ([root], []) if root.is_file() else walk_files(root)
    if jobs > 1 and len(files) >= PARALLEL_INDEX_MIN_FILES and can_fork():
        size = -(-len(files) // (4 * jobs))
        chunks = [files[i:i + size] for i in range(0, len(files), size)]
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as ex:
            parts = list(ex.map(_read_headers, chunks))
    else:
        parts = [_read_headers(files)]
    headers: list[DicomHeader] = []
    for h, s in parts:
        headers.extend(h)
        skipped.extend(s)
    return headers, skipped


#: below this many files the header pass stays in the process (a fork costs more than it saves)
PARALLEL_INDEX_MIN_FILES = 256


def can_fork() -> bool:
    """Whether to start workers by fork: safe (and cheapest) on Linux while no other thread
    runs (a forked lock held by another thread would never be released)."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and sys.platform.startswith("linux") and threading.active_count() == 1)


def _read_headers(files: list[Path]) -> tuple[list[DicomHeader], list[tuple[str, str]]]:
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


def walk_files(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Regular files under ``root`` in sorted order, following folder links once each; and
    (path, reason) for entries that are not regular files."""
    files: list[Path] = []
    other: list[tuple[str, str]] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or a second link to one folder
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            p = Path(folder) / name
            try:
                mode = p.stat().st_mode
            except OSError as err:  # a dangling link
                other.append((str(p), f"unreadable: {err.strerror}"))
                continue
            if stat.S_ISREG(mode):
                files.append(p)
            else:
                other.append((str(p), "not a regular file (a FIFO, socket or device), not read"))
    return sorted(files), other


def read_datasets(paths: list[str]):
    """Headers (no pixel data: highdicom needs none) of source images, in the given order,
    for DICOM SEG and SR."""
    import pydicom  # lazy: pydicom, only where the fast path cannot read the file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def patient_identity(path: str) -> dict[str, str]:
    """Patient name, id and birth date of a file, with the accession number and the study's
    and series' descriptions, for reports configured with identity (``report.identity``
    full)."""
    import pydicom  # lazy: pydicom, only where the fast path cannot read the file

    # pydicom converts (and validates) a value when it is read, not when the file is: values
    # longer than their VR allows (a 121-character name) are read here without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return {"Patient name": str(ds.get("PatientName", "") or ""),
                "Patient ID": str(ds.get("PatientID", "") or ""),
                "Birth date": str(ds.get("PatientBirthDate", "") or ""),
                "Accession": str(ds.get("AccessionNumber", "") or ""),
                "Study": str(ds.get("StudyDescription", "") or ""),
                "Series": str(ds.get("SeriesDescription", "") or "")}
