"""The ``vascalc`` command: parse, call the library, print, map errors to exit codes.

Exit codes (DESIGN.md): 0 every case succeeded; 1 at least one case failed (its row says
why, the others are written); 2 usage or config error (nothing was run); 130 and 143: a run
stopped by SIGINT (Ctrl-C) or SIGTERM (a scheduler's time limit), every finished case
recorded (:mod:`vascalc.run.interrupt`); run it again to resume.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._version import __version__
from ..config.calibration import read_inserts, snippet
from ..config.load import load_config, with_study_secret
from ..config.schema import Config
from ..core.calibrate import calibrate as run_calibration
from ..errors import ConfigError, OutputError, VascalcError
from ..files import write_atomic
from ..io.load import load_ct
from ..io.microct import microct_kind
from ..outputs.tables import to_csv
from ..run.batch import default_jobs, run_batch, select_shard
from ..run.discovery import DISCOVERY_COLUMNS, collect_cases, discovery_rows, run_inputs
from ..run.interrupt import Abort, Stop
from ..run.lock import output_lock
from ..run.merge import merge_outputs
from ..run.options import RunOptions
from .cohort import register as register_cohort
from .console import Progress
from .microct import calibrate_rods
from .microct import register as register_microct
from .options import ConfigOption, parse_shard
from .pacs import register as register_pacs
from .review import register as register_review
from .starter import register as register_starter

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Vascular calcification on CT: Agatston, volume, mass, Calc/BSA.")

LOG_LEVELS = ("debug", "info", "warning", "error")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vascalc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = None) -> None:
    """vascalc: from CT DICOM series to calcium scores and tidy tables."""


def _fail_usage(message: str, code: str = "USAGE") -> None:
    typer.echo(f"error [{code}]: {message}", err=True)
    raise typer.Exit(2)


def _setup_logging(out: Path, level: str) -> logging.Handler:
    """Log to OUT/vascalc.log (case ids, codes and messages; never patient names)."""
    logger = logging.getLogger("vascalc")
    logger.setLevel(level.upper())
    for old in list(logger.handlers):
        old.close()
        logger.removeHandler(old)
    out.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(out / "vascalc.log", encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
    logger.propagate = False
    return fh


@app.command()
def run(
    inputs: Annotated[list[Path], typer.Argument(
        help="Folder trees (each CT series found is a case), series folders, or manifest CSVs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    config: ConfigOption = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, help="Worker processes (default: available cores).")] = None,
    force: Annotated[bool, typer.Option(help="Redo cases already done in OUT.")] = False,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Run on an existing Dask cluster, e.g. tcp://host:8786.")] = None,
    dask_local: Annotated[Optional[int], typer.Option(
        min=1, help="Start a local Dask cluster of N workers.")] = None,
    shard: Annotated[Optional[str], typer.Option(
        help="Only shard I of N (I/N, I from 0), e.g. $SLURM_ARRAY_TASK_ID/N.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the cases that would be scored; score nothing.")] = False,
    regions: Annotated[Optional[Path], typer.Option(
        help="Region masks for a single case: a folder of NIfTI masks or a label map.")] = None,
    report: Annotated[Optional[bool], typer.Option(
        "--report/--no-report", help="Per-case reports, SEG, SR, masks (config report.enabled).",
    )] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    log_level: Annotated[str, typer.Option(help="Log level of OUT/vascalc.log.")] = "info",
) -> None:
    """Score every case; write scans/regions/lesions tables, data dictionary, run.json."""
    if log_level.lower() not in LOG_LEVELS:
        _fail_usage(f"--log-level {log_level!r}; allowed: {', '.join(LOG_LEVELS)}")
    if scheduler and dask_local:
        _fail_usage("give --scheduler or --dask-local, not both")
    try:
        shard_t = parse_shard(shard)
    except ValueError as err:
        _fail_usage(str(err))
    try:
        cfg = load_config(config)
        if report is not None:
            cfg = cfg.model_copy(update={"report": cfg.report.model_copy(
                update={"enabled": report})})
        cfg = with_study_secret(cfg)  # the key travels with the config to workers
        if dry_run:
            with tempfile.TemporaryDirectory(prefix="vascalc-dry-run-") as work:
                cases, notes = collect_cases(list(inputs), cfg, work_dir=Path(work))
            _print_discovery(select_shard(cases, shard_t), notes)
            raise typer.Exit(0)
        if out.exists() and not out.is_dir():
            raise OutputError("--out is an existing file, not a folder", path=str(out))
        stop = Stop()
        with output_lock(out), stop.signals():  # one run per folder, discovery to tables
            _run(inputs, out, cfg, jobs=jobs, force=force, scheduler=scheduler,
                 dask_local=dask_local, shard_t=shard_t, regions=regions, quiet=quiet,
                 log_level=log_level, stop=stop)
    except VascalcError as err:
        _fail_usage(str(err), err.code)


def _run(inputs, out, cfg, *, jobs, force, scheduler, dask_local, shard_t, regions, quiet,
         log_level, stop: Stop) -> None:
    warned: list[str] = []
    n_jobs = jobs or default_jobs()
    try:
        with stop.running("any"):  # a signal during discovery: nothing to keep, stop now
            cases, notes = collect_cases(list(inputs), cfg, work_dir=out / ".work",
                                         warnings=warned, jobs=1 if scheduler else n_jobs)
    except VascalcError as err:
        shutil.rmtree(out / ".work", ignore_errors=True)
        _fail_usage(str(err), err.code)
    except Abort:
        shutil.rmtree(out / ".work", ignore_errors=True)
        typer.echo(f"interrupted ({stop.signal}) before any case ran: 0 recorded; run again "
                   "to resume", err=True)
        raise typer.Exit(stop.exit_code) from None
    for w in warned:
        typer.echo(f"warning: {w}", err=True)
    if regions is not None:
        if len(cases) != 1:
            _fail_usage(f"--regions applies to one case; {len(cases)} were found (give each "
                        "case its masks in a manifest 'regions' column)")
        if not regions.exists():
            _fail_usage(f"--regions {str(regions)!r} does not exist")
        cases = [dataclasses.replace(cases[0], regions=str(regions))]
    cases = select_shard(cases, shard_t)
    handler = _setup_logging(out, log_level)
    if not quiet:
        typer.echo(f"vascalc {__version__}: {len(cases)} case(s), {n_jobs} job(s) -> {out}")
    progress = Progress(len(cases), quiet)
    try:
        options = RunOptions(jobs=n_jobs, force=force, scheduler=scheduler,
                             dask_local=dask_local, shard=shard_t, argv=tuple(sys.argv),
                             inputs=run_inputs(inputs, regions))
        report = run_batch(cases, cfg, out, options, notes=notes, on_case=progress, stop=stop)
    except VascalcError as err:
        progress.close()
        _fail_usage(str(err), err.code)
    finally:
        progress.close()
        logging.getLogger("vascalc").removeHandler(handler)
        handler.close()
        shutil.rmtree(out / ".work", ignore_errors=True)  # archives extracted for this run
    c = report.counts
    stopped = report.interrupted
    if stopped:
        tables = ("tables written for them" if stopped["tables_written"] else
                  "tables not written (those in OUT are the previous run's)")
        typer.echo(f"interrupted ({stopped['signal']}): {stopped['recorded']} recorded, "
                   f"{len(stopped['not_run'])} not run; {tables}; run again to resume", err=True)
        raise typer.Exit(report.exit_code)
    typer.echo(f"{c['ok']} ok, {c['failed']} failed ({c['reused']} reused), "
               f"{c['not_scored']} file(s) not scored; tables in {out}")
    raise typer.Exit(report.exit_code)


@app.command()
def scan(
    inputs: Annotated[list[Path], typer.Argument(help="Folder trees, series folders, manifests.")],
    config: ConfigOption = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Also write DIR/discovery.csv.")] = None,
) -> None:
    """List what was found and what would be scored, without scoring."""
    try:
        cfg = load_config(config)
        with tempfile.TemporaryDirectory(prefix="vascalc-scan-") as work:
            cases, notes = collect_cases(list(inputs), cfg, work_dir=Path(work))
    except VascalcError as err:
        _fail_usage(str(err), err.code)
    _print_discovery(cases, notes)
    if out is not None:
        write_atomic(out / "discovery.csv",
                     to_csv(discovery_rows(cases, notes), DISCOVERY_COLUMNS))


def _print_discovery(cases, notes) -> None:
    for r in discovery_rows(cases, notes):
        typer.echo(f"{r['status']:<11}{r['case_id'] or '-':<28}{r['images']:>6}  {r['path']}"
                   + (f"  ({r['reason']})" if r["reason"] else ""))
    typer.echo(f"{len(cases)} case(s) would be scored; {len(notes)} file(s) not scored")


@app.command()
def calibrate(
    series: Annotated[Path, typer.Argument(
        help="The calibration phantom's CT: a series folder, a DICOM file, a NIfTI or a zip.")],
    inserts: Annotated[Path, typer.Option(
        help="YAML list of inserts: name, density_mg_per_cm3 (0 = water), center_mm [x, y, z] "
             "in patient coordinates, radius_mm.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Config snippet to write (YAML).")],
    voxel_size_um: Annotated[Optional[float], typer.Option(
        help="Micro-CT: the voxel size when the stack records none.")] = None,
) -> None:
    """Measure a calibration phantom; write the mass calibration factor c as a config snippet.
    On a micro-CT stack (Bruker folder, ISQ/AIM, TIFF, NRRD/MHA) fit two or more HA rods
    (centres in mm from the first voxel: index x voxel size) into microct.calibration_*."""
    if microct_kind(series) is not None:
        calibrate_rods(series, inserts, out, voxel_size_um, _fail_usage)
        return
    try:
        ins = read_inserts(inserts)
    except ConfigError as err:
        _fail_usage(str(err), err.code)
    try:
        # a calibration phantom may be reconstructed without air around it: no HU air check
        vol = load_ct(series, Config(input={"require_hu": False}))
        cal = run_calibration(vol, ins)
    except VascalcError as err:
        typer.echo(f"error [{err.code}]: {err}", err=True)
        raise typer.Exit(1) from None
    except ValueError as err:
        _fail_usage(f"{inserts}: {err}")
    write_atomic(out, snippet(cal, str(series)))
    for r in cal.inserts:
        typer.echo(f"{r['name']:<12} {r['density_mg_per_cm3']:>8.1f} mg/cm3  "
                   f"{r['mean_hu']:>9.2f} HU  ({r['voxels']} voxels)")
    typer.echo(f"c = {cal.c_mg_per_cm3_per_hu:.6g} mg/(cm3*HU); written to {out}")


@app.command()
def segment(
    inputs: Annotated[list[Path], typer.Argument(
        help="Folder trees, series folders, NIfTI files or manifest CSVs (as for run).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Segmentation cache folder.")],
    config: ConfigOption = None,
    fast: Annotated[bool, typer.Option(
        "--fast/--full", help="TotalSegmentator's 3 mm model (fast on a CPU) or 1.5 mm.")] = True,
    device: Annotated[str, typer.Option(help="cpu, gpu, or gpu:N.")] = "cpu",
) -> None:
    """Run TotalSegmentator on every case (cached per input); write a manifest for run.

    Give --config the profile you will run with (totalsegmentator): its classes
    are the ones segmented."""
    from ..segmentation.totalsegmentator import api, segment_cases  # lazy: optional extra

    try:
        cfg = load_config(config)
        run_ts = api()
        cases, _ = collect_cases(list(inputs), cfg, work_dir=out / "inputs")
    except VascalcError as err:
        _fail_usage(str(err), err.code)

    def show(case, seg, error) -> None:
        what = f"FAILED: {error}" if seg is None else ("reused" if seg.reused else "segmented")
        typer.echo(f"{case.case_id}: {what}")

    manifest, status = segment_cases(cases, cfg, out, fast=fast, device=device, run=run_ts,
                                     on_case=show)
    columns = list(dict.fromkeys(k for row in manifest for k in row))
    write_atomic(out / "manifest.csv", to_csv(manifest, columns))
    write_atomic(out / "segmentation.csv", to_csv(status, list(status[0])))
    n_bad = sum(1 for s in status if s["status"] != "ok")
    typer.echo(f"{len(status) - n_bad} segmented, {n_bad} failed; score them with: vascalc run "
               f"{out / 'manifest.csv'} --config totalsegmentator --out RESULTS")
    raise typer.Exit(1 if n_bad else 0)


@app.command()
def merge(
    parts: Annotated[list[Path], typer.Argument(help="Output folders of shard runs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged output folder.")],
) -> None:
    """Combine the outputs of shard runs (--shard I/N) into one set of tables."""
    try:
        summary = merge_outputs(parts, out)
    except VascalcError as err:
        _fail_usage(str(err), err.code)
    c = summary["counts"]
    typer.echo(f"merged {len(parts)} output(s): {c['ok']} ok, {c['failed']} failed; "
               f"tables in {out}")
    raise typer.Exit(1 if c["failed"] else 0)


register_review(app, _fail_usage)
register_starter(app, _fail_usage, run)
register_cohort(app, _fail_usage)
register_pacs(app, _fail_usage)
register_microct(app, _fail_usage)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
