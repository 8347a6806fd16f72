"""Write a HU volume as a CT DICOM series (used by the sample-data generator and the tests).

Stored values are ``round((HU - intercept) / slope)``; the HU given must be representable
exactly, which the caller checks with ``representable``. Geometry: axial, rows along +y,
columns along +x (ImageOrientationPatient 1\\0\\0\\0\\1\\0), slice k at z0 + k x increment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

UID_PREFIX = "1.2.826.0.1.3680043.10.1347."  # sample-data prefix under a public UID root


@dataclass
class SeriesSpec:
    pixel_spacing_mm: tuple[float, float] = (0.7, 0.7)
    increment_mm: float = 3.0
    thickness_mm: float = 3.0
    z0_mm: float = -100.0
    slope: float = 1.0
    intercept: float = -1024.0
    signed: bool = False
    bits_stored: int = 16
    patient_id: str = "PHANTOM"
    patient_name: str = "Phantom^Digital"
    study_date: str = "20250101"
    patient_size_m: float | None = None
    patient_weight_kg: float | None = None
    patient_age: str = ""
    patient_sex: str = ""
    kvp: float = 120.0
    kernel: str = "B30f"
    manufacturer: str = "vascalc phantom"
    series_description: str = "Calcium score phantom"
    series_number: int = 2
    seed: str = "0"
    extra: dict = field(default_factory=dict)


def stored_values(hu: np.ndarray, spec: SeriesSpec) -> np.ndarray:
    stored = np.rint((np.asarray(hu, dtype=np.float64) - spec.intercept) / spec.slope)
    back = stored * spec.slope + spec.intercept
    if not np.allclose(back, hu, atol=1e-6):
        raise ValueError("HU values are not representable with this slope/intercept")
    lo, hi = ((-(1 << (spec.bits_stored - 1)), (1 << (spec.bits_stored - 1)) - 1) if spec.signed
              else (0, (1 << spec.bits_stored) - 1))
    if stored.min() < lo or stored.max() > hi:
        raise ValueError(f"stored values {stored.min()}..{stored.max()} exceed {lo}..{hi}")
    return stored.astype(np.int16 if spec.signed else np.uint16)


def write_series(folder: str | Path, hu: np.ndarray, spec: SeriesSpec, *,
                 shuffle_names: bool = True) -> list[Path]:
    """Write ``hu`` (slice, row, col) as one file per slice; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored = stored_values(hu, spec)
    n = hu.shape[0]
    study_uid = generate_uid(UID_PREFIX, entropy_srcs=[spec.seed, spec.patient_id, "study"])
    series_uid = generate_uid(UID_PREFIX, entropy_srcs=[spec.seed, spec.patient_id, "series",
                                                        str(spec.series_number)])
    frame_uid = generate_uid(UID_PREFIX, entropy_srcs=[spec.seed, spec.patient_id, "frame"])
    names = [f"IM{i:04d}.dcm" for i in range(n)]
    if shuffle_names:
        random.Random(spec.seed).shuffle(names)
    paths = []
    for k in range(n):
        sop_uid = generate_uid(UID_PREFIX, entropy_srcs=[series_uid, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName = spec.patient_name
        ds.PatientID = spec.patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = spec.patient_sex
        ds.PatientAge = spec.patient_age
        if spec.patient_size_m is not None:
            ds.PatientSize = f"{spec.patient_size_m:.2f}"
        if spec.patient_weight_kg is not None:
            ds.PatientWeight = f"{spec.patient_weight_kg:.1f}"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyDate = spec.study_date
        ds.SeriesDate = spec.study_date
        ds.StudyTime = "120000"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.SeriesNumber = spec.series_number
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = spec.series_description
        ds.Manufacturer = spec.manufacturer
        ds.ManufacturerModelName = "digital phantom"
        ds.KVP = f"{spec.kvp:g}"
        ds.ConvolutionKernel = spec.kernel
        ds.SliceThickness = f"{spec.thickness_mm:g}"
        ds.ImagePositionPatient = [0.0, 0.0, spec.z0_mm + k * spec.increment_mm]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = spec.z0_mm + k * spec.increment_mm
        ds.PixelSpacing = [f"{spec.pixel_spacing_mm[0]:g}", f"{spec.pixel_spacing_mm[1]:g}"]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = spec.bits_stored
        ds.HighBit = spec.bits_stored - 1
        ds.PixelRepresentation = 1 if spec.signed else 0
        ds.RescaleIntercept = f"{spec.intercept:g}"
        ds.RescaleSlope = f"{spec.slope:g}"
        ds.RescaleType = "HU"
        for key, value in spec.extra.items():
            if value is None:
                if key in ds:
                    delattr(ds, key)
            else:
                setattr(ds, key, value)
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


