"""The commands a new user starts with (registered on cli.app): ``vascalc config list | show |
init`` over the bundled profiles, and ``vascalc demo``, which makes the sample phantoms and
scores them as ``make demo`` does. They need nothing but the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..config.describe import commented_yaml
from ..config.load import config_from_dict
from ..config.profiles import profile_names, profile_summary, resolve
from ..errors import ConfigError, VascalcError
from ..values import safe_yaml


def _resolved(spec: str) -> tuple[str, str]:
    """``(source, commented YAML)`` of a profile name or config file, every key resolved."""
    source, text = resolve(spec)
    given = safe_yaml(text) or {}
    if not isinstance(given, dict):
        raise ConfigError(f"top level must be a mapping, got {type(given).__name__}", path=source)
    cfg = config_from_dict(given, source=source)
    own = [line.lstrip("#").strip() for line in text.splitlines()[:12] if line.startswith("#")]
    header = [f"vascalc config from {source}", *own[:8], ""]
    return source, commented_yaml(cfg, header=header, given=given)


def register(app: typer.Typer, fail: Callable[[str, str], None], run: Callable[..., None]) -> None:
    """Add ``config`` and ``demo`` to ``app``; ``run`` is the run command, which demo calls."""
    config_app = typer.Typer(no_args_is_help=True, help="The bundled profiles: list, show, "
                             "start your own.")
    app.add_typer(config_app, name="config")

    @config_app.command("list")
    def list_() -> None:
        """The bundled profiles, each with one line (use one with --config NAME)."""
        names = profile_names()
        width = max(len(n) for n in names)
        for name in names:
            typer.echo(f"{name:<{width}}  {profile_summary(name)}")

    @config_app.command()
    def show(
        name: Annotated[str, typer.Argument(help="A profile name (vascalc config list) or a "
                                            "YAML file.")] = "default",
        as_written: Annotated[bool, typer.Option(
            "--as-written", help="Print the file as written instead of every key resolved."
        )] = False,
    ) -> None:
        """Print a profile or config file: every key with its value and what it means."""
        try:
            text = resolve(name)[1] if as_written else _resolved(name)[1]
        except VascalcError as err:
            fail(str(err), err.code)
        typer.echo(text, nl=False)

    @config_app.command()
    def init(
        path: Annotated[Path, typer.Argument(help="Config file to write.")] = Path("vascalc.yaml"),
        start: Annotated[str, typer.Option(
            "--from", help="The profile (or file) to start from.")] = "default",
        force: Annotated[bool, typer.Option(help="Overwrite PATH if it exists.")] = False,
    ) -> None:
        """Write a commented starting config (every key, with the values of --from)."""
        if path.exists() and not force:
            fail(f"{path} exists; choose another path or give --force", "USAGE")
        try:
            text = _resolved(start)[1]
        except VascalcError as err:
            fail(str(err), err.code)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {path} (from {start}); use it with --config {path}")

    @app.command()
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
            "vascalc-demo"),
        data: Annotated[Optional[Path], typer.Option(
            help="Where the phantoms are written (default: OUT/inputs); reused when there.")
        ] = None,
        jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1)] = None,
    ) -> None:
        """Make the sample phantoms (DICOM series, masks, manifest) and score them with the
        sample_data profile: reports, tables, SEG and SR, as make demo does."""
        from ..sample_data.generate import generate  # lazy: only the demo makes phantoms

        data = data if data is not None else out / "inputs"
        manifest = data / "manifest.csv"
        if not manifest.is_file():
            typer.echo(f"writing the sample phantoms to {data}")
            generate(data)
        code = 0
        try:
            run([manifest], out, "sample_data", jobs=jobs)
        except typer.Exit as done:
            code = done.exit_code
        reads = data / "sample_reads.csv"
        if reads.is_file():
            from ..review.sample_reads import READER, apply_sample_reads  # lazy: demo only

            read = apply_sample_reads(out, reads)
            if read:
                typer.echo(f"sample reads (a made-up reader, '{READER}') applied to "
                           f"{', '.join(read)} and rescored: its final coronary report is "
                           f"{out / 'cases' / read[0] / 'report.pdf'}")
        typer.echo(f"\nResults are in {out}: open {out / 'index.html'} (reports per case and per "
                   "patient), or read scans.csv, regions.csv, regions_wide.csv, lesions.csv, "
                   "data_dictionary.csv, run.json")
        typer.echo(f"To assign lesions to arteries in the browser: vascalc review {out} "
                   "--reader YOURNAME")
        raise typer.Exit(code)
