"""The reader commands of the CLI: review, rescore, agreement (registered on cli.app).

Each parses, calls :mod:`vascalc.review`, prints and maps errors to exit codes (2 for usage
and input errors), like the rest of the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Callable

import typer

from ..errors import VascalcError
from ..results.document import scan_of

OUT_ARG = typer.Argument(help="Output folder of a vascalc run.", exists=True, file_okay=False)


def register(app: typer.Typer, fail: Callable[[str, str], None]) -> None:
    """Add the reader commands to ``app``; ``fail`` prints an error and exits with 2."""

    @app.command()
    def review(
        out: Annotated[Path, OUT_ARG],
        port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
        reader: Annotated[list[str] | None, typer.Option(
            help="A reader's name (reads are kept per reader); repeat it for several readers, "
                 "each with their own URL and token, blinded to the others' labels "
                 "[default: reader1].")] = None,
        adjudicator: Annotated[str | None, typer.Option(
            help="An adjudicator's name: a URL of its own that also shows every reader's "
                 "labels (and any one reader's work).")] = None,
        host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless you "
                                          "know why (the token still guards it).")] = "127.0.0.1",
    ) -> None:
        """Label the run's lesions in the browser (arteries or not); reads go to OUT/reads.sqlite."""
        from ..review.server import ReviewApp, make_server, urls_of  # lazy: review only

        names = reader if reader else ([] if adjudicator else ["reader1"])
        try:
            app_state = ReviewApp(out, readers=names, adjudicator=adjudicator)
            server = make_server(app_state, host=host, port=port)
        except (VascalcError, ValueError) as err:
            fail(str(err), getattr(err, "code", "USAGE"))
        except OSError as err:
            fail(f"cannot listen on {host}:{port}: {err.strerror}", "USAGE")
        import threading  # lazy: review only

        threading.Thread(target=app_state.warm_up, daemon=True, name="warm-up").start()
        typer.echo(f"vascalc review: {len(app_state.docs)} case(s) in {out}")
        for who, url in urls_of(server, app_state):
            role = "adjudicator" if who.adjudicator else "reader"
            typer.echo(f"{role} {who.reader}: open {url}")
        typer.echo("(each URL is for its reader only; Ctrl+C stops; every acknowledged read "
                   "is already saved)")
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    @app.command()
    def rescore(
        out: Annotated[Path, OUT_ARG],
        reader: Annotated[str | None, typer.Option(help="Whose reads (default: the only "
                                                   "reader).")] = None,
        include_unfinished: Annotated[bool, typer.Option(
            "--include-unfinished", help="Also rescore cases the reader has not marked done: "
            "flagged review_incomplete, no risk category or CAC-DRS.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    ) -> None:
        """Rebuild tables, reports, SEG and SR from a reader's finished reads: scores, risk, CAC-DRS."""
        from ..review.rescore import rescore as do_rescore  # lazy: review only

        def said(cid, doc):
            if not quiet:
                s = scan_of(doc)
                typer.echo(f"{cid}: coronary Agatston {s.get('agatston')}, "
                           f"{s.get('risk_category') or '-'}, {s.get('cac_drs') or '-'}"
                           f"{'/' + s['cac_drs_vessels'] if s.get('cac_drs_vessels') else ''}"
                           + ("  [review incomplete: not a final]" if "review_incomplete"
                              in (s.get("quality_flags") or "").split(";") else ""))
        try:
            summary = do_rescore(out, reader=reader, argv=sys.argv, on_case=said,
                                 include_unfinished=include_unfinished)
        except VascalcError as err:
            fail(str(err), err.code)
        r = summary["rescored"]
        typer.echo(f"rescored {len(r['case_ids'])} case(s) from the reads of {r['reader']}; "
                   f"tables in {out}")
        left = [c for c in r["unfinished"] if c not in r["case_ids"]]
        if left:
            typer.echo(f"{len(left)} case(s) not marked done kept the run's result: "
                       f"{', '.join(left)} (mark them done in vascalc review, or "
                       "--include-unfinished)")
        unconfirmed = [c for c in r.get("unconfirmed", []) if c not in r["case_ids"]]
        if unconfirmed:
            typer.echo(f"{len(unconfirmed)} case(s) marked done with calcium left unlabelled "
                       "and no confirmation that it is not coronary kept the run's result: "
                       f"{', '.join(unconfirmed)} (label it, or confirm in vascalc review)")

    @app.command()
    def agreement(
        out: Annotated[Path, OUT_ARG],
        readers: Annotated[str, typer.Option(help="Two readers, comma-separated: r1,r2.")],
    ) -> None:
        """Two readers' agreement (ICC of Agatston, Cohen's kappa); writes OUT/agreement/."""
        from ..review.agreement import agreement as do_agreement  # lazy: review only

        names = [r.strip() for r in readers.split(",") if r.strip()]
        if len(names) != 2:
            fail(f"--readers needs two names, got {readers!r}", "USAGE")
        try:
            result = do_agreement(out, (names[0], names[1]))
        except (VascalcError, ValueError) as err:
            fail(str(err), getattr(err, "code", "USAGE"))
        for r in result["rows"]:
            v = "-" if r["value"] is None else f"{r['value']:.3f}"
            typer.echo(f"{r['measure']:<28} {r['statistic']:<12} n={r['n']:<5} {v}"
                       f"{'  (' + r['note'] + ')' if r['note'] else ''}")
        for left in result["left_out"]:
            typer.echo(f"left out: {left['case_id']} ({left['reader']}): {left['reason']}")
        typer.echo(f"written to {result['folder']}")
