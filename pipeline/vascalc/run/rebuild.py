"""The run's tables and run.json, rebuilt from the cases' result documents (every run, resume,
rescore and merge ends here, so the tables never depend on order or interruption), and the
reader of run.json, which refuses a record of another schema by name."""

from __future__ import annotations

import json
import logging
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config.schema import Config
from ..core.lesions import AUTO_ENGINE, engine_for
from ..errors import UsageError
from ..outputs.tables import table_files
from ..results.columns import TABLES
from ..results.document import is_ok, scan_of, table_rows, version_of

log = logging.getLogger("vascalc")

#: every table a run may write (OUT/<name>.csv and .parquet)
TABLE_NAMES = (*TABLES, "regions_wide")

#: version of the run.json layout (``schema``); a record of another version is not read
RUN_SCHEMA = 1


def read_run(path: Path) -> dict[str, Any]:
    """A run.json, refused by name when it is unreadable or of another schema version."""
    try:
        run = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{path} is missing or unreadable",
                         hint="give the output folder of a finished vascalc run") from None
    if not isinstance(run, dict) or run.get("schema") != RUN_SCHEMA:
        got = run.get("schema") if isinstance(run, dict) else None
        raise UsageError(f"{path} is of run schema version {got} (written by another vascalc); "
                         f"this vascalc reads version {RUN_SCHEMA}",
                         hint="run vascalc run again over the inputs with this vascalc")
    return run


def rebuild(out: Path, by_case: dict[str, dict[str, Any]], *, config: Config | None,
            argv: list[str] | None = None, notes: list[dict[str, str]] | None = None,
            extra: dict[str, Any] | None = None, parquet: bool | None = None,
            ran: set[str] | None = None
            ) -> tuple[dict[str, Any], dict[Path, str | bytes | None]]:
    """The run summary and every table file, from the cases' result documents (case id ->
    document, as written to ``OUT/cases/<id>/result.json``), in case-id order; the caller
    writes the files with :func:`write_all`. Stage timings sum the cases in ``ran`` (this
    invocation's; None: all), never earlier runs' reused cases."""
    case_ids = sorted(by_case)
    docs = [by_case[cid] for cid in case_ids]
    rows, covariate_columns, stems = table_rows(docs, config)
    failures = [{k: scan_of(d)[k] for k in ("case_id", "error_code", "error")}
                for d in docs if not is_ok(d)]
    stages: dict[str, float] = {}
    for d in docs:
        if ran is not None and d["case_id"] not in ran:
            continue
        for k, v in d.get("timings_s", {}).items():
            stages[k] = stages.get(k, 0.0) + v
    use_parquet = (config.output.parquet if config is not None else True) if parquet is None \
        else parquet
    files: dict[Path, str | bytes | None] = {}
    files.update(table_files(out, rows, covariate_columns, stems, parquet=use_parquet))
    tables = sorted(p.name for p in files)
    for name in TABLE_NAMES:  # a table this run does not write is removed, not left stale
        for stale in (out / f"{name}.csv", out / f"{name}.parquet"):
            if stale not in files and stale.exists():
                files[stale] = None
    if config is not None and config.report.enabled:
        from ..outputs.patient_report import patient_files, patient_folder  # lazy: reports only
        from ..outputs.report import index_html  # lazy: reports only (Jinja2, WeasyPrint)

        files.update(patient_files(out, rows["scans"], pdf=config.report.pdf))
        patients = {r["patient_id"]: patient_folder(r["patient_id"]) for r in rows["scans"]
                    if (r.get("patient_id") or "").strip()}
        written = {r["case_id"]: ((out / "cases" / r["case_id"] / "report.html").is_file(),
                                  (out / "cases" / r["case_id"] / "report.pdf").is_file())
                   for r in rows["scans"]}
        try:  # the index is a view of the tables: its failure never costs them
            files[out / "index.html"] = index_html(rows["scans"], patients, written)
        except Exception as err:  # noqa: BLE001 - logged; the tables are written
            log.error("index.html could not be written: %s: %s", type(err).__name__, err)
    n_ok = sum(1 for r in rows["scans"] if r["status"] == "ok")
    return {
        "schema": RUN_SCHEMA,
        "vascalc_version": __version__,
        #: the versions that scored the cases in the tables (resume redoes another version's
        #: results and merge refuses them, so this is this version's alone)
        "scored_by_versions": sorted({version_of(d) for d in docs}),
        "versions": versions(config),
        "argv": argv if argv is not None else sys.argv,
        "config": config.model_dump(mode="json") if config is not None else None,
        "config_sha256": config.sha256() if config is not None else None,
        "counts": {"cases": len(case_ids), "ok": n_ok, "failed": len(case_ids) - n_ok,
                   "lesions": len(rows["lesions"]), "not_scored": len(notes or []),
                   **(extra or {})},
        "failures": failures,
        #: the table files this run wrote; read_tables refuses any other (an earlier run's)
        "table_files": tables,
        "not_scored": notes or [],
        "timings_s": {k: round(v, 4) for k, v in sorted(stages.items())},
    }, files


def versions(config: Config | None = None) -> dict[str, str]:
    out = {"python": platform.python_version(), "vascalc": __version__}
    for dist in ("numpy", "scipy", "pydicom", "SimpleITK", "pydantic", "pyarrow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = ""
    # 'c', or 'scipy' where the C kernel was not built or the connectivity needs it
    sc = config.scoring if config is not None else None
    out["scoring_engine"] = AUTO_ENGINE if sc is None else engine_for(
        sc.slice_connectivity, sc.lesion_connectivity)
    return out
