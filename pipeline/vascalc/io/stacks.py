"""Group indexed DICOM CT images into stacks (one regular axial series each).

Used by discovery (every stack under a tree is a case) and by the loader (a manifest path must
hold exactly one stack); both call :func:`split_stacks` once per set of headers, and
:func:`unreadable_files` once per tree for the files that cannot be classified.

One stack is one series of one patient, in one frame of reference, on one date (DICOM PS3.3
C.7.3.1 General Series: a series is a set of images of one modality from one Frame of Reference,
C.7.4.1; PS3.3 C.7.1.1 Patient: PatientID identifies the patient). Images that share a
SeriesInstanceUID but not these are never one stack: a bad de-identifier or a merge of two
exports writes such series, and summing them would add two patients or two visits.
"""

from __future__ import annotations

import os
from pathlib import Path

from .dicom_header import IMAGE_SOP_CLASSES, DicomHeader, has_dicm_preamble

#: the identity fields of a stack, in the order a split names them
_IDENTITY = ("PatientID", "StudyInstanceUID", "StudyDate", "FrameOfReferenceUID",
             "SeriesDate/AcquisitionDate")


def _identity(h: DicomHeader) -> tuple[str, str, str, str, tuple[str, str]]:
    """What must be one within a stack: patient, study, date, frame of reference, dates."""
    return (h.meta.patient_id, h.study_uid, h.meta.study_date, h.frame_of_reference, h.dates)


def split_stacks(headers: list[DicomHeader], *, min_slices: int = 3,
                 ) -> tuple[list[list[DicomHeader]], list[tuple[str, str]]]:
    """Split CT images into stacks: by SeriesInstanceUID and the identity of the images
    (PatientID, a missing one included: two patients under one UID are two stacks, never one
    case; StudyInstanceUID and StudyDate: two visits under one UID, as a bad de-identifier
    writes them, are two stacks; FrameOfReferenceUID; SeriesDate and AcquisitionDate), then by
    orientation and matrix size, then, where one position holds several images, by
    AcquisitionNumber. Stacks with fewer than ``min_slices`` images inside a larger series are
    outliers (localizer-like): returned as (path, reason) notes that say what differs."""
    by_key: dict[tuple, list[DicomHeader]] = {}
    for h in headers:
        orient = tuple(round(x, 3) for x in h.orientation) if h.orientation else None
        uid = h.series_uid or f"(no SeriesInstanceUID) {Path(h.path).parent}"
        by_key.setdefault((uid, _identity(h), orient, h.rows, h.cols), []).append(h)
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
    reasons = split_reasons(stacks)
    kept = []
    for st in stacks:
        if len(st) < min_slices and series_size[_series_key(st[0])] > len(st):
            why = reasons.get(id(st)) or "another orientation, matrix or acquisition"
            for h in st:
                notes.append((h.path, f"outlier of its series ({len(st)} image(s): {why}; "
                                      "localizer-like)"))
        else:
            kept.append(st)
    return kept, notes


def split_reasons(stacks: list[list[DicomHeader]]) -> dict[int, str]:
    """For each stack (by ``id``) that shares its SeriesInstanceUID with another: what set it
    apart, in words without any identifying value ('FrameOfReferenceUID differs', 'PatientID
    missing on 3 of 8 images', 'another orientation, matrix or acquisition'). Stacks of a
    series kept whole are absent."""
    by_uid: dict[str, list[list[DicomHeader]]] = {}
    for st in stacks:
        by_uid.setdefault(st[0].series_uid, []).append(st)
    out: dict[int, str] = {}
    for group in by_uid.values():
        if len(group) < 2:
            continue
        idents = [_identity(st[0]) for st in group]
        total = sum(len(st) for st in group)
        for st, ident in zip(group, idents):
            differs = [name for i, name in enumerate(_IDENTITY)
                       if any(o[i] != ident[i] for o in idents)]
            words = []
            for name in differs:
                if name == "PatientID" and not ident[0]:
                    words.append(f"PatientID missing on {len(st)} of {total} images")
                elif name == "PatientID" and any(not o[0] for o in idents):
                    words.append("PatientID missing on other images of the series")
                else:
                    words.append(f"{name} differs")
            out[id(st)] = ", ".join(words) or "another orientation, matrix or acquisition"
    return out


def unreadable_files(headers: list[DicomHeader], skipped: list[tuple[str, str]],
                     ) -> tuple[list[DicomHeader], list[tuple[str, str]]]:
    """The headers that can be classified, and (path, reason) for the DICOM files that cannot:
    a file with the DICOM marker that no reader could parse, a file cut before that marker
    (:func:`cut_in_preamble`: empty, or zeros only), a header cut short (the file ends
    inside its file meta, its SOP Class UID or any element before its Pixel Data,
    :attr:`DicomHeader.truncated`), a data set without any SOP Class UID, and a CT image
    header without Modality or matrix. Such a
    file is an unreadable file of the series beside it, never 'not a CT image': a slice may be
    missing from that series (flag ``unreadable_files_in_folder``)."""
    bad = [(p, f"unreadable DICOM file ({r.split(': ', 1)[-1].split(' -> ')[0]})")
           for p, r in skipped if has_dicm_preamble(p)]
    bad += [(p, "unreadable DICOM file (empty, or cut inside the 128-byte preamble: a "
                "truncated copy; copy it again from the source)")
            for p, _ in skipped if cut_in_preamble(p)]
    ok = []
    for h in headers:
        if h.truncated:
            bad.append((h.path, "unreadable DICOM file (it ends inside its header: a "
                                "truncated copy; copy it again from the source)"))
        elif not h.sop_class_uid:
            bad.append((h.path, "unreadable DICOM file (no SOP Class UID: it cannot be "
                                "classified; a truncated copy?)"))
        elif h.sop_class_uid in IMAGE_SOP_CLASSES and (not h.modality or h.rows <= 0
                                                         or h.cols <= 0):
            bad.append((h.path, "unreadable DICOM file (a CT image header without Modality "
                                "or matrix: a truncated copy?)"))
        else:
            ok.append(h)
    return ok, bad


def cut_in_preamble(path: str) -> bool:
    """Whether a regular file is what is left of a DICOM file cut before its 'DICM' marker
    (PS3.10 7.1: a 128-byte preamble, zeros when unused, then 'DICM'): empty, or shorter than
    132 bytes with zeros up to 128 and then the start of 'DICM'. Text or other junk is not."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            data = fh.read(132)
    except OSError:
        return False
    return len(data) < 132 and not data[:128].strip(b"\0") and b"DICM".startswith(data[128:])


def _series_key(h: DicomHeader) -> tuple[str, str, str, str]:
    """One series of one patient in one study on one date."""
    return (h.series_uid, h.meta.patient_id, h.study_uid, h.meta.study_date)
