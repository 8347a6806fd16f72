"""Group indexed DICOM CT images into stacks (one regular axial series each).

Used by discovery (every stack under a tree is a case) and by the loader (a manifest path must
hold exactly one stack); both call :func:`split_stacks` once per set of headers.
"""

from __future__ import annotations

from pathlib import Path

from .dicom_header import DicomHeader


def split_stacks(headers: list[DicomHeader], *, min_slices: int = 3,
                 ) -> tuple[list[list[DicomHeader]], list[tuple[str, str]]]:
    """Split CT images into stacks: by SeriesInstanceUID and PatientID (two patients under one
    UID are two stacks, never one case), by StudyInstanceUID and StudyDate (two visits under
    one UID, as a bad de-identifier writes them, are two stacks, never one case adding both),
    then by orientation and matrix size, then, where one
    position holds several images, by AcquisitionNumber. Stacks with
    fewer than ``min_slices`` images inside a larger series are outliers (localizer-like):
    returned as (path, reason) notes."""
    by_key: dict[tuple, list[DicomHeader]] = {}
    for h in headers:
        orient = tuple(round(x, 3) for x in h.orientation) if h.orientation else None
        uid = h.series_uid or f"(no SeriesInstanceUID) {Path(h.path).parent}"
        by_key.setdefault((uid, h.meta.patient_id, h.study_uid, h.meta.study_date, orient,
                           h.rows, h.cols), []).append(h)
    stacks: list[list[DicomHeader]] = []
    for hs in by_key.values():
        positions = [tuple(round(x, 2) for x in h.position) if h.position else None for h in hs]
        same_place = len(set(positions)) < len(positions)
        uids_differ = len({h.sop_instance_uid for h in hs}) == len(hs)
        acqs = {h.acquisition_number for h in hs}
        if same_place and uids_differ and len(acqs) > 1:
            for acq in sorted(acqs, key=lambda a: (a is None, a)):
                stacks.append([h for h in hs if h.acquisition_number == acq])
        else:
            stacks.append(hs)
    notes: list[tuple[str, str]] = []
    series_size: dict[tuple[str, str, str, str], int] = {}
    for st in stacks:
        key = _series_key(st[0])
        series_size[key] = series_size.get(key, 0) + len(st)
    kept = []
    for st in stacks:
        if len(st) < min_slices and series_size[_series_key(st[0])] > len(st):
            for h in st:
                notes.append((h.path, f"outlier of its series ({len(st)} image(s) with another "
                                      "orientation, matrix or acquisition; localizer-like)"))
        else:
            kept.append(st)
    return kept, notes


def _series_key(h: DicomHeader) -> tuple[str, str, str, str]:
    """One series of one patient in one study on one date."""
    return (h.series_uid, h.meta.patient_id, h.study_uid, h.meta.study_date)
