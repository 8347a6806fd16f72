"""Cases from a folder tree or a manifest; run them; write per-case results and the tables.

A case that fails becomes a row with status=failed and never stops the others. Every file is
written atomically; the tables are rebuilt from the per-case ``result.json`` files.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .analyse import Anthropometry, analyse
from .bsa import check_anthropometry
from .config import Config
from .errors import (
    AnthropometryError,
    InputError,
    InternalError,
    ManifestError,
    NoInputError,
    OutOfMemoryError,
    VascalcError,
)
from .types import CaseFailure, ScanResult

log = logging.getLogger("vascalc")

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MANIFEST_KNOWN = ("case_id", "path", "patient_id", "height_cm", "weight_kg")


@dataclass(frozen=True, kw_only=True)
class Case:
    """One series to score. ``headers`` is set when discovery already indexed the files."""

    case_id: str
    path: str  # series folder or file
    display_path: str  # relative to what the user gave, for rows and logs
    headers: tuple = ()
    patient_id: str | None = None  # from the manifest; None = take it from DICOM
    anthropometry: Anthropometry | None = None
    extra: dict[str, str] = field(default_factory=dict)


def safe_case_id(text: str) -> str:
    """A file-name-safe id from ``text``: [A-Za-z0-9._-], no leading dot, at most 64 chars
    (longer ones keep a hash suffix so they stay unique)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "case"
    if len(s) > 64:
        s = s[:51].rstrip("._-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return s


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        if i in seen:
            seen[i] += 1
            out.append(f"{i}-{seen[i]}")
        else:
            seen[i] = 1
            out.append(i)
    return out


def cases_from_tree(root: Path, config: Config) -> tuple[list[Case], list[dict[str, str]]]:
    """Every CT series under ``root`` is a case. Returns the cases and a discovery list of
    what was not scored and why (non-DICOM files, non-CT series, localizers)."""
    from .io.dicom import ct_image_problem, index_tree

    headers, skipped = index_tree(root)
    notes = [{"path": _rel(p, root), "reason": r.split(": ", 1)[-1]} for p, r in skipped]
    by_series: dict[str, list] = {}
    for h in headers:
        problem = ct_image_problem(h)
        if problem:
            notes.append({"path": _rel(h.path, root), "reason": problem})
            continue
        by_series.setdefault(h.series_uid or f"(no SeriesInstanceUID) {Path(h.path).parent}",
                             []).append(h)
    groups = sorted(by_series.values(), key=lambda hs: min(h.path for h in hs))
    raw_ids = []
    for hs in groups:
        folder = os.path.commonpath([os.path.dirname(h.path) for h in hs])
        if config.output.case_id_from == "series_uid":
            raw_ids.append("s-" + hashlib.sha256(hs[0].series_uid.encode()).hexdigest()[:16])
        else:
            rel = _rel(folder, root)
            raw_ids.append(safe_case_id(rel if rel != "." else Path(folder).name))
    ids = _unique(raw_ids)
    cases = []
    for cid, hs in zip(ids, groups):
        folder = os.path.commonpath([os.path.dirname(h.path) for h in hs])
        cases.append(Case(case_id=cid, path=folder, display_path=_rel(folder, root),
                          headers=tuple(hs)))
    return cases, notes


def _rel(path: str | Path, root: Path) -> str:
    base = root if root.is_dir() else root.parent
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def _float_or_none(value: str, column: str, line: int, manifest: Path) -> float | None:
    value = (value or "").strip()
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ManifestError(f"line {line}: {column}={value!r} is not a number",
                            path=str(manifest)) from None


def cases_from_manifest(manifest: Path) -> list[Case]:
    """Read and validate a manifest CSV (paths relative to the manifest's folder)."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ManifestError(f"cannot read manifest: {err}", path=str(manifest)) from None
    missing = [c for c in ("case_id", "path") if c not in columns]
    if missing:
        raise ManifestError(f"missing column(s) {', '.join(missing)}; found {columns}",
                            path=str(manifest))
    if not rows:
        raise ManifestError("the manifest has no rows", path=str(manifest))
    cases, seen = [], {}
    for i, row in enumerate(rows, start=2):
        cid = (row.get("case_id") or "").strip()
        if not _SAFE_ID.match(cid):
            raise ManifestError(
                f"line {i}: case_id {cid!r} is not a safe name (letters, digits, '.', '_', '-'; "
                "starting with a letter or digit; at most 64 characters)", path=str(manifest))
        if cid in seen:
            raise ManifestError(f"line {i}: case_id {cid!r} already used on line {seen[cid]}",
                                path=str(manifest))
        seen[cid] = i
        rel = (row.get("path") or "").strip()
        if not rel:
            raise ManifestError(f"line {i}: path is empty", path=str(manifest))
        h = _float_or_none(row.get("height_cm", ""), "height_cm", i, manifest)
        w = _float_or_none(row.get("weight_kg", ""), "weight_kg", i, manifest)
        try:
            if h is not None:
                check_anthropometry(h, w if w is not None else 70.0, source=f"line {i}")
            if w is not None:
                check_anthropometry(h if h is not None else 170.0, w, source=f"line {i}")
        except AnthropometryError as err:
            raise ManifestError(str(err).split(" -> ")[0], path=str(manifest)) from None
        pid = (row.get("patient_id") or "").strip() or None
        extra = {k: (v if v is not None else "") for k, v in row.items()
                 if k is not None and k not in MANIFEST_KNOWN}
        target = Path(rel) if Path(rel).is_absolute() else manifest.parent / rel
        cases.append(Case(case_id=cid, path=str(target), display_path=rel, patient_id=pid,
                          anthropometry=Anthropometry(height_cm=h, weight_kg=w),
                          extra=extra))
    return cases


def collect_cases(inputs: list[Path], config: Config) -> tuple[list[Case], list[dict[str, str]]]:
    """Cases from each input: a manifest (.csv), a folder tree, or one DICOM file."""
    cases: list[Case] = []
    notes: list[dict[str, str]] = []
    for inp in inputs:
        if not inp.exists():
            raise NoInputError(f"input {str(inp)!r} does not exist")
        if inp.is_file() and inp.suffix.lower() == ".csv":
            cases.extend(cases_from_manifest(inp))
        else:
            c, n = cases_from_tree(inp, config)
            cases.extend(c)
            notes.extend(n)
    if not cases:
        raise NoInputError(f"no CT series found in {', '.join(str(i) for i in inputs)}")
    ids = [c.case_id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise NoInputError(f"case ids occur twice across the inputs: {', '.join(dup)}",
                           hint="give each input once, or use a manifest with unique case_id")
    return cases, notes


def _patient_id(case: Case, dicom_pid: str, config: Config) -> str:
    if case.patient_id is not None:
        return case.patient_id
    mode = config.privacy.patient_id
    if mode == "omit" or not dicom_pid:
        return ""
    if mode == "keep":
        return dicom_pid
    digest = hashlib.sha256(f"{config.privacy.hash_salt}\x00{dicom_pid}".encode()).hexdigest()
    return "p-" + digest[:16]


def run_case(case: Case, config: Config) -> tuple[ScanResult | CaseFailure, str, dict[str, float]]:
    """Load and score one case; any failure becomes a CaseFailure (never raises)."""
    from .io.dicom import ct_image_problem, index_tree, load_series

    timings: dict[str, float] = {}
    dicom_pid = ""
    try:
        t0 = time.perf_counter()
        headers = list(case.headers)
        if not headers:
            p = Path(case.path)
            if not p.exists():
                raise InputError(f"input path {case.display_path!r} does not exist",
                                 hint="fix the path in the manifest (relative to its folder)")
            found, skipped = index_tree(p)
            cts = [h for h in found if ct_image_problem(h) is None]
            series = sorted({h.series_uid for h in cts})
            if not series:
                why = (skipped[0][1] if skipped else
                       (ct_image_problem(found[0]) if found else "no files"))
                raise InputError(f"no CT image series in {case.display_path!r} ({why})")
            if len(series) > 1:
                raise InputError(
                    f"{len(series)} CT series in {case.display_path!r}; a manifest row needs one",
                    hint="point the path at one series folder")
            headers = cts
        timings["index"] = time.perf_counter() - t0
        dicom_pid = headers[0].meta.patient_id
        t1 = time.perf_counter()
        vol = load_series(headers, abs_tol_mm=config.geometry.spacing_tolerance_mm,
                          rel_tol=config.geometry.spacing_tolerance_rel)
        timings["load"] = time.perf_counter() - t1
        result = analyse(vol, config, case_id=case.case_id, anthropometry=case.anthropometry)
        timings.update(result.timings_s)
        return result, _patient_id(case, dicom_pid, config), timings
    except VascalcError as err:
        log.warning("case %s failed: %s %s", case.case_id, err.code, err)
        return (CaseFailure(case_id=case.case_id, error_code=err.code, error=str(err),
                            path=case.display_path),
                _patient_id(case, dicom_pid, config), timings)
    except MemoryError:
        err = OutOfMemoryError("not enough memory to load and score the series",
                               path=case.display_path)
        return (CaseFailure(case_id=case.case_id, error_code=err.code, error=str(err),
                            path=case.display_path),
                _patient_id(case, dicom_pid, config), timings)
    except Exception as err:  # noqa: BLE001 - a bug must not lose the other cases
        log.error("case %s: internal error\n%s", case.case_id, traceback.format_exc())
        return (CaseFailure(case_id=case.case_id, error_code=InternalError.code,
                            error=f"{case.display_path}: {type(err).__name__}: {err} -> "
                                  f"{InternalError.hint}", path=case.display_path),
                _patient_id(case, dicom_pid, config), timings)


def run_batch(cases: list[Case], config: Config, out: Path, *, argv: list[str] | None = None,
              notes: list[dict[str, str]] | None = None,
              on_case: Callable[[Case, ScanResult | CaseFailure], None] | None = None,
              ) -> dict[str, Any]:
    """Run every case, write cases/<id>/result.json as each finishes, then the tables and
    run.json. Returns the run summary (also in run.json)."""
    from .outputs.tables import lesion_rows, scan_row, write_json, write_tables

    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    settings = {"threshold_hu": config.scoring.threshold_hu,
                "min_lesion_area_mm2": config.scoring.min_lesion_area_mm2,
                "mass_calibration_mg_per_cm3_per_hu":
                    config.scoring.mass_calibration_mg_per_cm3_per_hu,
                "config_sha256": config.sha256()}
    scan_rows, les_rows, failures = [], [], []
    stage_totals: dict[str, float] = {}
    extra_cols: list[str] = []
    for case in cases:
        result, pid, timings = run_case(case, config)
        row = scan_row(result, patient_id=pid, source_path=case.display_path,
                       extra=case.extra, settings=settings,
                       demographics=config.privacy.demographics)
        lrows = lesion_rows(result) if isinstance(result, ScanResult) else []
        write_json(out / "cases" / case.case_id / "result.json",
                   {"scan": row, "lesions": lrows, "timings_s": timings})
        scan_rows.append(row)
        les_rows.extend(lrows)
        for k in case.extra:
            if k not in extra_cols:
                extra_cols.append(k)
        for k, v in timings.items():
            stage_totals[k] = stage_totals.get(k, 0.0) + v
        if isinstance(result, CaseFailure):
            failures.append({"case_id": result.case_id, "error_code": result.error_code,
                             "error": result.error})
        if on_case:
            on_case(case, result)
    write_tables(out, scan_rows, les_rows, extra_cols)
    summary = {
        "vascalc_version": __version__,
        "versions": _versions(),
        "argv": argv if argv is not None else sys.argv,
        "config": config.model_dump(mode="json"),
        "config_sha256": config.sha256(),
        "counts": {"cases": len(cases), "ok": len(cases) - len(failures),
                   "failed": len(failures), "lesions": len(les_rows),
                   "not_scored": len(notes or [])},
        "failures": failures,
        "not_scored": notes or [],
        "timings_s": {**{k: round(v, 4) for k, v in stage_totals.items()},
                      "total": round(time.perf_counter() - t_start, 4)},
    }
    write_json(out / "run.json", summary)
    return summary


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "vascalc": __version__}
    for dist in ("numpy", "scipy", "pydicom", "SimpleITK", "pydantic"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = ""
    return out


__all__ = ["Case", "cases_from_manifest", "cases_from_tree", "collect_cases", "run_batch",
           "run_case", "safe_case_id"]
