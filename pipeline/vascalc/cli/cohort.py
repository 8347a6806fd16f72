"""The cohort commands of the CLI: progression and summary (registered on cli.app).

Each reads a scans table (and regions table), calls :mod:`vascalc.cohort`, writes its tables
and prints what it left out and why; a table without the needed columns is a usage error
(exit 2), like the rest of the CLI.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..files import write_atomic
from ..outputs.tables import to_csv
from ..results.columns import PROGRESSION, PROGRESSION_REGIONS


def register(app: typer.Typer, fail: Callable[[str], None]) -> None:
    """Add progression and summary to ``app``; ``fail`` prints an error and exits with 2."""

    def _read_table(path: Path) -> list[dict]:
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            fail(f"{path}: cannot read the table ({err})")
        if not rows:
            fail(f"{path}: the table has no rows")
        return rows


    def _require(rows: list[dict], columns: tuple[str, ...], path: Path) -> None:
        missing = [c for c in columns if c not in rows[0]]
        if missing:
            fail(f"{path}: missing column(s) {', '.join(missing)}; a vascalc scans.csv has "
                        "them (or join your scan dates to it)")


    @app.command()
    def progression(
        table: Annotated[Path, typer.Argument(help="scans.csv (patient_id, study_date, scores).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
        regions: Annotated[Optional[Path], typer.Option(
            help="regions.csv of the same run: also pair each region (progression_regions.csv).")
        ] = None,
    ) -> None:
        """Pair each patient's scans in date order; write progression.csv and its dictionary."""
        from ..cohort.progression import pair_region_rows, pair_rows  # lazy: pandas

        rows = _read_table(table)
        _require(rows, ("case_id", "patient_id", "volume_mm3"), table)
        if "study_date" not in rows[0] and "scan_date" not in rows[0]:
            fail(f"{table}: needs a study_date or scan_date column")
        try:
            pairs, notes = pair_rows(rows)
        except ValueError as err:  # a hand-made table: named, never a traceback
            fail(f"{table}: {err}")
        names = [c.name for c in PROGRESSION]
        write_atomic(out / "progression.csv", to_csv(pairs, names))
        write_atomic(out / "progression_dictionary.csv", to_csv(
            [{"name": c.name, "type": c.type, "unit": c.unit, "meaning": c.meaning}
             for c in (PROGRESSION_REGIONS if regions is not None else PROGRESSION)],
            ["name", "type", "unit", "meaning"]))
        if regions is not None:
            reg_rows = _read_table(regions)
            _require(reg_rows, ("case_id", "region", "volume_mm3"), regions)
            try:
                reg_pairs, reg_notes = pair_region_rows(rows, reg_rows)
            except ValueError as err:
                fail(f"{regions}: {err}")
            write_atomic(out / "progression_regions.csv",
                         to_csv(reg_pairs, [c.name for c in PROGRESSION_REGIONS]))
            typer.echo(f"{len(reg_pairs)} region pair(s) over {len({p['region'] for p in reg_pairs})} "
                       f"region(s); {out / 'progression_regions.csv'}")
            for n in reg_notes:
                typer.echo(f"  left out {n['case_id']}: {n['reason']}")
        n_h = sum(1 for p in pairs if p["progression_hokanson"])
        n_r = sum(1 for p in pairs if p["progression_raggi"])
        typer.echo(f"{len(pairs)} pair(s) from {len({p['patient_id'] for p in pairs})} patient(s): "
                   f"{n_h} progress by Hokanson, {n_r} by Raggi; {len(notes)} scan(s) left out; "
                   f"{out / 'progression.csv'}")
        for n in notes:
            typer.echo(f"  left out {n['case_id']}: {n['reason']}")


    @app.command()
    def summary(
        table: Annotated[Path, typer.Argument(help="scans.csv (or any table with its columns).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
        group: Annotated[Optional[str], typer.Option(help="Column to summarise by, too.")] = None,
        figures: Annotated[bool, typer.Option(help="Write the PNG figures.")] = True,
        baseline_only: Annotated[bool, typer.Option(
            "--baseline-only", help="Only each patient's first ok scan.")] = False,
    ) -> None:
        """Cohort summary per scope: counts, median/IQR of each score, zero calcium, categories."""
        from ..cohort.summary import SUMMARY_COLUMNS, scans_frame, summary_json, summary_table  # lazy: pandas

        rows = _read_table(table)
        _require(rows, ("case_id", "status", "agatston", "volume_mm3"), table)
        if group and group not in rows[0]:
            fail(f"--group {group!r} is not a column of {table}; columns: "
                        f"{', '.join(rows[0])}")
        try:
            frame = scans_frame(rows)
        except ValueError as err:  # inf or nan in a score: named, never a traceback
            fail(f"{table}: {err}")
        table_df = summary_table(frame, group, baseline_only=baseline_only)
        groups = summary_json(table_df)
        write_atomic(out / "summary.json", json.dumps(groups, indent=2, allow_nan=False) + "\n")
        write_atomic(out / "summary.csv", to_csv(table_df.to_dict("records"), SUMMARY_COLUMNS))
        if figures:
            from ..outputs import figures as fig  # lazy: matplotlib, for this command only

            out.mkdir(parents=True, exist_ok=True)
            try:
                fig.agatston_distribution(rows, out / "agatston_log_distribution.png")
                fig.calc_bsa_by_group(rows, group, out / "calc_bsa_by_group.png")
                fig.progression_per_patient(rows, out / "progression_per_patient.png")
            except (ValueError, OverflowError) as err:  # values no axis can hold (1e308)
                typer.echo(f"warning: figures not drawn ({type(err).__name__}: {err}); the "
                           "tables are written", err=True)
        a = groups["all"]
        def median(s) -> str:
            m = s["scores"]["agatston"]["median"]
            return "-" if m is None else f"{m:.1f}"

        per_scope = "; ".join(f"{scope}: {s['n_scans']} scan(s), median agatston {median(s)}, "
                              f"zero calcium {s['zero_calcium']['n']}"
                              for scope, s in a["scopes"].items())
        typer.echo(f"{a['n_scans']} scan(s) of {a['n_patients']} patient(s)"
                   f"{' (baseline only)' if baseline_only else ''}; {per_scope or 'no scan ok'}; "
                   f"tables in {out}")
