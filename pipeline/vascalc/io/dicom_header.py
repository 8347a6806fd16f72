"""One file's DICOM header, read once: a fast parser for plain little-endian files, pydicom
for everything else.

The fast parser reads the first block of the file and walks the top-level data elements of
files whose data set is little endian (explicit or implicit VR, DICOM PS3.5 section 7; the
compressed syntaxes too, whose pixels are then decoded elsewhere), skipping
sequences (defined or undefined length, PS3.5 7.5), until the Pixel Data element, whose offset
it records for the pixel fast path. It keeps only the tags vascalc uses. Anything it does not
expect (no preamble, another transfer syntax, a character set other than ASCII/Latin-1/UTF-8,
a truncated block, a malformed element) sends the file to pydicom, which reads it with
``stop_before_pixels``. Tests check both paths give the same header.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import NotDicomError
from ..records import ScanMeta
from ..values import ecg_gated, finite_float
from ..values import header_date as _iso_date
from ..values import header_integer as _integer
from ..values import header_numbers as _numbers
from ..values import header_text as _text
from .spectral_kinds import SPECTRAL_TAGS, classify

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_FAST_SYNTAXES = {_IMPLICIT_LE, _EXPLICIT_LE}
# syntaxes whose data set is not plain little endian: the header parser declines them
_NOT_LE_DATASET = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated, big endian
_PIXEL_TAG = struct.pack("<HH", 0x7FE0, 0x0010)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_SIMPLE_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"}
_BLOCK = 1 << 16
# JPEG baseline/extended, JPEG-LS near-lossless, JPEG 2000 (lossy allowed), HTJ2K (lossy)
_LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
                   "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"}

# tag -> (keyword, VR) of every element vascalc reads from a header
_WANTED: dict[int, tuple[str, str]] = {
    0x00080005: ("SpecificCharacterSet", "CS"), 0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"), 0x00080018: ("SOPInstanceUID", "UI"),
    0x00080020: ("StudyDate", "DA"), 0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00280120: ("PixelPaddingValue", "US"), 0x00280121: ("PixelPaddingRangeLimit", "US"),
    0x00281054: ("RescaleType", "LO"), 0x00282110: ("LossyImageCompression", "CS"),
    0x00080021: ("SeriesDate", "DA"), 0x00080060: ("Modality", "CS"),
    0x00081030: ("StudyDescription", "LO"), 0x00180015: ("BodyPartExamined", "CS"),
    0x00181030: ("ProtocolName", "LO"),
    0x00080070: ("Manufacturer", "LO"), 0x0008103E: ("SeriesDescription", "LO"),
    0x00081090: ("ManufacturerModelName", "LO"), 0x00100020: ("PatientID", "LO"),
    0x00100040: ("PatientSex", "CS"), 0x00101010: ("PatientAge", "AS"),
    0x00101020: ("PatientSize", "DS"), 0x00101030: ("PatientWeight", "DS"),
    0x00180050: ("SliceThickness", "DS"), 0x00180060: ("KVP", "DS"),
    0x00180010: ("ContrastBolusAgent", "LO"), 0x00189344: ("ContrastBolusAgentPhase", "CS"),
    0x00181060: ("TriggerTime", "DS"), 0x00189037: ("CardiacSynchronizationTechnique", "CS"),
    0x00181210: ("ConvolutionKernel", "SH"), 0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"), 0x00200011: ("SeriesNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"), 0x00200037: ("ImageOrientationPatient", "DS"),
    0x00280002: ("SamplesPerPixel", "US"), 0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"), 0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"), 0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"), 0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"), 0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"), **SPECTRAL_TAGS,
}
_META_WANTED = {0x00020002: "MediaStorageSOPClassUID", 0x00020010: "TransferSyntaxUID"}


class _Fallback(Exception):
    """The fast parser declines this file; pydicom reads it."""


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


def _decode(raw: bytes, vr: str) -> Any:
    if vr in ("US", "FD"):  # FD: MonoenergeticEnergyEquivalent (io.spectral_kinds)
        size, code = (2, "H") if vr == "US" else (8, "d")
        vals = struct.unpack(f"<{len(raw) // size}{code}", raw[: len(raw) // size * size])
        return (vals[0] if len(vals) == 1 else list(vals)) if vals else ""
    text = raw.decode("utf-8", errors="replace").rstrip("\x00 ").lstrip(" ")
    if vr in ("DS", "IS", "CS") and "\\" in text:
        return [t.strip() for t in text.split("\\")]
    return text


def _skip_undefined(buf: bytes, pos: int, implicit: bool) -> int:
    """Position after a sequence of undefined length whose first item starts at ``pos``."""
    while True:
        if pos + 8 > len(buf):
            raise _Fallback("sequence runs past the block")
        group, elem, length = struct.unpack_from("<HHI", buf, pos)
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):  # sequence delimiter
            return pos
        if (group, elem) != (0xFFFE, 0xE000):
            raise _Fallback("malformed sequence item")
        if length != 0xFFFFFFFF:
            pos += length
            continue
        pos = _walk(buf, pos, implicit, None, item=True)


def _walk(buf: bytes, pos: int, implicit: bool, out: dict | None, *, item: bool = False) -> int:
    """Walk elements from ``pos``; store wanted top-level values in ``out``. Returns the
    position of the Pixel Data tag (top level) or after the item delimiter (in an item)."""
    n = len(buf)
    while True:
        if pos + 8 > n:
            raise _Fallback("header runs past the block")
        group, elem = struct.unpack_from("<HH", buf, pos)
        tag = (group << 16) | elem
        if item and tag == 0xFFFEE00D:
            return pos + 8
        if not item and tag == 0x7FE00010:
            return pos
        if implicit or group == 0xFFFE:
            (length,) = struct.unpack_from("<I", buf, pos + 4)
            vr = b"SQ" if length == 0xFFFFFFFF else None
            pos += 8
        else:
            vr = buf[pos + 4:pos + 6]
            if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
                raise _Fallback("not a value representation")
            if vr in _LONG_VRS:
                if pos + 12 > n:
                    raise _Fallback("header runs past the block")
                (length,) = struct.unpack_from("<I", buf, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from("<H", buf, pos + 6)
                pos += 8
        if length == 0xFFFFFFFF:
            if vr not in (b"SQ", b"UN"):
                raise _Fallback("undefined length outside a sequence")
            pos = _skip_undefined(buf, pos, implicit)
            continue
        if out is not None and tag in _WANTED:
            if pos + length > n:
                raise _Fallback("value runs past the block")
            keyword, want_vr = _WANTED[tag]
            value = _decode(buf[pos:pos + length], want_vr)
            if value != "":  # an empty value is a missing one, as pydicom reads it
                out[keyword] = value
        pos += length


def _fast_values(path: str) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    with open(path, "rb") as fh:
        buf = fh.read(_BLOCK)
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise _Fallback("no preamble")
    meta: dict[str, Any] = {}
    pos = 132
    while pos + 8 <= len(buf):
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", buf, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            pos += 8
        tag = (group << 16) | elem
        if tag in _META_WANTED:
            meta[_META_WANTED[tag]] = _decode(buf[pos:pos + length], "UI")
        pos += length
    syntax = meta.get("TransferSyntaxUID", "")
    if not syntax or syntax in _NOT_LE_DATASET:
        raise _Fallback(f"transfer syntax {syntax!r}")
    vals: dict[str, Any] = {}
    pix = _walk(buf, pos, syntax == _IMPLICIT_LE, vals)
    charset = vals.get("SpecificCharacterSet", "")
    if isinstance(charset, list) or charset not in _SIMPLE_CHARSETS:
        raise _Fallback(f"character set {charset!r}")
    if syntax not in _FAST_SYNTAXES:
        return meta, vals, -1, 0  # encapsulated (compressed) pixels: decoded elsewhere
    if syntax == _IMPLICIT_LE:
        if pix + 8 > len(buf):
            raise _Fallback("pixel element past the block")
        (length,) = struct.unpack_from("<I", buf, pix + 4)
        offset = pix + 8
    else:
        if pix + 12 > len(buf) or buf[pix + 4:pix + 6] not in (b"OW", b"OB"):
            raise _Fallback("unexpected pixel element")
        (length,) = struct.unpack_from("<I", buf, pix + 8)
        offset = pix + 12
    return meta, vals, offset, length


def _pydicom_values(path: str) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    with warnings.catch_warnings():
        # pydicom warns about each malformed value; vascalc checks the values it uses and
        # names the file itself
        warnings.simplefilter("ignore")
        return _pydicom_values_inner(path)


def _pydicom_values_inner(path: str) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    import pydicom  # lazy: pydicom, only where the fast path cannot read the file
    from pydicom.errors import InvalidDicomError  # lazy: pydicom, as above

    with open(path, "rb") as fp:
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            # no preamble: read it when it starts like a little-endian data set (a group 0002
            # or 0008 tag, as older exports write them), else it is not DICOM
            fp.seek(0)
            head = fp.read(4)
            if len(head) < 4 or struct.unpack("<H", head[:2])[0] not in (0x0002, 0x0008):
                raise NotDicomError("not a DICOM file (no DICM prefix, no data set at the "
                                    "start)", path=path) from None
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            except Exception as err:  # noqa: BLE001 - any parse failure: not readable DICOM
                raise NotDicomError(f"not a readable DICOM file ({err.__class__.__name__})",
                                    path=path) from None
        except (EOFError, struct.error, ValueError, OSError) as err:
            raise NotDicomError(f"not a readable DICOM file ({err.__class__.__name__})",
                                path=path) from None
        syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
        if not syntax and ds.get("SOPClassUID"):  # no meta header: implicit VR LE (PS3.5 A.1)
            syntax = _IMPLICIT_LE if ds.is_implicit_VR else _EXPLICIT_LE
        offset, length = -1, 0
        if syntax in _FAST_SYNTAXES:
            start = fp.tell()
            head = fp.read(12)
            if len(head) >= 8 and head[:4] == _PIXEL_TAG:
                if syntax == _IMPLICIT_LE:
                    offset, length = start + 8, struct.unpack("<I", head[4:8])[0]
                elif len(head) == 12 and head[4:6] in (b"OW", b"OB"):
                    offset, length = start + 12, struct.unpack("<I", head[8:12])[0]
    meta = {"TransferSyntaxUID": syntax,
            "MediaStorageSOPClassUID": str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")
                                           or "")}
    vals: dict[str, Any] = {}
    for keyword, _vr in _WANTED.values():
        try:
            v = ds.get(keyword, None)
        except Exception:  # noqa: BLE001 - a malformed value reads as missing
            v = None
        if v is None or v == "":
            continue
        if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
            vals[keyword] = [str(x) for x in v]
        elif isinstance(v, int) and not isinstance(v, bool):
            vals[keyword] = v
        else:
            vals[keyword] = str(v)
    return meta, vals, offset, length


def read_header(path: str | os.PathLike, *, fast: bool = True) -> DicomHeader:
    """Read one file's header. Raises NotDicomError for files that are not readable DICOM
    and OSError for unreadable ones."""
    path = str(path)
    try:
        if not fast:
            raise _Fallback("fast parser off")
        meta, v, offset, length = _fast_values(path)
    except (_Fallback, struct.error, UnicodeDecodeError):
        meta, v, offset, length = _pydicom_values(path)
    syntax = meta.get("TransferSyntaxUID", "")
    size, weight = finite_float(v.get("PatientSize")), finite_float(v.get("PatientWeight"))
    kind, kev, tin, material, kind_source = classify(v)
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
                            v.get("TriggerTime")), series_kind=kind, energy_kev=kev,
        tin_filter_mm=tin, material=material, series_kind_source=kind_source,
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
    image_type = v.get("ImageType") or []
    image_type = image_type if isinstance(image_type, list) else [image_type]
    return DicomHeader(
        path=path,
        sop_class_uid=_text(v.get("SOPClassUID")) or meta.get("MediaStorageSOPClassUID", ""),
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
    )
