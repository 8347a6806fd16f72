"""The ``vascalc`` command: parse, call the library, print, map errors to exit codes.

Exit codes (DESIGN.md): 0 every case succeeded; 1 at least one case failed (its row says
why, the others are written); 2 usage or config error (nothing was run).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import UsageError, VascalcError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Vascular calcification on CT: Agatston, volume, mass, Calc/BSA.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vascalc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = None) -> None:
    """vascalc: from CT DICOM series to calcium scores and tidy tables."""


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
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="YAML config; defaults in configs/default.yaml.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    log_level: Annotated[str, typer.Option(help="Log level of OUT/vascalc.log.")] = "info",
) -> None:
    """Score every case and write scans.csv, lesions.csv, data_dictionary.csv, run.json."""
    from .batch import collect_cases, run_batch
    from .config import load_config
    from .types import CaseFailure

    try:
        cfg = load_config(config)
        cases, notes = collect_cases(list(inputs), cfg)
    except UsageError as err:
        typer.echo(f"error [{err.code}]: {err}", err=True)
        raise typer.Exit(2) from None
    except VascalcError as err:
        typer.echo(f"error [{err.code}]: {err}", err=True)
        raise typer.Exit(2) from None
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        typer.echo(f"error [USAGE]: --log-level {log_level!r}; allowed: debug, info, "
                   "warning, error", err=True)
        raise typer.Exit(2)
    handler = _setup_logging(out, log_level)

    def progress(case, result) -> None:
        if quiet:
            return
        if isinstance(result, CaseFailure):
            typer.echo(f"  FAILED {case.case_id}: [{result.error_code}] {result.error}")
        else:
            typer.echo(f"  ok     {case.case_id}: Agatston {result.whole.agatston:.1f}, "
                       f"volume {result.whole.volume_mm3:.1f} mm3, "
                       f"{result.whole.n_lesions} lesions")

    if not quiet:
        typer.echo(f"vascalc {__version__}: {len(cases)} case(s) -> {out}")
    try:
        summary = run_batch(cases, cfg, out, argv=sys.argv, notes=notes, on_case=progress)
    finally:
        logging.getLogger("vascalc").removeHandler(handler)
        handler.close()
    c = summary["counts"]
    typer.echo(f"{c['ok']} ok, {c['failed']} failed, {c['not_scored']} file(s) not scored; "
               f"tables in {out}")
    raise typer.Exit(1 if c["failed"] else 0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
