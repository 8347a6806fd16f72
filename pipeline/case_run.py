"""One case: load its input, score it, write its result document (never raises).

- Any failure becomes a CaseFailure row with a stable code; memory errors and bugs too.
- Each finished case is written at once, atomically, to ``OUT/cases/<case_id>/result.json``
  with the config sha256 and the input fingerprint, which a rerun compares to reuse it.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from .analyse import analyse
from .cases import Case
from .config import Config
from .errors import InputError, InternalError, OutOfMemoryError, VascalcError
from .types import CaseFailure, ScanResult

log = logging.getLogger("vascalc")

RESULT_SCHEMA = 1


def _patient_id(case: Case, dicom_pid: str, config: Config) -> str:
    import hashlib

    if case.patient_id is not None:
        return case.patient_id
    mode = config.privacy.patient_id
    if mode == "omit" or not dicom_pid:
        return ""
    if mode == "keep":
        return dicom_pid
    digest = hashlib.sha256(f"{config.privacy.hash_salt}\x00{dicom_pid}".encode()).hexdigest()
    return "p-" + digest[:16]


class _Preset(VascalcError):
    """An error found before scoring (e.g. while extracting an archive), raised for the row."""

    def __init__(self, code: str, message: str):
        self.code = code
        Exception.__init__(self, message)


def case_config(case: Case, config: Config) -> Config:
    """The run's config with the case's own calibration (from the manifest), if any."""
    update = {k: v for k, v in (("mass_calibration_mg_per_cm3_per_hu", case.calibration),
                                ("calibration_water_hu", case.water_hu)) if v is not None}
    if not update:
        return config
    scoring = config.scoring.model_copy(update=update)
    return config.model_copy(update={"scoring": scoring})


def load_volume(case: Case, config: Config):
    """The case's CT volume (DICOM series, multi-frame file, NIfTI, or a zip of DICOM)."""
    from dataclasses import replace

    from .cases import split_stacks
    from .io.dicom import ct_image_problem, index_tree, load_series
    from .io.nifti import is_nifti, load_nifti

    headers = list(case.headers)
    scratch = None
    try:
        if not headers:
            p = Path(case.path)
            if not p.exists():
                raise InputError(f"input path {case.display_path!r} does not exist",
                                 hint="fix the path in the manifest (relative to its folder)")
            if p.is_file() and is_nifti(p):
                return load_nifti(p, require_hu=config.input.require_hu)
            if p.is_file() and p.suffix.lower() == ".zip":
                import tempfile

                from .io.archive import extract_zip

                scratch = tempfile.TemporaryDirectory(prefix="vascalc-zip-")
                extract_zip(p, scratch.name, max_bytes=config.input.max_archive_bytes,
                            max_files=config.input.max_archive_files)
                p = Path(scratch.name)
            found, skipped = index_tree(p)
            cts = [h for h in found if ct_image_problem(h) is None]
            if not cts:
                why = (skipped[0][1] if skipped else
                       (ct_image_problem(found[0]) if found else "no files"))
                raise InputError(f"no CT image series in {case.display_path!r} ({why})")
            stacks, outliers = split_stacks(cts, min_slices=config.selection.min_slices)
            if len(stacks) > 1:
                sizes = ", ".join(f"{len(st)} images of series {st[0].series_number}"
                                  for st in stacks)
                raise InputError(
                    f"{len(stacks)} CT stacks in {case.display_path!r} ({sizes}); a manifest "
                    "row needs one", hint="point the path at one series folder")
            headers = stacks[0]
        else:
            outliers = []
        g = config.geometry
        vol = load_series(headers, abs_tol_mm=g.spacing_tolerance_mm,
                          rel_tol=g.spacing_tolerance_rel, gantry_tilt=g.gantry_tilt,
                          max_obliquity_deg=g.max_obliquity_deg)
    finally:
        if scratch is not None:
            scratch.cleanup()  # the volume is in memory; the extracted files can go
    if outliers:
        vol = replace(vol, quality_flags=vol.quality_flags + ("outlier_images_excluded",))
    return vol


def _load_region_masks(path: str, vol):
    from .io.masks import load_regions, load_seg_regions

    if path.lower().endswith(".dcm") or _is_dicom(path):
        return load_seg_regions(path, list(vol.source_uids))
    return load_regions(vol, path)


def run_case(case: Case, config: Config, keep: dict | None = None,
             ) -> tuple[ScanResult | CaseFailure, str, dict[str, float]]:
    """Load and score one case; any failure becomes a CaseFailure (never raises). When
    ``keep`` is a dict, the volume of a scored case and what its scoring used are left in it."""
    timings: dict[str, float] = {}
    dicom_pid = ""
    try:
        if case.error is not None:
            raise _Preset(*case.error)
        t0 = time.perf_counter()
        vol = load_volume(case, config)
        timings["load"] = time.perf_counter() - t0
        dicom_pid = vol.meta.patient_id
        region_masks = None
        if case.regions:
            t1 = time.perf_counter()
            region_masks = _load_region_masks(case.regions, vol)
            timings["regions"] = time.perf_counter() - t1
        if config.scoring.calibration_table:  # the scanner's row, under the manifest's values
            m = vol.meta
            config = case_config(case, config.model_copy(update={
                "scoring": config.scoring.for_scanner(m.manufacturer, m.model, m.kvp)}))
        scored: dict[str, Any] = {}
        result = analyse(vol, config, case_id=case.case_id, anthropometry=case.anthropometry,
                         regions=region_masks, keep=scored if keep is not None else None)
        timings.update(result.timings_s)
        if keep is not None:
            keep.update(volume=vol, scored=scored)
        return result, _patient_id(case, dicom_pid, config), timings
    except VascalcError as err:
        log.warning("case %s failed: %s %s", case.case_id, err.code, err)
        failure = CaseFailure(case_id=case.case_id, error_code=err.code, error=str(err),
                              path=case.display_path)
    except MemoryError:
        err = OutOfMemoryError("not enough memory to load and score the series",
                               path=case.display_path)
        failure = CaseFailure(case_id=case.case_id, error_code=err.code, error=str(err),
                              path=case.display_path)
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the other cases
        log.error("case %s: internal error\n%s", case.case_id, traceback.format_exc())
        failure = CaseFailure(case_id=case.case_id, error_code=InternalError.code,
                              error=f"{case.display_path}: {type(exc).__name__}: {exc} -> "
                                    f"{InternalError.hint}", path=case.display_path)
    return failure, _patient_id(case, dicom_pid, config), timings


def _is_dicom(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def process_case(case: Case, config: Config, fingerprint: str,
                 out: Path | None = None) -> dict[str, Any]:
    """Score one case and return its result.json document (plain, picklable data). With
    ``out`` and report.enabled, the case's artefacts are written into OUT/cases/<id>/."""
    cfg = case_config(case, config)
    # the volume and the scoring's masks are kept only for the report artefacts
    keep: dict[str, Any] | None = {} if out is not None and config.report.enabled else None
    result, pid, timings = run_case(case, cfg, keep)
    doc = _doc(case, config, fingerprint, result, pid, timings)
    if isinstance(result, ScanResult) and keep is not None and "volume" in keep:
        from .outputs.artefacts import try_write_case_artefacts

        t0 = time.perf_counter()
        written, error = try_write_case_artefacts(result_path(out, case.case_id).parent,
                                                  keep["volume"], result, doc, cfg,
                                                  keep["scored"])
        doc["artefacts"] = written
        if error:
            doc["artefact_error"] = error
            flags = [f for f in (doc["scan"]["quality_flags"] or "").split(";") if f]
            doc["scan"]["quality_flags"] = ";".join(flags + ["report_failed"])
        doc["timings_s"]["report"] = round(time.perf_counter() - t0, 6)
    return doc


def _doc(case: Case, config: Config, fingerprint: str, result: ScanResult | CaseFailure,
         patient_id: str, timings: dict[str, float]) -> dict[str, Any]:
    """The result.json document of a case (one shape for scored and failed cases)."""
    from .outputs.tables import lesion_rows, region_rows, scan_row

    ok = isinstance(result, ScanResult)
    return {
        "schema": RESULT_SCHEMA, "case_id": case.case_id, "config_sha256": config.sha256(),
        "fingerprint": fingerprint,
        "scan": scan_row(result, patient_id=patient_id, source_path=case.display_path,
                         extra=case.extra, settings=case_config(case, config).provenance(),
                         demographics=config.privacy.demographics),
        "regions": region_rows(result) if ok else [],
        "lesions": lesion_rows(result) if ok else [],
        "timings_s": {k: round(v, 6) for k, v in timings.items()},
    }


def _failed_doc(case: Case, config: Config, fingerprint: str, code: str, message: str) -> dict:
    """The document of a case that failed outside run_case (its worker died, say)."""
    failure = CaseFailure(case_id=case.case_id, error_code=code, error=message,
                          path=case.display_path)
    return _doc(case, config, fingerprint, failure, case.patient_id or "", {})


def result_path(out: Path, case_id: str) -> Path:
    return out / "cases" / case_id / "result.json"


def read_result(path: Path) -> dict[str, Any] | None:
    """A case's result.json, or None when absent or unreadable (then it is redone)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA or "scan" not in doc:
        return None
    return doc


# ---------------------------------------------------------------------------------------
