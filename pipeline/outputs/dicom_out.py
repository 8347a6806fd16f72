"""DICOM results for PACS, made with highdicom: a SEG of the calcium and a Comprehensive 3D SR
(TID 1500 Measurement Report) of the scores.

Both copy the patient and study identity of the source images (PACS files results by it).
Codes are the concepts DICOM defines: SCT 450360000 coronary artery calcium score with DCM
112055 Agatston scoring method; DCM 122660 calcium volume with 112056 volume scoring method;
DCM 122661 calcium mass with 112057 mass scoring method; units in UCUM (PS3.16 CID 7464,
TID 1500/1501). SEG segments: SCT 49755003 morphologically abnormal structure / SCT 18115005
pathologic calcification, one segment per density weight (PS3.3 C.8.20).
"""

from __future__ import annotations

import datetime
import io
import re
from typing import Any

import numpy as np

from .. import __version__

BAND_LABELS = {1: "calcium 130-199 HU peak", 2: "calcium 200-299 HU peak",
               3: "calcium 300-399 HU peak", 4: "calcium >= 400 HU peak"}


#: Type 2 attributes (present, may be empty) of the Patient and General Study modules that
#: SEG and SR copy from their sources; anonymised data often lacks them (PS3.3 C.7.1.1,
#: C.7.2.1)
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "StudyID", "AccessionNumber", "ReferringPhysicianName")
_DATE_KEYS = ("PatientBirthDate", "StudyDate")


def _valid_da(value: str) -> bool:
    try:
        datetime.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except (ValueError, TypeError):
        return False
    return len(value) == 8 and value.isdigit()


def _valid_tm(value: str) -> bool:
    return bool(re.fullmatch(r"([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,6})?)?)?", value))


def prepare_sources(datasets: list) -> list:
    """The source headers made fit to be copied by SEG and SR, as the standard allows: a
    missing Type 2 attribute becomes present and empty, a date or time that is not a valid DA
    or TM becomes empty, PatientSex other than M/F/O becomes empty, and SOPClassUID or
    SOPInstanceUID found only in the file meta is copied into the dataset."""
    for ds in datasets:
        meta = getattr(ds, "file_meta", None)
        for key, meta_key in (("SOPClassUID", "MediaStorageSOPClassUID"),
                              ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
            if not ds.get(key) and meta is not None and meta.get(meta_key):
                setattr(ds, key, meta.get(meta_key))
        for key in TYPE2:
            if key not in ds:
                setattr(ds, key, "")
        for key in _DATE_KEYS:
            value = str(ds.get(key) or "")
            if value and not _valid_da(value):
                setattr(ds, key, "")
        if str(ds.get("StudyTime") or "") and not _valid_tm(str(ds.StudyTime)):
            ds.StudyTime = ""
        if str(ds.get("PatientSex") or "") not in ("", "M", "F", "O"):
            ds.PatientSex = ""
    return datasets


def _uid_from(*parts: str) -> str:
    from pydicom.uid import generate_uid  # lazy: pydicom's SR codes, for SR only

    return generate_uid(prefix=None, entropy_srcs=["vascalc", __version__, *parts])


def segmentation(sources: list, bands: np.ndarray, *, case_id: str, config_sha: str):
    """A binary SEG, one segment per density weight present (None when there is none)."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only
    from pydicom.sr.codedict import codes  # lazy: pydicom's SR codes, for SR only

    present = [b for b in (1, 2, 3, 4) if np.any(bands == b)]
    if not present:
        return None
    algorithm = hd.AlgorithmIdentificationSequence(
        name="vascalc", version=__version__, family=codes.cid7162.HistogramAnalysis)
    descriptions = []
    for number, band in enumerate(present, start=1):
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=BAND_LABELS[band],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.PathologicCalcification,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm))
    labels = np.zeros(bands.shape, dtype=np.uint8)
    for number, band in enumerate(present, start=1):
        labels[bands == band] = number
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=_uid_from(case_id, config_sha, "seg-series"), series_number=9001,
        sop_instance_uid=_uid_from(case_id, config_sha, "seg"), instance_number=1,
        manufacturer="vascalc", manufacturer_model_name="vascalc",
        software_versions=__version__, device_serial_number="none",
        content_description="Calcium by density weight", content_label="CALCIUM")


def measurement_report(sources: list, scan: dict[str, Any], *, seg=None, case_id: str,
                       config_sha: str):
    """A Comprehensive 3D SR with the scan's headline volume and mass, and its Agatston score
    under SCT 450360000 (coronary artery calcium score) only when the headline is coronary:
    a vascular or whole-volume Agatston is not a coronary calcium score."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only
    from pydicom.sr.codedict import codes  # lazy: pydicom's SR codes, for SR only
    from pydicom.sr.coding import Code  # lazy: pydicom's SR codes, for SR only

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid_from("device"), name="vascalc", model_name=f"vascalc {__version__}"))
    context = hd.sr.ObservationContext(observer_person_context=None,
                                       observer_device_context=observer)
    measurements = []
    if scan.get("agatston") is not None and scan.get("scope") == "coronary":
        measurements.append(hd.sr.Measurement(
            name=codes.SCT.CoronaryArteryCalciumScore, value=float(scan["agatston"]),
            unit=Code("1", "UCUM", "no units"), method=codes.DCM.AgatstonScoringMethod))
    if scan.get("volume_mm3") is not None:
        measurements.append(hd.sr.Measurement(
            name=codes.DCM.CalciumVolume, value=float(scan["volume_mm3"]),
            unit=Code("mm3", "UCUM", "cubic millimeter"), method=codes.DCM.VolumeScoringMethod))
    if scan.get("mass_mg") is not None:
        measurements.append(hd.sr.Measurement(
            name=codes.DCM.CalciumMass, value=float(scan["mass_mg"]),
            unit=Code("mg", "UCUM", "milligram"), method=codes.DCM.MassScoringMethod))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid_from(case_id, "tracking"),
            identifier=f"{case_id} {(scan.get('scope') or 'whole_volume').replace('_', ' ')}"),
        algorithm_id=hd.sr.AlgorithmIdentification(name="vascalc", version=__version__),
        measurements=measurements)
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.SCT.ComputedTomography,
        imaging_measurements=[group])
    evidence = list(sources) + ([seg] if seg is not None else [])
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report,
        series_instance_uid=_uid_from(case_id, config_sha, "sr-series"), series_number=9002,
        sop_instance_uid=_uid_from(case_id, config_sha, "sr"), instance_number=1,
        manufacturer="vascalc", is_complete=True, is_final=False, is_verified=False)


def to_bytes(ds) -> bytes:

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
