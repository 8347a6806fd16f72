"""Run cases: serially, on a process pool, or on a Dask cluster; resume; rebuild the tables.

- A case that fails becomes a row with status=failed and never stops the others; a worker
  process that dies takes only its own case with it.
- Each finished case is written at once, atomically, to ``OUT/cases/<case_id>/result.json``
  (with the config sha256 and the input fingerprint). A rerun into the same folder reuses every
  case whose result is ok with the same config and fingerprint (``force`` redoes them), so a
  run killed at any instant loses no finished case.
- The tables are always rebuilt from the per-case results, so they are identical whatever the
  order, the number of workers, the scheduler or the interruptions.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__
from .analyse import analyse
from .cases import Case
from .config import Config
from .errors import (
    InputError,
    InternalError,
    OutOfMemoryError,
    UsageError,
    VascalcError,
    WorkerDiedError,
)
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


def _load_volume(case: Case, config: Config):
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
                return load_nifti(p)
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
    ``keep`` is a dict, the volume of a scored case is left in it."""
    timings: dict[str, float] = {}
    dicom_pid = ""
    try:
        if case.error is not None:
            raise _Preset(*case.error)
        t0 = time.perf_counter()
        vol = _load_volume(case, config)
        timings["load"] = time.perf_counter() - t0
        dicom_pid = vol.meta.patient_id
        region_masks = None
        if case.regions:
            t1 = time.perf_counter()
            region_masks = _load_region_masks(case.regions, vol)
            timings["regions"] = time.perf_counter() - t1
        result = analyse(vol, config, case_id=case.case_id, anthropometry=case.anthropometry,
                         regions=region_masks)
        timings.update(result.timings_s)
        if keep is not None:
            keep["volume"] = vol
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
    from .outputs.tables import lesion_rows, region_rows, scan_row

    cfg = case_config(case, config)
    keep: dict[str, Any] = {}
    result, pid, timings = run_case(case, cfg, keep)
    ok = isinstance(result, ScanResult)
    doc = {
        "schema": RESULT_SCHEMA,
        "case_id": case.case_id,
        "config_sha256": config.sha256(),
        "fingerprint": fingerprint,
        "scan": scan_row(result, patient_id=pid, source_path=case.display_path, extra=case.extra,
                         settings=cfg.provenance(), demographics=config.privacy.demographics),
        "regions": region_rows(result) if ok else [],
        "lesions": lesion_rows(result) if ok else [],
        "timings_s": {k: round(v, 6) for k, v in timings.items()},
    }
    if ok and out is not None and config.report.enabled and "volume" in keep:
        from .outputs.artefacts import try_write_case_artefacts

        t0 = time.perf_counter()
        written, error = try_write_case_artefacts(result_path(out, case.case_id).parent,
                                                  keep["volume"], result, doc, cfg)
        doc["artefacts"] = written
        if error:
            doc["artefact_error"] = error
            flags = [f for f in (doc["scan"]["quality_flags"] or "").split(";") if f]
            doc["scan"]["quality_flags"] = ";".join(flags + ["report_failed"])
        doc["timings_s"]["report"] = round(time.perf_counter() - t0, 6)
    return doc


def _failed_doc(case: Case, config: Config, fingerprint: str, code: str, message: str) -> dict:
    from .outputs.tables import scan_row

    failure = CaseFailure(case_id=case.case_id, error_code=code, error=message,
                          path=case.display_path)
    settings = case_config(case, config).provenance()
    return {"schema": RESULT_SCHEMA, "case_id": case.case_id, "config_sha256": config.sha256(),
            "fingerprint": fingerprint,
            "scan": scan_row(failure, patient_id=case.patient_id or "",
                             source_path=case.display_path, extra=case.extra, settings=settings),
            "regions": [], "lesions": [], "timings_s": {}}


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
# executors: each yields (case, result document) as cases finish


def _serial(todo, config, out):
    for case, fp in todo:
        yield case, process_case(case, config, fp, out)


def _pool(todo, config, jobs, out):
    """A process pool; if a worker dies (killed, out of memory), the cases it may have been
    running are retried once on a new pool, then reported as failed rows."""
    pending = list(todo)
    attempts: dict[str, int] = {}
    while pending:
        broken = False
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=_mp_context(),
                                 initializer=_worker_init) as ex:
            futures: dict[Future, tuple[Case, str]] = {
                ex.submit(process_case, c, config, fp, out): (c, fp) for c, fp in pending}
            pending = []
            waiting = set(futures)
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for fut in done:
                    case, fp = futures[fut]
                    try:
                        yield case, fut.result()
                    except BrokenProcessPool:
                        broken = True
                        attempts[case.case_id] = attempts.get(case.case_id, 0) + 1
                        if attempts[case.case_id] >= 2:
                            yield case, _failed_doc(
                                case, config, fp, WorkerDiedError.code,
                                f"{case.display_path}: the worker process died twice while "
                                "scoring this case (killed or out of memory) -> run it alone "
                                "with --jobs 1 to see why")
                        else:
                            pending.append((case, fp))
                    except Exception as exc:  # noqa: BLE001
                        yield case, _failed_doc(case, config, fp, InternalError.code,
                                                f"{case.display_path}: {type(exc).__name__}: {exc}")
        if broken:
            log.warning("a worker process died; retrying %d case(s) on a new pool", len(pending))


def _mp_context():
    """The cheapest safe way to start workers. On Linux with no other thread running, fork
    the parent after loading the kernel once (workers start at once, nothing re-imported);
    with threads running, forkserver with the pipeline preloaded; elsewhere, spawn."""
    import multiprocessing as mp
    import threading

    methods = mp.get_all_start_methods()
    if "fork" in methods and sys.platform.startswith("linux") and threading.active_count() == 1:
        _worker_init()
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["pipeline.batch", "pipeline.io.dicom", "pipeline.kernel"])
        return ctx
    return mp.get_context("spawn")


def _worker_init() -> None:
    try:
        from .kernel import warm_up
    except ImportError:  # numba missing: the scipy engine needs no warm-up
        return
    warm_up()


def _dask(todo, config, out, *, scheduler: str | None, local_workers: int | None):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UsageError("Dask is not installed", hint="pip install 'vascalc[dask]'") from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(n_workers=local_workers or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(process_case, c, config, fp, out, pure=False,
                                 key=f"vascalc-{c.case_id}-{fp[:8]}"): (c, fp) for c, fp in todo}
        for fut in as_completed(list(futures)):
            case, fp = futures[fut]
            try:
                yield case, fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its case only
                yield case, _failed_doc(case, config, fp, WorkerDiedError.code,
                                        f"{case.display_path}: {type(exc).__name__}: {exc}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def execute(todo: list[tuple[Case, str]], config: Config, *, jobs: int = 1,
            scheduler: str | None = None, dask_local: int | None = None,
            out: Path | None = None) -> Iterator:
    if scheduler or dask_local:
        return _dask(todo, config, out, scheduler=scheduler, local_workers=dask_local)
    if jobs <= 1 or len(todo) <= 1:
        return _serial(todo, config, out)
    return _pool(todo, config, jobs, out)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def select_shard(cases: list[Case], shard: tuple[int, int] | None) -> list[Case]:
    """Cases of shard I of N (0 <= I < N): every N-th case in case-id order."""
    if shard is None:
        return cases
    i, n = shard
    ordered = sorted(cases, key=lambda c: c.case_id)
    return [c for k, c in enumerate(ordered) if k % n == i]


def run_batch(cases: list[Case], config: Config, out: Path, *, argv: list[str] | None = None,
              notes: list[dict[str, str]] | None = None, jobs: int = 1, force: bool = False,
              scheduler: str | None = None, dask_local: int | None = None,
              on_case: Callable[[Case, dict, bool], None] | None = None) -> dict[str, Any]:
    """Run every case (reusing finished ones), then rebuild the tables and run.json."""
    from .outputs.tables import write_json

    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    t_start = time.perf_counter()
    sha = config.sha256()
    todo: list[tuple[Case, str]] = []
    reused = 0
    for case in cases:
        fp = case.fingerprint()
        old = None if force else read_result(result_path(out, case.case_id))
        if (old is not None and old["scan"].get("status") == "ok"
                and old.get("config_sha256") == sha and old.get("fingerprint") == fp):
            reused += 1
            if on_case:
                on_case(case, old, True)
            continue
        todo.append((case, fp))
    log.info("run: %d case(s), %d reused, %d to do", len(cases), reused, len(todo))
    for case, doc in execute(todo, config, jobs=jobs, scheduler=scheduler, dask_local=dask_local,
                             out=out):
        write_json(result_path(out, case.case_id), doc)
        log.info("case %s: %s", case.case_id, doc["scan"]["status"])
        if on_case:
            on_case(case, doc, False)
    summary = rebuild(out, [c.case_id for c in cases], config=config, argv=argv, notes=notes,
                      extra={"reused": reused})
    summary["executor"] = _executor_name(jobs, scheduler, dask_local)
    from .cases import DISCOVERY_COLUMNS, discovery_rows
    from .outputs.tables import to_csv, write_atomic

    write_atomic(out / "discovery.csv",
                 to_csv(discovery_rows(cases, notes or []), DISCOVERY_COLUMNS))
    summary["timings_s"]["total"] = round(time.perf_counter() - t_start, 4)
    write_json(out / "run.json", summary)
    return summary


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left behind (never a finished file: those are renamed)."""
    for tmp in list(out.glob(".*.tmp")) + list(out.glob("cases/*/.*.tmp")):
        try:
            tmp.unlink()
        except OSError:
            pass


def _executor_name(jobs, scheduler, dask_local) -> str:
    if scheduler:
        return "dask-distributed"
    if dask_local:
        return f"dask-local:{dask_local}"
    return f"process-pool:{jobs}" if jobs > 1 else "serial"


def rebuild(out: Path, case_ids: list[str], *, config: Config | None,
            argv: list[str] | None = None, notes: list[dict[str, str]] | None = None,
            extra: dict[str, Any] | None = None, parquet: bool | None = None) -> dict[str, Any]:
    """Rebuild every table from ``OUT/cases/<id>/result.json``, in case-id order."""
    from .outputs.tables import write_tables

    rows: dict[str, list[dict[str, Any]]] = {"scans": [], "regions": [], "lesions": []}
    extra_cols: list[str] = []
    failures, stages = [], {}
    for cid in sorted(case_ids):
        doc = read_result(result_path(out, cid))
        if doc is None:
            raise InternalError(f"result of case {cid} is missing from {out}")
        rows["scans"].append(doc["scan"])
        rows["regions"].extend(doc.get("regions", []))
        rows["lesions"].extend(doc.get("lesions", []))
        for k in doc["scan"]:
            if k not in extra_cols:
                extra_cols.append(k)
        if doc["scan"]["status"] != "ok":
            failures.append({k: doc["scan"][k] for k in ("case_id", "error_code", "error")})
        for k, v in doc.get("timings_s", {}).items():
            stages[k] = stages.get(k, 0.0) + v
    use_parquet = (config.output.parquet if config is not None else True) if parquet is None \
        else parquet
    write_tables(out, rows, extra_cols, parquet=use_parquet)
    if config is not None and config.report.enabled:
        from .outputs.report import index_html
        from .outputs.tables import write_atomic

        write_atomic(out / "index.html", index_html(rows["scans"]))
    n_ok = sum(1 for r in rows["scans"] if r["status"] == "ok")
    return {
        "vascalc_version": __version__,
        "versions": versions(),
        "argv": argv if argv is not None else sys.argv,
        "config": config.model_dump(mode="json") if config is not None else None,
        "config_sha256": config.sha256() if config is not None else None,
        "counts": {"cases": len(case_ids), "ok": n_ok, "failed": len(case_ids) - n_ok,
                   "lesions": len(rows["lesions"]), "not_scored": len(notes or []),
                   **(extra or {})},
        "failures": failures,
        "not_scored": notes or [],
        "timings_s": {k: round(v, 4) for k, v in sorted(stages.items())},
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "vascalc": __version__}
    for dist in ("numpy", "scipy", "numba", "pydicom", "SimpleITK", "pydantic", "pyarrow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = ""
    return out


__all__ = ["execute", "process_case", "read_result", "rebuild", "run_batch", "run_case",
           "select_shard"]
