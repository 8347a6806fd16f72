"""A phantom series copied as another acquisition: its own study, series and instance UIDs,
and the attributes a test sets (another patient, a head-CT description)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid


def copy_as_new_study(src: Path, dest: Path, **attrs: str) -> list[Path]:
    """Every file of ``src`` written into ``dest`` with new UIDs and ``attrs`` set."""
    dest.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    out = []
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for key, value in attrs.items():
            setattr(ds, key, value)
        ds.save_as(dest / f.name)
        out.append(dest / f.name)
    return out


#: a head-trauma study's descriptions (the DICOM node's rules refuse it)
HEAD_CT = {"StudyDescription": "TRAUMA/PLAIN HEAD", "SeriesDescription": "STD BRAIN 5MM"}
