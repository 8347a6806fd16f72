"""The result objects a case sends into its study: the SR and SEG the run wrote, and two made
here for viewers that show neither, the report as Encapsulated PDF and a Secondary Capture
summary page: the headline with its scope, the version's status and reader, the quality flags,
the research-use line and the first key image (IHE AI Results names SR, SEG and a displayable
summary).

Both copy the patient and study attributes of the SR (which copied them from the CT), so they
file into the same study, in series of their own. Their UIDs are derived from the SR's SOP
Instance UID: the same result gives the same objects after a restart, and a PACS that receives
one twice keeps it once.
"""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from pathlib import Path

import numpy as np

from .._version import __version__
from ..files import write_atomic
from ..outputs.dicom_out import series_description
from ..outputs.versions import ResultVersion, ledger, uid_from
from .summary_page import summary_png

#: patient and study attributes copied from the SR into the objects made here
COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
          "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")

#: the objects of a case folder, in the order they are sent
SENT_FILES = ("scores.sr.dcm", "calcium.seg.dcm", "report.pdf.dcm", "summary.sc.dcm")


def _uid(sr_uid: str, kind: str) -> str:
    return uid_from(str(sr_uid), kind)


def _version_of(case_dir: Path, sr) -> ResultVersion | None:
    uid = str(sr.SOPInstanceUID)
    return next((v for v in ledger(case_dir) if v.sr_uid == uid), None)


def _base(sr, sop_class: str, kind: str, series_number: int, modality: str,
          version: ResultVersion | None = None):
    from pydicom.dataset import Dataset, FileMetaDataset  # lazy: only the DICOM node
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian  # lazy

    ds = Dataset()
    for key in COPIED:
        setattr(ds, key, sr.get(key, ""))
    now = dt.datetime.now()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(sr.SOPInstanceUID, kind)
    ds.SeriesInstanceUID = _uid(sr.SOPInstanceUID, kind + "-series")
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, series_number, 1
    ds.Manufacturer, ds.SoftwareVersions = "vascalc", __version__
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    what = {"pdf": "report", "sc": "summary"}[kind]
    ds.SeriesDescription = series_description(what, version) if version else f"vascalc {what}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def encapsulated_pdf(sr, pdf: bytes, version: ResultVersion | None = None):
    """The report as an Encapsulated PDF instance (PS3.3 A.45) of the SR's study."""
    from pydicom.uid import EncapsulatedPDFStorage  # lazy: only the DICOM node

    ds = _base(sr, EncapsulatedPDFStorage, "pdf", 9003, "DOC", version)
    ds.ConversionType = "WSD"
    ds.AcquisitionDateTime = ""  # Type 2: the report was made, not acquired
    ds.BurnedInAnnotation = "YES"  # the report names the case, as a PDF page would
    status = f" {version.label}" if version else ""
    ds.DocumentTitle = f"vascalc calcium report{status} (research use only)"[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def secondary_capture(sr, png: bytes, version: ResultVersion | None = None):
    """A summary page as a Secondary Capture instance (RGB, PS3.3 A.8) of the SR's study."""
    from PIL import Image  # lazy: only the DICOM node
    from pydicom.uid import SecondaryCaptureImageStorage  # lazy: only the DICOM node

    rgb = np.asarray(Image.open(BytesIO(png)).convert("RGB"))
    ds = _base(sr, SecondaryCaptureImageStorage, "sc", 9004, "OT", version)
    ds.Laterality = ds.PatientOrientation = ""  # Type 2C: an unpaired body part, no orientation
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = int(rgb.shape[0]), int(rgb.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    return ds


def case_objects(case_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    """The study and the objects of a scored case folder to send, as (path, SOP Instance UID),
    made where missing (the PDF and the summary from report.pdf and key_image_1.png); ("", [])
    when the case has no SR (no report). Each header is read once."""
    import pydicom  # lazy: only the DICOM node

    sr_path = case_dir / "scores.sr.dcm"
    if not sr_path.is_file():
        return "", []
    sr = pydicom.dcmread(sr_path, stop_before_pixels=True)
    version = _version_of(case_dir, sr)
    for name, source in (("report.pdf.dcm", case_dir / "report.pdf"),
                         ("summary.sc.dcm", sr_path)):
        target = case_dir / name
        if source.is_file() and (not target.is_file()
                                 or target.stat().st_mtime < source.stat().st_mtime
                                 or not _same_version(target, sr)):
            ds = (encapsulated_pdf(sr, source.read_bytes(), version)
                  if name == "report.pdf.dcm"
                  else secondary_capture(sr, summary_png(case_dir, version), version))
            write_atomic(target, _encoded(ds))
    uids = {"scores.sr.dcm": str(sr.SOPInstanceUID), "report.pdf.dcm": _uid(sr.SOPInstanceUID, "pdf"),
            "summary.sc.dcm": _uid(sr.SOPInstanceUID, "sc")}
    items = []
    for name in SENT_FILES:
        path = case_dir / name
        if path.is_file():
            sop = uids.get(name) or str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            items.append((str(path), sop))
    return str(sr.StudyInstanceUID), items


def _same_version(target: Path, sr) -> bool:
    """Whether an object made earlier belongs to the SR's version (its UID derives from the
    SR's)."""
    import pydicom  # lazy: only the DICOM node

    try:
        ds = pydicom.dcmread(target, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (OSError, ValueError, pydicom.errors.InvalidDicomError):
        return False
    kind = "pdf" if target.name.startswith("report") else "sc"
    return str(ds.get("SOPInstanceUID", "")) == _uid(sr.SOPInstanceUID, kind)


def _encoded(ds) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
