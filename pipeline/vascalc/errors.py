"""One exception hierarchy for vascalc.

Every error carries a stable ``code`` (a public interface: it is written to the ``error_code``
column and listed in the docs) and a message that names the thing, the value received, what
is allowed and what to do, after pydicom's ``errors.py`` and highdicom's ``volume.py``.
"""

from __future__ import annotations


class VascalcError(Exception):
    """Any vascalc error (base class; ``code`` is stable, ``hint`` says what to do).

    Examples
    --------
    >>> err = NotDicomError("not a DICOM file", path="scans/x.dcm")
    >>> err.code, str(err)
    ('NOT_DICOM', 'scans/x.dcm: not a DICOM file -> remove the file or point the case at the series folder')
    """

    code = "VASCALC_ERROR"
    hint = ""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.path = path
        if hint is not None:
            self.hint = hint
        full = message if path is None else f"{path}: {message}"
        if self.hint:
            full = f"{full} -> {self.hint}"
        super().__init__(full)


# --- usage and configuration (exit code 2: nothing was run) -----------------------------
class UsageError(VascalcError):
    """Wrong command-line use; nothing was run."""

    code = "USAGE"
    hint = "see vascalc run --help"


class ConfigError(UsageError):
    """The config file is unreadable or has an unknown key or a bad value."""

    code = "CONFIG_INVALID"
    hint = "fix the config file; every key is documented in `vascalc config show default`"


class ManifestError(UsageError):
    """The manifest is unreadable, misses a column, or has a bad row."""

    code = "MANIFEST_INVALID"
    hint = "fix the manifest row named above (columns: case_id, path, height_cm, weight_kg, ...)"


class NoInputError(UsageError):
    """The input does not exist or holds no CT series."""

    code = "NO_INPUT"
    hint = "point vascalc at a folder that holds a CT DICOM series, or at a manifest CSV"


class ResultError(UsageError):
    """A case's result.json is missing, unreadable, or of another vascalc's schema version."""

    code = "RESULT_INVALID"
    hint = "rerun the case into this output folder (vascalc run ... --force) with this vascalc"


class OutputError(UsageError):
    """The output folder cannot be written (not a folder, no permission, disk full)."""

    code = "OUTPUT_UNWRITABLE"
    hint = ("choose a writable --out folder (or free space); finished cases are kept and a "
            "rerun reuses them")


class ReviewError(UsageError):
    """review, rescore or agreement cannot use a case: its files changed since the run,
    scoring it again finds other lesions, or its result cannot be read."""

    code = "REVIEW_UNAVAILABLE"
    hint = "run vascalc run again over the same inputs with this vascalc, then review"


class BusyOutputError(UsageError):
    """Another vascalc run is writing into the same output folder."""

    code = "OUTPUT_BUSY"
    hint = "wait for the other run to finish, or give this run another --out folder"


# --- per-case failures (exit code 1: the case row says why, others are written) ---------
class InputError(VascalcError):
    """The case's input is missing or unusable (e.g. a manifest path that does not exist)."""

    code = "INPUT_INVALID"
    hint = "check the path of the case"


class NotDicomError(InputError):
    """A file of the case is not readable DICOM."""

    code = "NOT_DICOM"
    hint = "remove the file or point the case at the series folder"


class NotCTError(InputError):
    """The series is not a greyscale CT image series."""

    code = "NOT_CT_IMAGE"
    hint = "vascalc scores CT image series only (Modality CT, single-channel pixels)"


class MissingRescaleError(InputError):
    """RescaleSlope/RescaleIntercept missing (or slope 0): HU unknown."""

    code = "MISSING_RESCALE"
    hint = ("the file has no RescaleSlope/RescaleIntercept, so Hounsfield units cannot be "
            "computed; re-export the series from the scanner or PACS with the CT Image module")


class ImplausibleHUError(InputError):
    """The values are not plausible Hounsfield units (slope <= 0, no air, out of range)."""

    code = "HU_IMPLAUSIBLE"
    hint = ("check the rescale (RescaleSlope/Intercept) and PixelRepresentation, and that the "
            "series is a CT in HU; for volumes in other units set input.require_hu: false")


class MissingTagError(InputError):
    """A geometry tag (position, orientation, pixel spacing) is missing."""

    code = "MISSING_TAG"
    hint = "re-export the series with complete image geometry tags"


class GeometryError(InputError):
    """The slices do not form one regular grid (single slice, tilt, multi-frame)."""

    code = "GEOMETRY_INVALID"
    hint = "check that the folder holds one complete axial series"


class DuplicateSliceError(GeometryError):
    """Two slices share one position."""

    code = "GEOMETRY_DUPLICATE_SLICE"


class UnevenSpacingError(GeometryError):
    """Slice increments differ (a missing slice or uneven spacing)."""

    code = "GEOMETRY_UNEVEN_SPACING"
    hint = "a slice may be missing; re-export the complete series"


class MissingSliceError(GeometryError):
    """A gap between slices is over 1.5 times the median increment: a slice is missing."""

    code = "GEOMETRY_MISSING_SLICE"
    hint = "re-export the complete series (a missing slice would lose its calcium)"


class NotAxialError(GeometryError):
    """The slices are not axial (coronal, sagittal or strongly oblique)."""

    code = "GEOMETRY_NOT_AXIAL"
    hint = "score the axial reconstruction: Agatston is defined on axial slices"


class InconsistentSeriesError(GeometryError):
    """Matrix size, orientation or pixel spacing differ between slices."""

    code = "GEOMETRY_INCONSISTENT"


class DecodeError(InputError):
    """Pixel data could not be read or decoded (truncated file, unknown syntax)."""

    code = "PIXEL_DECODE_FAILED"
    hint = "the pixel data could not be decoded; check the file is complete and its transfer syntax"


class ArchiveError(InputError):
    """A zip archive is unreadable, too large, or has members that leave its folder."""

    code = "ARCHIVE_INVALID"
    hint = "unpack the archive yourself and check its contents"


class ContrastError(InputError):
    """The scan is contrast-enhanced and the config refuses such scans."""

    code = "CONTRAST_ENHANCED"
    hint = ("score a non-contrast scan, or set scoring.contrast to withhold, phase_threshold "
            "or lumen_adaptive (docs, conventions: 'Contrast')")


class ThresholdError(InputError):
    """No calcium threshold for this scan: no kvp_table row for its kVp, or no calibration."""

    code = "THRESHOLD_UNRESOLVED"
    hint = ("add the kvp_table row, give the case a calibration (manifest column "
            "mass_calibration_mg_per_cm3_per_hu), or set scoring.kvp_select: off")


class SpectralMapError(InputError):
    """The series is a spectral map that is not HU (iodine, material density, effective Z,
    electron density) or has its calcium removed: calcium is never scored on it."""

    code = "SPECTRAL_NOT_HU"
    hint = ("score the mixed (blended), a virtual monoenergetic or a true non-contrast series "
            "of the study instead (docs, 'Spectral CT': what to export per vendor)")


class VNCRefusedError(InputError):
    """The series is a virtual non-contrast (non-iodine) image and scoring.vnc is refuse."""

    code = "VNC_REFUSED"
    hint = ("score a true non-contrast series, or set scoring.vnc: score (the score is then "
            "flagged vnc_underscores; docs, 'Spectral CT')")


class ScopeError(InputError):
    """The scope asked for cannot be measured on this case (e.g. vascular without regions)."""

    code = "SCOPE_UNRESOLVED"
    hint = "give the case's region masks, or choose a scope the case allows (scoring.scope)"


class RegionError(InputError):
    """A region mask is unreadable, lacks its label table, or does not overlap the CT."""

    code = "REGION_INVALID"
    hint = "check the mask belongs to this CT (same patient, same frame of reference)"


class AnthropometryError(InputError):
    """Height or weight is implausible (metres as cm, weight 0, pounds)."""

    code = "ANTHROPOMETRY_IMPLAUSIBLE"
    hint = "give height in cm and weight in kg (manifest columns height_cm, weight_kg)"


class CalibrationError(InputError):
    """A micro-CT density calibration is absent where it is needed, or implausible (a header's
    slope, intercept or mu water out of range; rods that do not fit a rising line)."""

    code = "CALIBRATION_INVALID"
    hint = ("give the calibration another way: HA rods (vascalc calibrate --inserts) or "
            "microct.calibration_slope and calibration_intercept in the config (docs: Micro-CT)")


class StackError(InputError):
    """A micro-CT slice stack is incomplete or inconsistent: a slice missing, mixed bit
    depths or sizes, or a reconstruction log that does not match its slices."""

    code = "STACK_INVALID"
    hint = "export the reconstruction again, complete, into its own folder"


class OutOfMemoryError(InputError):
    """The series did not fit in memory."""

    code = "OUT_OF_MEMORY"
    hint = "run fewer jobs at once or on a machine with more memory"


class WorkerDiedError(VascalcError):
    """The worker process scoring the case died twice (killed, out of memory)."""

    code = "WORKER_DIED"
    hint = "run the case alone with --jobs 1 to see why"


class InternalError(VascalcError):
    """An unexpected error: a bug in vascalc."""

    code = "INTERNAL"
    hint = "this is a bug in vascalc; please report it with the run.json of the run"


def error_table() -> list[tuple[str, str, str]]:
    """(code, meaning, what to do) for every error class, for the docs and the tests."""
    rows = []
    seen = set()

    def walk(cls: type[VascalcError]) -> None:
        if cls.code not in seen:
            seen.add(cls.code)
            doc = (cls.__doc__ or "").strip().splitlines()
            rows.append((cls.code, doc[0] if doc else cls.__name__, cls.hint))
        for sub in cls.__subclasses__():
            walk(sub)

    walk(VascalcError)
    return rows
