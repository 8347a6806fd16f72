"""Enhanced and legacy-converted multi-frame CT: one header per frame.

Each frame's geometry and rescale come from its functional groups (DICOM PS3.3 C.7.6.16):
the per-frame item overrides the shared one for PlanePositionSequence (ImagePositionPatient),
PlaneOrientationSequence (ImageOrientationPatient), PixelMeasuresSequence (PixelSpacing,
SliceThickness) and PixelValueTransformationSequence (RescaleSlope, RescaleIntercept,
RescaleType). The frames then go through the same sort, checks and HU conversion as a
single-frame series, so both read to the same volume.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

from ..errors import DecodeError, MissingTagError
from ..values import finite_float
from .dicom_header import DicomHeader

ENHANCED_CT = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"}


def _item(ds, keyword: str):
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _lookup(per_frame, shared, seq_keyword: str, keyword: str):
    for groups in (per_frame, shared):
        if groups is None:
            continue
        item = _item(groups, seq_keyword)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(x) for x in out) else None


_float = finite_float


def frame_headers(h: DicomHeader) -> list[DicomHeader]:
    """One DicomHeader per frame of a multi-frame CT file (``frame`` set, n_frames 1)."""
    import pydicom  # lazy: pydicom, only where the fast path cannot read the file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(h.path, stop_before_pixels=True)
    except Exception as err:  # noqa: BLE001
        raise DecodeError(f"cannot read the multi-frame header ({err})", path=h.path) from None
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if len(per_frame) != n:
        raise MissingTagError(f"{len(per_frame)} per-frame functional groups for {n} frames",
                              path=h.path)
    out = []
    for k in range(n):
        pf = per_frame[k]
        pos = _floats(_lookup(pf, shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
        iop = _floats(_lookup(pf, shared, "PlaneOrientationSequence",
                              "ImageOrientationPatient"), 6)
        spacing = _floats(_lookup(pf, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
        thickness = _float(_lookup(pf, shared, "PixelMeasuresSequence", "SliceThickness"))
        slope = _float(_lookup(pf, shared, "PixelValueTransformationSequence", "RescaleSlope"))
        icpt = _float(_lookup(pf, shared, "PixelValueTransformationSequence",
                              "RescaleIntercept"))
        rtype = _lookup(pf, shared, "PixelValueTransformationSequence", "RescaleType")
        meta = dataclasses.replace(h.meta, slice_thickness_mm=thickness
                                   if thickness is not None else h.meta.slice_thickness_mm)
        out.append(dataclasses.replace(
            h, position=pos, orientation=iop, pixel_spacing=spacing,  # type: ignore[arg-type]
            slope=slope if slope is not None else h.slope,
            intercept=icpt if icpt is not None else h.intercept,
            rescale_type=str(rtype).upper() if rtype else h.rescale_type,
            n_frames=1, frame=k, pixel_offset=-1, meta=meta,
            sop_instance_uid=f"{h.sop_instance_uid}#{k}"))
    return out


def decode_frames(path: str):
    """All frames' stored values, (frames, rows, cols), decoded by pydicom's plugins."""
    import pydicom  # lazy: pydicom, only where the fast path cannot read the file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
    except Exception as err:  # noqa: BLE001
        raise DecodeError(f"cannot decode the multi-frame pixel data ({err})", path=path) from None
    return arr if arr.ndim == 3 else arr[None]
