"""One case, one straight path: settings -> load -> regions -> analyse -> result -> artefacts.

:func:`run_case` is the whole path of a case, readable top to bottom; the runners in
:mod:`pipeline.batch` only move cases to it and its documents back. It never raises: any
failure (bad input, memory, a bug) becomes a failed document with a stable error code, so one
case never loses another's result.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from .analyse import analyse
from .config import Config
from .discovery import Case
from .errors import InternalError, OutOfMemoryError, VascalcError
from .io.load import load_ct, load_region_masks
from .outputs.artefacts import try_write_case_artefacts
from .result import document, result_path, table_patient_id, with_artefacts
from .settings import resolve_settings
from .types import CaseFailure, ScanResult

log = logging.getLogger("vascalc")


class _Preset(VascalcError):
    """An error found before scoring (e.g. while extracting an archive), raised for the row."""

    def __init__(self, code: str, message: str):
        self.code = code
        Exception.__init__(self, message)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - t0


def run_case(case: Case, config: Config, *, fingerprint: str,
             out: Path | None = None) -> dict[str, Any]:
    """Score one case and return its result document (plain, picklable data). With ``out``
    and report.enabled, the case's artefacts are written into OUT/cases/<case_id>/."""
    timings: dict[str, float] = {}
    settings = resolve_settings(config, calibration=case.calibration, water_hu=case.water_hu)
    dicom_pid = ""
    reports = out is not None and config.report.enabled
    try:
        if case.error is not None:
            raise _Preset(*case.error)
        with _timed(timings, "load"):
            volume = load_ct(case.path, config, display_path=case.display_path,
                             headers=case.headers)
        dicom_pid = volume.meta.patient_id
        if case.flags:  # what discovery saw: a split series, outliers, unreadable files
            volume = replace(volume, quality_flags=volume.quality_flags + tuple(
                f for f in case.flags if f not in volume.quality_flags))
        settings = resolve_settings(config, calibration=case.calibration,
                                    water_hu=case.water_hu, meta=volume.meta)
        masks, source = None, ""
        if case.regions:
            with _timed(timings, "regions"):
                masks, source = load_region_masks(case.regions, volume, config)
        result = analyse(volume, settings, case_id=case.case_id, anthropometry=case.anthropometry,
                         regions=masks, region_source=source, keep_voxels=reports)
        timings.update(result.timings_s)
        doc = _document(case, config, settings, fingerprint, result, dicom_pid, timings)
    except VascalcError as err:
        log.warning("case %s failed: %s %s", case.case_id, err.code, err)
        return failed_document(case, config, fingerprint, err.code, str(err), settings=settings,
                               dicom_pid=dicom_pid, timings=timings)
    except MemoryError:
        err = OutOfMemoryError("not enough memory to load and score the series",
                               path=case.display_path)
        return failed_document(case, config, fingerprint, err.code, str(err), settings=settings,
                               dicom_pid=dicom_pid, timings=timings)
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the other cases
        log.error("case %s: internal error\n%s", case.case_id, traceback.format_exc())
        return failed_document(case, config, fingerprint, InternalError.code,
                               f"{case.display_path}: {type(exc).__name__}: {exc} -> "
                               f"{InternalError.hint}", settings=settings, dicom_pid=dicom_pid,
                               timings=timings)
    if reports:
        t0 = time.perf_counter()
        written, error = try_write_case_artefacts(result_path(out, case.case_id).parent,
                                                  volume, result, doc, settings)
        doc = with_artefacts(doc, written, error, time.perf_counter() - t0)
    return doc


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
    """The document of a failed case (also for a case whose worker died)."""
    if settings is None:
        settings = resolve_settings(config, calibration=case.calibration, water_hu=case.water_hu)
    failure = CaseFailure(case_id=case.case_id, error_code=code, error=message,
                          path=case.display_path)
    return _document(case, config, settings, fingerprint, failure, dicom_pid, timings or {})
