"""One case, one straight path: settings -> load -> regions -> analyse -> result -> artefacts.

:func:`run_case` is the whole path of a case, readable top to bottom; the runners in
:mod:`vascalc.run.batch` only move cases to it and its documents back. It never raises: any
failure (bad input, memory, a bug) becomes a failed document with a stable error code, so one
case never loses another's result.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from ..analyse import analyse
from ..config.schema import Config
from ..config.settings import resolve_settings
from ..errors import InternalError, OutOfMemoryError, VascalcError
from ..io.load import load_ct, load_region_masks
from ..io.mask_fit import fit_flags
from ..measure.reads import Measured
from ..outputs.artefacts import try_write_case_artefacts
from ..records import CaseFailure, CTVolume, LesionLabels, ScanResult
from ..results.casefolder import staging_dir
from ..results.document import document, table_patient_id, with_artefacts
from .discovery import Case

log = logging.getLogger("vascalc")


class _Preset(VascalcError):
    """An error found before scoring (e.g. while extracting an archive), raised for the row."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.path = ""  # the message names the file already
        Exception.__init__(self, message)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - t0


@dataclass(frozen=True, eq=False)
class LoadedCase:
    """A case read and ready to score: its volume, the settings resolved for it (once: the
    calibration table is matched on its header), the DICOM PatientID (for the table's id, as
    the privacy settings say) and its region masks."""

    volume: CTVolume
    settings: Config
    dicom_pid: str
    masks: list | None
    region_source: str


def run_case(case: Case, config: Config, *, fingerprint: str,
             out: Path | None = None, reads: LesionLabels | None = None) -> dict[str, Any]:
    """Score one case and return its result document (plain, picklable data). With ``out``
    and report.enabled, the case's artefacts are written into OUT/cases/<case_id>/. With a
    reader's ``reads`` (``vascalc rescore``) the calcium is split by the reader's labels."""
    timings: dict[str, float] = {}
    reports = out is not None and config.report.enabled
    try:
        loaded = load_case(case, config, timings=timings)
    except Exception as exc:  # noqa: BLE001 - a case never loses another's result
        # nothing was read: the row carries the config's own provenance for the case
        settings = resolve_settings(config, calibration=case.calibration,
                                    water_hu=case.water_hu)
        return _failure(case, config, fingerprint, exc, settings, "", timings)
    try:
        result = score_loaded(case, loaded, keep_voxels=reports, reads=reads, timings=timings)
        doc = _document(case, config, loaded.settings, fingerprint, result, loaded.dicom_pid,
                        timings)
    except Exception as exc:  # noqa: BLE001 - a case never loses another's result
        return _failure(case, config, fingerprint, exc, loaded.settings, loaded.dicom_pid,
                        timings)
    if reports and out is not None:
        t0 = time.perf_counter()
        # into a staging folder: it becomes the case folder with its result.json only
        # (write_result), so a case stopped here leaves no artefacts without a result
        staging = staging_dir(out, case.case_id)
        written, error = try_write_case_artefacts(staging, loaded.volume, result, doc,
                                                  loaded.settings)
        doc = {**with_artefacts(doc, written, error, time.perf_counter() - t0),
               "staged": str(staging)}
    return doc


def _failure(case: Case, config: Config, fingerprint: str, exc: BaseException,
             settings: Config, dicom_pid: str, timings: dict[str, float]) -> dict[str, Any]:
    """The failed document of an exception: its own code for a vascalc error (the message
    names the case's input), OUT_OF_MEMORY, or INTERNAL for a bug (logged with its trace)."""
    if isinstance(exc, VascalcError):
        log.warning("case %s failed: %s %s", case.case_id, exc.code, exc)
        # an error raised past the readers (analysis, regions) names the case's input too
        code = exc.code
        text = str(exc) if exc.path is not None else f"{case.display_path}: {exc}"
    elif isinstance(exc, MemoryError):
        oom = OutOfMemoryError("not enough memory to load and score the series",
                               path=case.display_path)
        code, text = oom.code, str(oom)
    else:
        log.error("case %s: internal error\n%s", case.case_id,
                  "".join(traceback.format_exception(exc)))
        code = InternalError.code
        text = f"{case.display_path}: {type(exc).__name__}: {exc} -> {InternalError.hint}"
    if case.note:  # what discovery saw may be the cause: a missing slice is the cut file
        text = f"{text} (discovery: {case.note})"
    return failed_document(case, config, fingerprint, code, text, settings=settings,
                           dicom_pid=dicom_pid, timings=timings)


def load_case(case: Case, config: Config, *,
              timings: dict[str, float] | None = None) -> LoadedCase:
    """Read one case: its volume (with what discovery saw), its settings, its region masks.
    Raises what the readers raise."""
    timings = {} if timings is None else timings
    if case.error is not None:
        raise _Preset(*case.error)
    with _timed(timings, "load"):
        volume = load_ct(case.path, config, display_path=case.display_path, headers=case.headers)
    if case.flags:  # what discovery saw: a split series, outliers, unreadable files
        volume = replace(volume, quality_flags=volume.quality_flags + tuple(
            f for f in case.flags if f not in volume.quality_flags))
    settings = resolve_settings(config, calibration=case.calibration, water_hu=case.water_hu,
                                meta=volume.meta)
    masks, source = None, ""
    if case.regions:
        with _timed(timings, "regions"):
            coverage: list[float] = []
            masks, source = load_region_masks(case.regions, volume, config, coverage=coverage)
            misfit = fit_flags(volume, masks, coverage, config.regions.bone)
        if misfit:
            volume = replace(volume, quality_flags=volume.quality_flags + misfit)
    return LoadedCase(volume, settings, volume.meta.patient_id, masks, source)


def score_loaded(case: Case, loaded: LoadedCase, *, keep_voxels: bool = False,
                 reads: LesionLabels | None = None,
                 timings: dict[str, float] | None = None,
                 measured: Measured | None = None) -> ScanResult:
    """Score a loaded case (:func:`vascalc.analyse.analyse` with its settings and masks;
    ``measured``: its calcium, found already by :func:`vascalc.analyse.measure`)."""
    result = analyse(loaded.volume, loaded.settings, case_id=case.case_id,
                     anthropometry=case.anthropometry, regions=loaded.masks,
                     region_source=loaded.region_source, keep_voxels=keep_voxels, reads=reads,
                     measured=measured)
    if timings is not None:
        timings.update(result.timings_s)
    return result


def score_case(case: Case, config: Config, *, timings: dict[str, float] | None = None,
               keep_voxels: bool = False, reads: LesionLabels | None = None,
               ) -> tuple[CTVolume, Config, ScanResult]:
    """Load and score one case: the volume, the settings resolved for it, and its result.
    Raises what the steps raise."""
    loaded = load_case(case, config, timings=timings)
    result = score_loaded(case, loaded, keep_voxels=keep_voxels, reads=reads, timings=timings)
    return loaded.volume, loaded.settings, result


def _document(case: Case, config: Config, settings: Config, fingerprint: str,
              outcome: ScanResult | CaseFailure, dicom_pid: str,
              timings: dict[str, float]) -> dict[str, Any]:
    return document(outcome, run_config_sha256=config.sha256(), fingerprint=fingerprint,
                    settings=settings,
                    patient_id=table_patient_id(case.patient_id, dicom_pid, config),
                    source_path=case.display_path, covariates=case.extra, timings=timings)


def failed_document(case: Case, config: Config, fingerprint: str, code: str, message: str, *,
                    settings: Config | None = None, dicom_pid: str = "",
                    timings: dict[str, float] | None = None) -> dict[str, Any]:
    """The document of a failed case (also for a case whose worker died: then nothing of
    it was read, and the config's own settings for the case are its provenance)."""
    if settings is None:
        settings = resolve_settings(config, calibration=case.calibration, water_hu=case.water_hu)
    failure = CaseFailure(case_id=case.case_id, error_code=code, error=message,
                          path=case.display_path)
    return _document(case, config, settings, fingerprint, failure, dicom_pid, timings or {})
