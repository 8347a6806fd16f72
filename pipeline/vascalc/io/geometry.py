"""Slice geometry of a CT series: consistency checks and the sort along the slice normal.

Conventions (DICOM PS3.3 C.7.6.2, Image Plane Module): slices are sorted by their position
along the slice normal ``n = row_cos x col_cos``, ``d = ImagePositionPatient . n``; the slice
increment is the distance between consecutive positions, never SliceThickness. Every irregular
stack is either handled exactly with a quality flag or refused by name (docs, conventions).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import (
    DuplicateSliceError,
    GeometryError,
    InconsistentSeriesError,
    MissingSliceError,
    MissingTagError,
    NotAxialError,
    UnevenSpacingError,
)
from .dicom_header import DicomHeader

#: plausible voxel spacing, from sub-micrometre micro-CT to the coarsest clinical grid; values
#: outside it (0, 3e-202, a metre) come from broken headers and would break the area arithmetic
SPACING_RANGE_MM = (1e-4, 100.0)


@dataclass(frozen=True)
class SortedSeries:
    headers: tuple[DicomHeader, ...]
    increment_mm: float
    origin: tuple[float, float, float]
    direction: tuple[tuple[float, ...], ...]
    pixel_spacing: tuple[float, float]
    flags: tuple[str, ...] = ()


def _check_consistent(headers: list[DicomHeader]) -> None:
    first = headers[0]
    for h in headers:
        for name, value in (("ImagePositionPatient", h.position),
                            ("ImageOrientationPatient", h.orientation),
                            ("PixelSpacing", h.pixel_spacing)):
            if value is None:
                raise MissingTagError(f"{name} is missing or malformed", path=h.path)
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
    if np.any(spacings < SPACING_RANGE_MM[0]) or np.any(spacings > SPACING_RANGE_MM[1]):
        raise GeometryError(f"PixelSpacing {first.pixel_spacing} mm is outside the plausible "
                            f"{SPACING_RANGE_MM[0]:g}-{SPACING_RANGE_MM[1]:g} mm", path=first.path)


def sort_slices(headers: list[DicomHeader], *, abs_tol_mm: float = 0.01, rel_tol: float = 0.01,
                gantry_tilt: str = "score", max_obliquity_deg: float = 45.0) -> SortedSeries:
    """Sort slices along the normal and check the stack is one regular grid.

    Decisions, per kind (docs, conventions):
    - the same file twice (same SOPInstanceUID at one position): one copy is dropped
      (flag ``duplicate_files_removed``); two different images at one position: refused;
    - a gap over 1.5x the median increment: refused (a missing slice loses its calcium);
    - any other irregular increment: refused;
    - gantry tilt (positions sheared against the normal): scored slice by slice, which is exact
      for Agatston, volume and mass (areas lie in the slice planes; the increment is measured
      along the normal, so each voxel's volume is pixel area x increment); flag ``gantry_tilt``;
    - a normal more than ``max_obliquity_deg`` from the head-foot axis: refused (not axial).
    """
    _check_consistent(headers)
    first = headers[0]
    where = os.path.dirname(first.path)
    flags: list[str] = []
    iop = np.asarray(first.orientation, dtype=float)
    row_cos, col_cos = iop[:3], iop[3:]
    if not (abs(np.linalg.norm(row_cos) - 1) < 1e-3 and abs(np.linalg.norm(col_cos) - 1) < 1e-3
            and abs(row_cos @ col_cos) < 1e-3):
        raise GeometryError(f"ImageOrientationPatient {tuple(iop)} is not two orthonormal "
                            "direction cosines", path=first.path)
    # values written with few digits (0.9995 for 1): made exactly orthonormal, so that the
    # increment along the normal, and every area and volume, is not scaled by their error
    row_cos = row_cos / np.linalg.norm(row_cos)
    col_cos = col_cos - (col_cos @ row_cos) * row_cos
    col_cos = col_cos / np.linalg.norm(col_cos)
    normal = np.cross(row_cos, col_cos)
    obliquity = math.degrees(math.acos(min(1.0, abs(float(normal[2])))))
    if obliquity > max_obliquity_deg:
        raise NotAxialError(f"the slice normal is {obliquity:.0f} degrees from the head-foot "
                            f"axis (at most {max_obliquity_deg:g} allowed)", path=where)
    pos = np.array([h.position for h in headers], dtype=float)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    # the same file given twice: keep one copy
    keep = [order[0]]
    for i in order[1:]:
        prev = keep[-1]
        if abs(d[i] - d[prev]) <= abs_tol_mm:
            a, b = headers[prev], headers[i]
            if a.sop_instance_uid and a.sop_instance_uid == b.sop_instance_uid:
                if "duplicate_files_removed" not in flags:
                    flags.append("duplicate_files_removed")
                continue
            raise DuplicateSliceError(
                f"two different images share position {d[i]:.3f} mm along the normal: "
                f"{os.path.basename(a.path)} and {os.path.basename(b.path)}", path=where,
                hint="keep one reconstruction per folder, or split the series")
        keep.append(i)
    order = np.asarray(keep)
    if len(order) < 2:
        raise GeometryError(
            "the series has a single slice; the slice increment needs at least two",
            path=first.path, hint="point vascalc at the complete series folder")
    d = d[order]
    steps = np.diff(d)
    inc = float(np.median(steps))
    ratio = steps / inc
    gaps = np.flatnonzero(ratio > 1.5)
    # a missing slice leaves a gap of (nearly) a whole multiple of the increment while the
    # other steps stay regular; anything else is uneven spacing
    multiples = np.abs(ratio[gaps] - np.rint(ratio[gaps])) < 0.1
    regular = np.delete(steps, gaps)
    regular_ok = regular.size == 0 or np.all(np.abs(regular - inc)
                                             <= max(abs_tol_mm, rel_tol * inc))
    if gaps.size and np.all(multiples) and regular_ok:
        raise MissingSliceError(
            f"a gap of {steps[gaps[0]]:.3f} mm after position {d[gaps[0]]:.3f} mm, against a "
            f"median increment of {inc:.3f} mm", path=where)
    bad = np.flatnonzero(np.abs(steps - inc) > max(abs_tol_mm, rel_tol * inc))
    if bad.size:
        raise UnevenSpacingError(
            f"slice increments range {steps.min():.3f}-{steps.max():.3f} mm around a median of "
            f"{inc:.3f} mm (first irregular step after position {d[bad[0]]:.3f} mm)", path=where)
    p = pos[order]
    step = (p[-1] - p[0]) / (len(order) - 1)
    sideways = step - (step @ normal) * normal
    slice_axis = normal.copy()
    if np.linalg.norm(sideways) > max(abs_tol_mm / 10, 1e-3 * inc):
        angle = math.degrees(math.atan2(np.linalg.norm(sideways), abs(step @ normal)))
        if gantry_tilt == "refuse":
            raise GeometryError(
                f"slice positions are sheared by {angle:.1f} degrees against the slice normal "
                "(gantry tilt)", path=where, hint="resample the series onto an orthogonal grid "
                "or set geometry.gantry_tilt: score")
        # positions must lie on one straight sheared line
        resid = p - (p[0] + np.outer(np.arange(len(order)), step))
        if np.abs(resid).max() > max(abs_tol_mm, rel_tol * inc) * 2:
            raise UnevenSpacingError("tilted slice positions do not advance by a constant step",
                                     path=where)
        slice_axis = step / inc  # per unit of increment along the normal
        flags.append("gantry_tilt")
    hs = tuple(headers[i] for i in order)
    direction = tuple(tuple(float(x) for x in row) for row in
                      np.stack([slice_axis, col_cos, row_cos], axis=1))
    origin = (float(p[0][0]), float(p[0][1]), float(p[0][2]))
    spacing = first.pixel_spacing
    assert spacing is not None  # checked by the caller: a slice without PixelSpacing is refused
    return SortedSeries(hs, inc, origin, direction,
                        (float(spacing[0]), float(spacing[1])), tuple(flags))
