"""DICOM results for PACS, made with highdicom: a SEG of the calcium and a Comprehensive 3D SR
(TID 1500 Measurement Report) of the scores.

Both copy the patient and study identity of the source images (PACS files results by it).
Codes are the concepts DICOM defines: SCT 450360000 coronary artery calcium score with DCM
112055 Agatston scoring method; DCM 122660 calcium volume with 112056 volume scoring method;
DCM 122661 calcium mass with 112057 mass scoring method; units in UCUM (PS3.16 CID 7464,
TID 1500/1501). SEG segments: SCT 49755003 morphologically abnormal structure / SCT 18115005
pathologic calcification, one segment per density weight (PS3.3 C.8.20).

After a reader's review (``vascalc rescore``) the SEG has one segment per label instead, and
the SR one measurement group per coronary artery, each with its finding site: SCT 3227004 left
main, 59438005 anterior descending branch of the left coronary artery, 57396003 circumflex
coronary artery, 13647002 right coronary artery (DICOM PS3.16 CID 3015, Coronary Arteries).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
import warnings
from typing import Any

import numpy as np

from .._version import __version__
from .versions import ResultVersion, uid_from

#: SCT codes of the coronary arteries a reader labels (PS3.16 CID 3015)
ARTERY_CODES = {"LM": ("3227004", "Left Main Coronary Artery"),
                "LAD": ("59438005", "Anterior Descending Branch of Left Coronary Artery"),
                "LCX": ("57396003", "Circumflex Coronary Artery"),
                "RCA": ("13647002", "Right Coronary Artery")}

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
    SOPInstanceUID found only in the file meta is copied into the dataset; every top-level text
    value is cut to its VR's length (PS3.5 Table 6.2-1: LO and each PN component group 64
    characters, SH 16, CS 16, AE 16, AS 4, ST 1024, LT 10240) and loses the control characters
    its VR does not allow (NUL and the other C0 controls but ESC; LT, ST and UT keep TAB, LF,
    FF and CR); an AS that is not nnnD/W/M/Y becomes empty, a CS keeps its upper-case letters,
    digits, spaces and underscores; so that an invalid PN or LO (601 characters, NUL bytes) is
    never copied into an SR or SEG that a validator (dciodvfy) rejects (#35 item 14)."""
    limits = {"AE": 16, "AS": 4, "CS": 16, "LO": 64, "PN": 64, "SH": 16, "ST": 1024,
              "LT": 10240, "UC": None, "UT": None}
    text_block = {"LT", "ST", "UT"}

    def fit(value: str, vr: str) -> str:
        keep = "\x1b\t\n\x0c\r" if vr in text_block else "\x1b"
        value = "".join(c for c in value if c in keep or not (c < " " or c == "\x7f"))
        if vr == "AS":  # nnnD, nnnW, nnnM or nnnY, or nothing ('67 years' was cut to '67 y')
            return value if re.fullmatch(r"\d{3}[DWMY]", value) else ""
        if vr == "CS":  # upper-case letters, digits, space and underscore
            value = re.sub(r"[^A-Z0-9 _]", "", value.upper())
        limit = limits[vr]
        if limit is None:
            return value
        if vr == "PN":  # alphabetic=ideographic=phonetic: each group has the limit
            return "=".join(g[:limit] for g in value.split("="))
        return value[:limit]

    for ds in datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns of the invalid values being fitted
            for elem in list(ds):
                if elem.VR not in limits or elem.value is None or elem.value == "":
                    continue
                many = type(elem.value).__name__ == "MultiValue"
                values = [str(v) for v in elem.value] if many else [str(elem.value)]
                fitted = [fit(v, elem.VR) for v in values]
                if fitted != values:
                    elem.value = fitted if many else fitted[0]
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


def _artery(name: str):
    from pydicom.sr.coding import Code  # lazy: pydicom's SR codes, for SR only

    code = ARTERY_CODES.get(name)
    return None if code is None else Code(code[0], "SCT", code[1])


def segmentation(sources: list, bands: np.ndarray, *, version: ResultVersion,
                 reader_regions: tuple[np.ndarray, tuple[str, ...]] | None = None):
    """A binary SEG, one segment per density weight present (None when there is none); with
    ``reader_regions`` (each voxel's label index, 0 = none, and the label names) one segment
    per reader label with calcium, coronary arteries coded as their anatomic region."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only
    from pydicom.sr.codedict import codes  # lazy: pydicom's SR codes, for SR only

    present: list[tuple[int | str, str, Any]]
    if reader_regions is None:
        present = [(b, BAND_LABELS[b], bands == b) for b in (1, 2, 3, 4)]
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    else:
        index, names = reader_regions
        present = [(name, name, (bands > 0) & (index == i))
                   for i, name in enumerate(names, start=1)]
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    present = [p for p in present if np.any(p[2])]
    if not present:
        return None
    algorithm = hd.AlgorithmIdentificationSequence(
        name="vascalc", version=__version__, family=codes.cid7162.HistogramAnalysis)
    descriptions = []
    labels = np.zeros(bands.shape, dtype=np.uint8)
    for number, (key, label, mask) in enumerate(present, start=1):
        site = _artery(str(key)) if reader_regions is not None else None
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.PathologicCalcification,
            algorithm_type=algorithm_type, algorithm_identification=algorithm,
            anatomic_regions=[site] if site is not None else None))
        labels[mask] = number
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=version.uid("seg-series"), series_number=9001,
        sop_instance_uid=version.uid("seg"), instance_number=1,
        manufacturer="vascalc", manufacturer_model_name="vascalc",
        software_versions=__version__, device_serial_number="none",
        content_description="Calcium by density weight" if reader_regions is None
        else "Calcium by reader label", content_label="CALCIUM")
    seg.SeriesDescription = series_description("calcium SEG", version)
    return seg


def series_description(what: str, version: ResultVersion) -> str:
    """A result series' SeriesDescription (LO, at most 64 characters): what it holds and which
    version, so a PACS's series list tells a draft from a reader's final.

    >>> from vascalc.outputs.versions import ResultVersion
    >>> series_description("calcium SR", ResultVersion(number=2, key="k", status="final"))
    'vascalc calcium SR final v2'
    """
    return f"vascalc {what} {version.status} v{version.number}"[:64]


def _person_name(text: str) -> str:
    """A reader's name as a DICOM PN value (no backslash or control characters, at most 64)."""
    clean = "".join(ch for ch in text if ch.isprintable() and ch not in "\\=").strip()[:60]
    clean = clean or "unknown reader"
    return clean if "^" in clean else clean + "^"  # the name as the family name component


def _dt(iso: str) -> str:
    """An ISO 8601 UTC time as a DICOM DT value (YYYYMMDDHHMMSS), '' when unreadable."""
    try:
        when = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%S") + "+0000"


def measurement_report(sources: list, scan: dict[str, Any], *, seg=None, case_id: str,
                       version: ResultVersion, flags: tuple[str, ...] = (),
                       vessels: list[dict[str, Any]] | None = None,
                       organization: str = "unspecified"):
    """A Comprehensive 3D SR with the scan's headline volume and mass, and its Agatston score
    under SCT 450360000 (coronary artery calcium score) only when the headline is coronary:
    a vascular or whole-volume Agatston is not a coronary calcium score. ``vessels`` (region
    rows of a reader's coronary labels) add one measurement group per artery.

    The headline group names its scope (its tracking identifier and a coded scope evaluation):
    only a coronary or vascular scope is filed as pathologic calcification; a whole-volume or
    bone-excluded number is all calcium in the field of view, and a bone-dominated one is not
    filed as a measurement at all. ``flags`` (the scan's quality flags) are carried as coded
    evaluations. ``version`` gives the UIDs, the SeriesDescription, the predecessor (PS3.3
    C.17.2.3) and, for a reader's final, COMPLETE / FINAL / VERIFIED with the reader as the
    verifying observer at the time of the done mark."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only
    from pydicom.sr.codedict import codes  # lazy: pydicom's SR codes, for SR only

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid_from("device"), name="vascalc", model_name=f"vascalc {__version__}"))
    context = hd.sr.ObservationContext(observer_person_context=None,
                                       observer_device_context=observer)
    scope = str(scan.get("scope") or "whole_volume")
    vascular = scope in ("coronary", "vascular")
    dominated = "bone_dominated" in flags and not vascular
    measurements = [] if dominated else _measurements(scan, coronary=scope == "coronary")
    measurements += _unlabelled_measurements(scan)
    evaluations = [hd.sr.QualitativeEvaluation(_vc("scope", "Scope of the measurements"),
                                               _vc(scope, SCOPE_WORDS.get(scope, scope)))]
    evaluations += [hd.sr.QualitativeEvaluation(_vc("quality-flag", "Quality flag"),
                                                _vc(_short(f), f[:64])) for f in flags]
    evaluations += _read_evaluations(scan)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=version.uid("tracking"),
            identifier=f"{case_id} {SCOPE_WORDS.get(scope, scope)}"[:64]),
        algorithm_id=hd.sr.AlgorithmIdentification(name="vascalc", version=__version__),
        finding_type=codes.SCT.PathologicCalcification if vascular else None,
        measurements=measurements or None, qualitative_evaluations=evaluations)
    groups = [group]
    for v in vessels or []:
        site = _artery(v["region"])
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=version.uid("tracking-" + str(v["region"])),
                identifier=f"{case_id} {v['region']}"),
            algorithm_id=hd.sr.AlgorithmIdentification(name="vascalc", version=__version__),
            finding_type=codes.SCT.PathologicCalcification,
            finding_sites=[hd.sr.FindingSite(anatomic_location=site)] if site else None,
            measurements=_measurements(v, coronary=True)))
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.SCT.ComputedTomography,
        imaging_measurements=groups)
    evidence = list(sources) + ([seg] if seg is not None else [])
    final = version.status in ("final", "amended")
    predecessors = None
    if version.predecessor:
        from pydicom.dataset import Dataset  # lazy: pydicom, for SR only

        pre = Dataset()
        pre.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR, as written
        pre.SOPInstanceUID = version.predecessor["sr_uid"]
        pre.StudyInstanceUID = version.predecessor["study_uid"]
        pre.SeriesInstanceUID = version.predecessor["sr_series_uid"]
        predecessors = [pre]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report,
        series_instance_uid=version.sr_series_uid, series_number=9002,
        sop_instance_uid=version.sr_uid, instance_number=1,
        manufacturer="vascalc", is_complete=True, is_final=final, is_verified=final,
        verifying_observer_name=_person_name(version.reader) if final else None,
        verifying_organization=organization[:64] if final else None,
        previous_versions=predecessors)
    if final and _dt(version.verified_at):
        sr.VerifyingObserverSequence[0].VerificationDateTime = _dt(version.verified_at)
    sr.SeriesDescription = series_description("calcium SR", version)
    sr.CodingSchemeIdentificationSequence = [_private_scheme()]
    return sr


def _private_scheme():
    """The declaration of vascalc's private coding scheme (PS3.3 C.12.1.1.3.1: a private
    scheme used in the instance is identified in the Coding Scheme Identification Sequence)."""
    from pydicom.dataset import Dataset  # lazy: pydicom, for SR only

    item = Dataset()
    item.CodingSchemeDesignator = "99VASCALC"
    item.CodingSchemeName = "vascalc result annotations"
    item.CodingSchemeResponsibleOrganization = "vascalc project"
    return item


#: the scopes in words, as the SR's tracking identifier and scope evaluation name them
SCOPE_WORDS = {"coronary": "coronary artery calcium",
               "vascular": "vascular calcification (declared vascular regions)",
               "bone_excluded": "all calcium in the field of view, bone excluded; not vascular",
               "whole_volume": "all calcium in the field of view, bone included; not vascular"}


def _short(code: str) -> str:
    """A code value of at most 16 characters (SH) for a longer name: its start and 4 hex
    digits of its sha256, so two names never share one."""
    if len(code) <= 16:
        return code
    return f"{code[:11]}-{hashlib.sha256(code.encode()).hexdigest()[:4]}"


def _vc(value: str, meaning: str):
    """A vascalc code (private coding scheme 99VASCALC, PS3.16 8.2: a private scheme's
    designator starts with 99)."""
    from pydicom.sr.coding import Code  # lazy: pydicom's SR codes, for SR only

    return Code(value[:16], "99VASCALC", meaning[:64])


def _read_evaluations(scan: dict[str, Any]) -> list:
    """What a reader left unlabelled, and whether the reader confirmed it is not coronary."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only

    if not scan.get("reader"):
        return []
    out = [hd.sr.QualitativeEvaluation(
        _vc("review-done", "Reader marked the case done"),
        _vc("yes" if scan.get("review_done") else "no",
            "yes" if scan.get("review_done") else "no"))]
    confirmed = scan.get("rest_confirmed_not_coronary")
    if confirmed is not None:
        out.append(hd.sr.QualitativeEvaluation(
            _vc("rest-confirmed", "Reader confirmed unlabelled calcium is not coronary"),
            _vc("yes" if confirmed else "no", "yes" if confirmed else "no")))
    return out


def _unlabelled_measurements(scan: dict[str, Any]) -> list:
    """The Agatston score and volume of the calcium a reader left unlabelled (private codes:
    DICOM defines no concept for them)."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only
    from pydicom.sr.coding import Code  # lazy: pydicom's SR codes, for SR only

    out = []
    if scan.get("reader") and scan.get("unlabelled_agatston") is not None:
        out.append(hd.sr.Measurement(
            name=_vc("unlabelled-ag", "Agatston score of calcium left unlabelled"),
            value=float(scan["unlabelled_agatston"]), unit=Code("1", "UCUM", "no units")))
    if scan.get("reader") and scan.get("unlabelled_volume_mm3") is not None:
        out.append(hd.sr.Measurement(
            name=_vc("unlabelled-vol", "Volume of calcium left unlabelled"),
            value=float(scan["unlabelled_volume_mm3"]),
            unit=Code("mm3", "UCUM", "cubic millimeter")))
    return out


def _measurements(row: dict[str, Any], *, coronary: bool) -> list:
    """Agatston (as a coronary calcium score, only when ``coronary``), volume and mass."""
    import highdicom as hd  # lazy: highdicom, for SEG/SR only
    from pydicom.sr.codedict import codes  # lazy: pydicom's SR codes, for SR only
    from pydicom.sr.coding import Code  # lazy: pydicom's SR codes, for SR only

    out = []
    if row.get("agatston") is not None and coronary:
        out.append(hd.sr.Measurement(
            name=codes.SCT.CoronaryArteryCalciumScore, value=float(row["agatston"]),
            unit=Code("1", "UCUM", "no units"), method=codes.DCM.AgatstonScoringMethod))
    if row.get("volume_mm3") is not None:
        out.append(hd.sr.Measurement(
            name=codes.DCM.CalciumVolume, value=float(row["volume_mm3"]),
            unit=Code("mm3", "UCUM", "cubic millimeter"), method=codes.DCM.VolumeScoringMethod))
    if row.get("mass_mg") is not None:
        out.append(hd.sr.Measurement(
            name=codes.DCM.CalciumMass, value=float(row["mass_mg"]),
            unit=Code("mg", "UCUM", "milligram"), method=codes.DCM.MassScoringMethod))
    return out


def to_bytes(ds) -> bytes:

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
