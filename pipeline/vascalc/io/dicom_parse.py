"""The fast DICOM header parser and its pydicom fallback (the reading half of
:mod:`vascalc.io.dicom_header`, which builds the header record from what they return).

The fast parser reads the first block of the file and walks the top-level data elements of
files whose data set is little endian (explicit or implicit VR, DICOM PS3.5 section 7; file
meta PS3.10 7.1), skipping sequences (PS3.5 7.5), until the Pixel Data element. When the block
is the whole file and an element runs past its end, the file is a cut copy
(:class:`_Truncated`). pydicom stops silently at the end of a cut file: its reading says
whether a value came out shorter than its length (``_cut``) and whether Pixel Data follows
the data set (``_no_pixels``, cut for an image class, whole for others).
"""

from __future__ import annotations

import struct
import warnings
from typing import Any

from ..errors import NotDicomError

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
    0x00080022: ("AcquisitionDate", "DA"), 0x00200052: ("FrameOfReferenceUID", "UI"),
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
    0x00281053: ("RescaleSlope", "DS"),
}
#: the image storage classes vascalc scores (CT, enhanced CT, legacy converted enhanced CT):
#: such a file that ends before its Pixel Data is a cut one
IMAGE_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
                               "1.2.840.10008.5.1.4.1.1.2.2"})
_META_WANTED = {0x00020002: "MediaStorageSOPClassUID", 0x00020010: "TransferSyntaxUID"}


class _Fallback(Exception):
    """The fast parser declines this file; pydicom reads it."""


class _PastEnd(_Fallback):
    """An element runs past the bytes read (the block, or the whole file when it is shorter)."""


class _NoPixels(_Fallback):
    """The data set ends cleanly before any Pixel Data: whole for a non-image object, cut for
    an image (pydicom reads it and says so; read_header decides by the SOP class)."""


class _Truncated(_Fallback):
    """The whole file was read and it ends inside an element of its header: a truncated copy.
    pydicom still reads what it can; the header is marked ``truncated``."""


def _decode(raw: bytes, vr: str) -> Any:
    if vr == "US":
        n = len(raw) // 2
        vals = struct.unpack(f"<{n}H", raw[: 2 * n])
        return vals[0] if n == 1 else list(vals)
    text = raw.decode("utf-8", errors="replace").rstrip("\x00 ").lstrip(" ")
    if vr in ("DS", "IS", "CS") and "\\" in text:
        return [t.strip() for t in text.split("\\")]
    return text


def _skip_undefined(buf: bytes, pos: int, implicit: bool) -> int:
    """Position after a sequence of undefined length whose first item starts at ``pos``."""
    while True:
        if pos + 8 > len(buf):
            raise _PastEnd("sequence runs past the block")
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
        if pos == n and not item:
            raise _NoPixels("no Pixel Data: the data set ends at an element's end")
        if pos + 8 > n:
            raise _PastEnd("header runs past the block")
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
                    raise _PastEnd("header runs past the block")
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
                raise _PastEnd("value runs past the block")
            keyword, want_vr = _WANTED[tag]
            value = _decode(buf[pos:pos + length], want_vr)
            if value != "":  # an empty value is a missing one, as pydicom reads it
                out[keyword] = value
        pos += length


def _fast_values(path: str) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    with open(path, "rb") as fh:
        buf = fh.read(_BLOCK)
    whole = len(buf) < _BLOCK  # the block is the whole file: running past it is a cut
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _Fallback("no preamble")
    meta: dict[str, Any] = {}
    pos = 132
    while True:  # the file meta group (PS3.10 7.1), explicit VR little endian
        if pos + 8 > len(buf):  # cut inside the meta, or nothing after it
            raise _Truncated("file meta cut") if whole else _Fallback("meta past the block")
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(buf):
                raise _Truncated("file meta cut") if whole else _Fallback("meta past the block")
            (length,) = struct.unpack_from("<I", buf, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            pos += 8
        if pos + length > len(buf):
            raise _Truncated("file meta cut") if whole else _Fallback("meta past the block")
        tag = (group << 16) | elem
        if tag in _META_WANTED:
            meta[_META_WANTED[tag]] = _decode(buf[pos:pos + length], "UI")
        pos += length
    syntax = meta.get("TransferSyntaxUID", "")
    if not syntax or syntax in _NOT_LE_DATASET:
        raise _Fallback(f"transfer syntax {syntax!r}")
    vals: dict[str, Any] = {}
    try:
        pix = _walk(buf, pos, syntax == _IMPLICIT_LE, vals)
    except _PastEnd as err:
        raise (_Truncated(str(err)) if whole else err) from None
    charset = vals.get("SpecificCharacterSet", "")
    if isinstance(charset, list) or charset not in _SIMPLE_CHARSETS:
        raise _Fallback(f"character set {charset!r}")
    if syntax not in _FAST_SYNTAXES:
        return meta, vals, -1, 0  # encapsulated (compressed) pixels: decoded elsewhere
    if pix + (8 if syntax == _IMPLICIT_LE else 12) > len(buf) and whole:
        raise _Truncated("cut inside the Pixel Data element's header")
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
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on a cut file
            # (BytesLengthException on a file cut inside its meta crashed the whole tree)
            raise NotDicomError(f"not a readable DICOM file ({err.__class__.__name__})",
                                path=path) from None
        # pydicom stops silently at the end of a cut file: a value shorter than its length
        # says the file ends inside it (looked at before any value is converted)
        cut = any(type(e).__name__ == "RawDataElement" and e.value is not None
                  and getattr(e, "length", 0) != 0xFFFFFFFF
                  and len(e.value) < getattr(e, "length", 0) for e in ds.elements())
        syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
        if not syntax and ds.get("SOPClassUID"):  # no meta header: implicit VR LE (PS3.5 A.1)
            syntax = _IMPLICIT_LE if ds.is_implicit_VR else _EXPLICIT_LE
        offset, length = -1, 0
        start = fp.tell()
        head = fp.read(12)
        no_pixels = head[:4] != _PIXEL_TAG  # no Pixel Data after the data set
        if syntax in _FAST_SYNTAXES:
            if len(head) >= 8 and head[:4] == _PIXEL_TAG:
                if syntax == _IMPLICIT_LE:
                    offset, length = start + 8, struct.unpack("<I", head[4:8])[0]
                elif len(head) == 12 and head[4:6] in (b"OW", b"OB"):
                    offset, length = start + 12, struct.unpack("<I", head[8:12])[0]
    meta = {"TransferSyntaxUID": syntax,
            "MediaStorageSOPClassUID": str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")
                                           or ""),
            "_cut": cut, "_no_pixels": no_pixels}
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
