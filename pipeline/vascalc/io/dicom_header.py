"""One file's DICOM header, read once: a fast parser for plain little-endian files, pydicom
for everything else.

The fast parser reads the first block of the file and walks the top-level data elements of
files whose data set is little endian (explicit or implicit VR, DICOM PS3.5 section 7; the
compressed syntaxes too, whose pixels are then decoded elsewhere), skipping
sequences (defined or undefined length, PS3.5 7.5), until the Pixel Data element, whose offset
it records for the pixel fast path. It keeps only the tags vascalc uses. Anything it does not
expect (no preamble, another transfer syntax, a character set other than ASCII/Latin-1/UTF-8,
a truncated block, a malformed element) sends the file to pydicom, which reads it with
``stop_before_pixels``. Tests check both paths give the same header. Both live in
:mod:`vascalc.io.dicom_parse`; this module builds the record. A file cut inside its header
(its file meta, its SOP Class UID, any element before Pixel Data) is marked ``truncated``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ..records import ScanMeta
from ..values import ecg_gated, finite_float
from ..values import header_date as _iso_date
from ..values import header_integer as _integer
from ..values import header_numbers as _numbers
from ..values import header_text as _text
from .dicom_parse import (  # noqa: F401 - _FAST_SYNTAXES and IMAGE_SOP_CLASSES re-exported
    _FAST_SYNTAXES,
    _LOSSY_SYNTAXES,
    IMAGE_SOP_CLASSES,
    _Fallback,
    _fast_values,
    _pydicom_values,
    _Truncated,
)


@dataclass(frozen=True, kw_only=True)
class DicomHeader:
    """What one file's header says, read once (stop_before_pixels)."""

    path: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    modality: str
    image_type: tuple[str, ...]
    rows: int
    cols: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    n_frames: int
    slope: float | None
    intercept: float | None
    transfer_syntax: str
    pixel_offset: int  # file offset of the pixel bytes for the fast path, -1 if not usable
    pixel_length: int
    series_number: int | None
    meta: ScanMeta
    sop_instance_uid: str = ""
    acquisition_number: int | None = None
    instance_number: int | None = None
    padding: tuple[int, int] | None = None  # stored values [low, high] that are padding
    rescale_type: str = ""
    lossy: bool = False  # LossyImageCompression 01, or a syntax that allows lossy coding
    frame: int | None = None  # the frame of a multi-frame file this header describes
    frame_of_reference: str = ""  # FrameOfReferenceUID: one spatial frame per series
    #: SeriesDate and AcquisitionDate as written: one series is one acquisition date
    dates: tuple[str, str] = ("", "")
    #: the file ends inside its header (a truncated copy): it cannot be classified
    truncated: bool = False

    @property
    def is_localizer(self) -> bool:
        """ImageType names a localizer or a projection image (topogram, scout)."""
        words = {w for t in self.image_type for w in t.upper().replace("_", " ").split()}
        return bool(words & {"LOCALIZER", "PROJECTION", "TOPOGRAM", "SCOUT", "SURVIEW"})


def has_dicm_preamble(path: str | os.PathLike) -> bool:
    """Whether a regular file carries the DICOM Part 10 marker 'DICM' after its 128-byte
    preamble (PS3.10 7.1). FIFOs and devices are never opened."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def read_header(path: str | os.PathLike, *, fast: bool = True) -> DicomHeader:
    """Read one file's header. Raises NotDicomError for files that are not readable DICOM
    and OSError for unreadable ones."""
    path = str(path)
    truncated = no_pixels = False
    try:
        if not fast:
            raise _Fallback("fast parser off")
        meta, v, offset, length = _fast_values(path)
    except _Truncated:
        truncated = True  # what pydicom can read of it is kept; the file is not a slice
        meta, v, offset, length = _pydicom_values(path)
    except (_Fallback, struct.error, UnicodeDecodeError):
        meta, v, offset, length = _pydicom_values(path)
        truncated, no_pixels = bool(meta.get("_cut")), bool(meta.get("_no_pixels"))
    syntax = meta.get("TransferSyntaxUID", "")
    size = finite_float(v.get("PatientSize"))
    weight = finite_float(v.get("PatientWeight"))
    scan = ScanMeta(
        patient_id=_text(v.get("PatientID")),
        study_instance_uid=_text(v.get("StudyInstanceUID")),
        series_instance_uid=_text(v.get("SeriesInstanceUID")),
        study_date=_iso_date(_text(v.get("StudyDate")) or _text(v.get("SeriesDate"))),
        manufacturer=_text(v.get("Manufacturer")),
        model=_text(v.get("ManufacturerModelName")),
        kvp=finite_float(v.get("KVP")),
        kernel=_text(v.get("ConvolutionKernel")).replace("\\", " "),
        slice_thickness_mm=finite_float(v.get("SliceThickness")),
        patient_size_m=size if size else None,
        patient_weight_kg=weight if weight else None,
        patient_age=_text(v.get("PatientAge")),
        patient_sex=_text(v.get("PatientSex")),
        series_description=_text(v.get("SeriesDescription")),
        study_description=_text(v.get("StudyDescription")),
        protocol_name=_text(v.get("ProtocolName")),
        body_part=_text(v.get("BodyPartExamined")).upper(),
        transfer_syntax=syntax,
        contrast_agent=_text(v.get("ContrastBolusAgent")),
        contrast_phase=_text(v.get("ContrastBolusAgentPhase")).upper(),
        ecg_gated=ecg_gated(_text(v.get("CardiacSynchronizationTechnique")),
                            v.get("TriggerTime")),
    )
    pixel_rep = _integer(v.get("PixelRepresentation"), 0)

    def _signed(x: int) -> int:  # US/SS by PixelRepresentation (PS3.3 C.7.5.1.1.2)
        return x - 65536 if pixel_rep == 1 and x >= 32768 else x

    padding = None
    if isinstance(v.get("PixelPaddingValue"), int):
        pad = _signed(v["PixelPaddingValue"])
        limit = _signed(v["PixelPaddingRangeLimit"]) \
            if isinstance(v.get("PixelPaddingRangeLimit"), int) else pad
        padding = (min(pad, limit), max(pad, limit))
    image_type = v.get("ImageType")
    if image_type is None or image_type == "":
        image_type = []
    elif not isinstance(image_type, list):
        image_type = [image_type]
    sop_class = _text(v.get("SOPClassUID")) or meta.get("MediaStorageSOPClassUID", "")
    return DicomHeader(
        path=path,
        sop_class_uid=sop_class,
        series_uid=scan.series_instance_uid,
        study_uid=scan.study_instance_uid,
        modality=_text(v.get("Modality")).upper(),
        image_type=tuple(str(t).strip() for t in image_type),
        rows=_integer(v.get("Rows"), 0),
        cols=_integer(v.get("Columns"), 0),
        position=_numbers(v.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_numbers(v.get("ImageOrientationPatient"), 6),
        pixel_spacing=_numbers(v.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        bits_allocated=_integer(v.get("BitsAllocated"), 0),
        bits_stored=_integer(v.get("BitsStored"), 0),
        pixel_representation=pixel_rep,
        samples_per_pixel=_integer(v.get("SamplesPerPixel"), 1),
        photometric=_text(v.get("PhotometricInterpretation")).upper(),
        n_frames=_integer(v.get("NumberOfFrames"), 1),
        slope=finite_float(v.get("RescaleSlope")),
        intercept=finite_float(v.get("RescaleIntercept")),
        transfer_syntax=syntax,
        pixel_offset=offset if syntax in _FAST_SYNTAXES else -1,
        pixel_length=length,
        series_number=_integer(v.get("SeriesNumber"), -1) if "SeriesNumber" in v else None,
        meta=scan,
        sop_instance_uid=_text(v.get("SOPInstanceUID")),
        acquisition_number=_integer(v.get("AcquisitionNumber"), -1)
        if "AcquisitionNumber" in v else None,
        instance_number=_integer(v.get("InstanceNumber"), -1) if "InstanceNumber" in v else None,
        padding=padding,
        rescale_type=_text(v.get("RescaleType")).upper(),
        lossy=_text(v.get("LossyImageCompression")) == "01" or syntax in _LOSSY_SYNTAXES,
        frame_of_reference=_text(v.get("FrameOfReferenceUID")),
        dates=(_text(v.get("SeriesDate")), _text(v.get("AcquisitionDate"))),
        truncated=truncated or (no_pixels and sop_class in IMAGE_SOP_CLASSES),
    )
