"""What ``vascalc run`` shows while it works: a rich progress bar on a terminal, one plain
line per case otherwise, nothing when quiet. Case ids, codes and scores only: no identity."""

from __future__ import annotations

import sys
import time

import typer

from ..results.document import scan_of
from ..results.wording import headline_text


class Progress:
    """A rich progress bar on a terminal; plain lines otherwise; nothing when quiet."""

    def __init__(self, total: int, quiet: bool):
        self.quiet, self.done, self.failed, self.reused = quiet, 0, 0, 0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from rich import progress as rp  # lazy: only a terminal shows the bar

            self.bar = rp.Progress(rp.TextColumn("[bold]scoring"), rp.BarColumn(),
                                   rp.MofNCompleteColumn(), rp.TextColumn("{task.fields[failed]} failed"),
                                   rp.TextColumn("{task.fields[rate]}"), rp.TimeElapsedColumn(),
                                   rp.TimeRemainingColumn(), transient=False, auto_refresh=False)
            self.task = self.bar.add_task("cases", total=total, failed=0, rate="")
            self.bar.start()
        self.total = total
        self.t0 = time.perf_counter()

    def __call__(self, case, doc, reused: bool) -> None:
        scan = scan_of(doc)
        self.done += 1
        self.reused += reused
        ok = scan["status"] == "ok"
        self.failed += not ok
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=1, failed=self.failed,
                            rate=f"{(self.done - self.reused) / elapsed:.2f} cases/s")
            self.bar.refresh()  # no refresh thread: workers may be forked safely
            if not ok:
                self.bar.console.print(f"FAILED {case.case_id}: [{scan['error_code']}] "
                                       f"{scan['error']}", markup=False, highlight=False)
            return
        if self.quiet:
            return
        n = f"[{self.done}/{self.total}]"
        if reused:
            typer.echo(f"{n} done   {case.case_id} (reused: same config and input)")
        elif ok:
            typer.echo(f"{n} ok     {case.case_id}: {headline_text(scan)}")
        else:
            typer.echo(f"{n} FAILED {case.case_id}: [{scan['error_code']}] {scan['error']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
