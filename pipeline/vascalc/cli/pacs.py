"""The DICOM commands of the CLI: listen (a DICOM node) and send (a finished run's results),
registered on cli.app. Both send through the same durable outbox (vascalc.pacs)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..config.load import load_config
from ..errors import VascalcError
from .options import ConfigOption


def _destinations(send_to: list[str], stow_url: list[str]):
    from ..pacs.send import parse_destination  # lazy: the DICOM commands only

    return [parse_destination(t) for t in [*send_to, *stow_url]]


def register(app: typer.Typer, fail: Callable[[str, str], None]) -> None:
    """Add listen and send to ``app``; ``fail`` prints an error and exits with 2."""

    @app.command()
    def listen(
        out: Annotated[Path, typer.Argument(help="Folder of the node: received instances, "
                                            "results, node.sqlite, its log.")],
        port: Annotated[int, typer.Option(min=1, max=65535, help="DICOM port.")] = 11112,
        ae_title: Annotated[str, typer.Option(help="This node's AE title.")] = "VASCALC",
        send_to: Annotated[Optional[list[str]], typer.Option(
            help="AET@HOST:PORT to send results to (repeat for several); its AE title may "
                 "also send studies.")] = None,
        stow_url: Annotated[Optional[list[str]], typer.Option(
            help="DICOMweb root URL to STOW-RS results to (repeat for several).")] = None,
        allow: Annotated[Optional[list[str]], typer.Option(
            help="A caller allowed to send studies, AET@HOST (its AE title from that "
                 "address; AET alone admits it from any address) (repeat).")] = None,
        host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for every "
                                          "interface).")] = "127.0.0.1",
        config: ConfigOption = None,
    ) -> None:
        """Receive studies (C-STORE), score each when complete, send SR, SEG, PDF and a
        summary image back into the same study."""
        from ..pacs.node import Node  # lazy: the DICOM commands only
        from ..review.rescore import rescore_finished  # lazy: the node applies finished reads

        try:
            cfg = load_config(config)
            dests = _destinations(send_to or [], stow_url or [])
            if not dests:
                raise VascalcError("give at least one --send-to AET@HOST:PORT or --stow-url")
            node = Node(out, ae_title=ae_title, port=port, destinations=dests,
                        allow=allow or [], config=cfg, host=host, reread=rescore_finished)
            if not node.callers:
                raise VascalcError("no caller may send studies to this node: give --allow "
                                   "AET@HOST (the PACS's AE title and address), or a --send-to "
                                   "AET@HOST:PORT whose AE title may also send")
            _log_to(out)
            node.start()
        except (VascalcError, OSError, ValueError) as err:
            fail(str(err), getattr(err, "code", "USAGE"))
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"vascalc listen: reachable on {host}; only the callers below are "
                       "admitted, by AE title and address", err=True)
        signal.signal(signal.SIGTERM, lambda *_: node.stop_soon())
        typer.echo(f"vascalc listen: {ae_title} on {host}:{port}, results to "
                   f"{', '.join(d.key for d in dests)}; callers allowed: "
                   f"{node.callers_text()}; Ctrl-C stops")
        try:
            node.serve()
        except KeyboardInterrupt:
            pass
        finally:
            node.stop()

    @app.command()
    def send(
        out: Annotated[Path, typer.Argument(help="Output folder of a vascalc run (with "
                                            "--report).", exists=True, file_okay=False)],
        to: Annotated[Optional[list[str]], typer.Option(
            help="AET@HOST:PORT or a DICOMweb root URL (repeat for several).")] = None,
        stow_url: Annotated[Optional[list[str]], typer.Option(
            help="DICOMweb root URL to STOW-RS to (repeat).")] = None,
        case: Annotated[Optional[list[str]], typer.Option(help="Only this case (repeat).")
                        ] = None,
        ae_title: Annotated[str, typer.Option(help="The calling AE title.")] = "VASCALC",
        attempts: Annotated[int, typer.Option(min=1, help="Tries per object.")] = 3,
        config: ConfigOption = None,
    ) -> None:
        """Send a finished run's SR, SEG, PDF and summary image to a PACS, through the same
        outbox as listen (OUT/outbox.sqlite: a second send sends only what is not acknowledged)."""
        from ..pacs.node import send_run  # lazy: the DICOM commands only

        try:
            cfg = load_config(config)
            dests = _destinations(to or [], stow_url or [])
            if not dests:
                raise VascalcError("give --to AET@HOST:PORT or --stow-url URL")
            lc = cfg.listen.model_copy(update={"max_attempts": attempts, "retry_base_s": 1.0})
            results = send_run(out, dests, cfg.model_copy(update={"listen": lc}),
                               cases=case or None, ae_title=ae_title)
        except (VascalcError, OSError, ValueError) as err:
            fail(str(err), getattr(err, "code", "USAGE"))
        bad = [r for r in results if r["state"] != "sent"]
        for r in bad:
            typer.echo(f"not sent: {Path(r['path']).parent.name}/{Path(r['path']).name} to "
                       f"{r['destination']}: {r['last_error']}", err=True)
        typer.echo(f"{len(results) - len(bad)} object(s) sent, {len(bad)} not sent")
        raise typer.Exit(1 if bad else 0)


def _log_to(out: Path) -> None:
    logger = logging.getLogger("vascalc")
    logger.setLevel(logging.INFO)
    fh = logging.FileHandler(Path(out) / "vascalc.log", encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(err)
    logger.propagate = False

