"""The micro-CT commands of the CLI (registered on cli.app): ``vascalc microct`` scores
stacks into the micro-CT tables with a progress bar by slices; ``vascalc calibrate`` on a
micro-CT stack fits HA rods (:func:`calibrate_rods`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from ..config.calibration import microct_snippet, read_inserts
from ..config.load import load_config
from ..core.rods import fit_rods
from ..errors import ConfigError, VascalcError
from ..files import write_atomic
from ..io.microct import open_microct
from ..outputs.microct_tables import animal_reports, write_tables
from ..run.microct import discover_microct, score_case
from .options import ConfigOption


def calibrate_rods(stack_path: Path, inserts: Path, out: Path, voxel_size_um: float | None,
                   fail: Callable[[str], None]) -> None:
    """Fit the HA rods of ``inserts`` on the micro-CT stack and write the config snippet."""
    try:
        rods = read_inserts(inserts)
    except ConfigError as err:
        fail(str(err))
    try:
        stack = open_microct(stack_path, voxel_size_um=voxel_size_um)
        fit = fit_rods(stack.read, stack.shape, stack.spacing_mm, rods,
                       source=f"rods:{inserts.name}")
    except VascalcError as err:
        typer.echo(f"error [{err.code}]: {err}", err=True)
        raise typer.Exit(1) from None
    except ValueError as err:
        fail(f"{inserts}: {err}")
    write_atomic(out, microct_snippet(fit, str(stack_path), inserts.name))
    for r in fit.rods:
        typer.echo(f"{r['name']:<12} {r['density_mg_ha_cm3']:>8.1f} mg HA/cm3  mean "
                   f"{r['mean_value']:>10.3f}  fitted {r['fitted_mg_ha_cm3']:>8.2f}  residual "
                   f"{r['residual_mg_ha_cm3']:+.2f}  ({r['voxels']} voxels)")
    cal = fit.calibration
    typer.echo(f"density = {cal.slope:.6g} x value + {cal.intercept:.6g} mg HA/cm3, valid "
               f"{cal.valid_min_mg_ha_cm3:g}-{cal.valid_max_mg_ha_cm3:g}; written to {out}")


class SliceBar:
    """Progress by slices: a rich bar on a terminal, one line per case otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from rich import progress as rp  # lazy

            self.bar = rp.Progress(rp.TextColumn("[bold]{task.description}"), rp.BarColumn(),
                                   rp.MofNCompleteColumn(), rp.TextColumn("slices"),
                                   rp.TimeRemainingColumn())
            self.bar.start()
        self.task: Any = None

    def case(self, case_id: str) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            if self.bar is None:
                return
            if self.task is None:
                self.task = self.bar.add_task(case_id, total=total)
            self.bar.update(self.task, completed=done, total=total, description=case_id)
        self.task = None
        return update

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: typer.Typer, fail: Callable[[str], None]) -> None:
    """Add ``vascalc microct`` to ``app``; ``fail`` prints an error and exits with 2."""

    @app.command()
    def microct(
        inputs: Annotated[list[Path], typer.Argument(
            help="Micro-CT stacks (Bruker folders, ISQ/AIM, TIFF, NRRD/MHA), folder trees of "
                 "them, or a micro-CT manifest CSV (case_id, path, voxel_size_um, voi, "
                 "animal_id, group, treatment, time_point).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
        config: ConfigOption = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Score micro-CT stacks (animal studies): volume in mm3, mineral mass in mg HA,
        lesions, per VOI; streamed in slabs. Exit 0 all ok, 1 a case failed, 2 usage."""
        try:
            cfg = load_config(config)
            cases = discover_microct(list(inputs))
        except VascalcError as err:
            fail(f"[{err.code}] {err}")
        if not cases:
            fail("no micro-CT stack found in the inputs")
        tables: dict[str, list[dict]] = {}
        bar = SliceBar(quiet)
        try:
            for case in cases:
                rows = score_case(case, cfg, progress=bar.case(case.case_id))
                for k, v in rows.items():
                    tables.setdefault(k, []).extend(v)
                scan = rows["microct_scans"][0]
                if not quiet:
                    what = (f"{scan['volume_mm3']:.4g} mm3, mass "
                            f"{'-' if scan['mass_mg'] is None else format(scan['mass_mg'], '.4g')}"
                            f" mg, {scan['n_lesions']} lesion(s)" if scan["status"] == "ok"
                            else f"FAILED [{scan['error_code']}] {scan['error']}")
                    typer.echo(f"{case.case_id}: {what}", err=scan["status"] != "ok")
        finally:
            bar.stop()
        try:
            write_tables(out, tables)
            animal_reports(out, tables.get("microct_scans", []))
        except OSError as err:
            fail(f"[OUTPUT_UNWRITABLE] {out}: cannot write the tables ({err}) -> choose a "
                 "writable --out folder")
        failed = sum(r["status"] != "ok" for r in tables.get("microct_scans", []))
        typer.echo(f"{len(cases) - failed} scored, {failed} failed; tables in {out}")
        raise typer.Exit(1 if failed else 0)

