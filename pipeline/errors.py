"""One exception hierarchy for vascalc.

Every error carries a stable ``code`` (a public interface: it is written to the ``error_code``
column and listed in the README) and a message that names the thing, the value received, what
is allowed and what to do, after pydicom's ``errors.py`` and highdicom's ``volume.py``.
"""

from __future__ import annotations


class VascalcError(Exception):
    """Base class; ``code`` is stable, ``hint`` says what the user should do."""

    code = "VASCALC_ERROR"
    exit_code = 1
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
    code = "USAGE"
    exit_code = 2


class ConfigError(UsageError):
    code = "CONFIG_INVALID"
    hint = "fix the config file; every key is documented in configs/default.yaml"


class ManifestError(UsageError):
    code = "MANIFEST_INVALID"
    hint = "fix the manifest row named above (columns: case_id, path, height_cm, weight_kg, ...)"


class NoInputError(UsageError):
    code = "NO_INPUT"
    hint = "point vascalc at a folder that holds a CT DICOM series, or at a manifest CSV"


# --- per-case failures (exit code 1: the case row says why, others are written) ---------
class InputError(VascalcError):
    """Something is wrong with a case's input files."""

    code = "INPUT_INVALID"


class NotDicomError(InputError):
    code = "NOT_DICOM"
    hint = "remove the file or point the case at the series folder"


class NotCTError(InputError):
    code = "NOT_CT_IMAGE"
    hint = "vascalc scores CT image series only (Modality CT, single-channel pixels)"


class MissingRescaleError(InputError):
    code = "MISSING_RESCALE"
    hint = ("the file has no RescaleSlope/RescaleIntercept, so Hounsfield units cannot be "
            "computed; re-export the series from the scanner or PACS with the CT Image module")


class MissingTagError(InputError):
    code = "MISSING_TAG"
    hint = "re-export the series with complete image geometry tags"


class GeometryError(InputError):
    code = "GEOMETRY_INVALID"
    hint = "check that the folder holds one complete axial series"


class DuplicateSliceError(GeometryError):
    code = "GEOMETRY_DUPLICATE_SLICE"


class UnevenSpacingError(GeometryError):
    code = "GEOMETRY_UNEVEN_SPACING"
    hint = "a slice may be missing; re-export the complete series"


class InconsistentSeriesError(GeometryError):
    code = "GEOMETRY_INCONSISTENT"


class DecodeError(InputError):
    code = "PIXEL_DECODE_FAILED"
    hint = "the pixel data could not be decoded; check the file is complete and its transfer syntax"


class AnthropometryError(InputError):
    code = "ANTHROPOMETRY_IMPLAUSIBLE"
    hint = "give height in cm and weight in kg (manifest columns height_cm, weight_kg)"


class InternalError(VascalcError):
    code = "INTERNAL"
    hint = "this is a bug in vascalc; please report it with the run.json of the run"


def error_table() -> list[tuple[str, str, str]]:
    """(code, meaning, what to do) for every error class, for the README and the tests."""
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
