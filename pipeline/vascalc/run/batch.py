"""Run many cases: resume, move cases to :func:`vascalc.run.case.run_case` (serially, on a
process pool, or on a Dask cluster) and their documents back, then rebuild the tables.

- A case that fails becomes a row with status=failed and never stops the others; a worker
  process that dies takes only its own case with it.
- Each finished case is written at once, atomically, to ``OUT/cases/<case_id>/result.json``
  (with the config sha256 and the input fingerprint). A rerun into the same folder reuses every
  case whose result is ok with the same config and fingerprint (``force`` redoes them), so a
  run killed at any instant loses no finished case.
- The tables are always rebuilt from the per-case results, so they are identical whatever the
  order, the number of workers, the scheduler or the interruptions.
- A stop request (SIGINT, SIGTERM: :mod:`vascalc.run.interrupt`) starts no new case, lets the
  running ones finish or abandons them, records every finished one and writes the tables of
  what is done (run.json ``interrupted`` says what was not run); a case's artefacts and its
  result land together or not at all (:mod:`vascalc.results.casefolder`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..config.schema import Config
from ..errors import OutputError
from ..files import write_all
from ..outputs.tables import json_text, to_csv
from ..results.casefolder import recover
from ..results.document import reuse, scan_of, write_result
from .discovery import DISCOVERY_COLUMNS, Case, discovery_rows
from .executors import decide, execute, start_method
from .interrupt import Abort, Stop
from .lock import output_lock
from .options import RunOptions, RunReport
from .rebuild import rebuild

log = logging.getLogger("vascalc")

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


def run_batch(cases: list[Case], config: Config, out: Path,
              options: RunOptions | None = None, *,
              notes: list[dict[str, str]] | None = None,
              on_case: Callable[[Case, dict, bool], None] | None = None,
              stop: Stop | None = None) -> RunReport:
    """Run every case (reusing finished ones), then rebuild the tables and run.json (which
    lists the run's case ids and its shard, for merge, and the ``inputs`` the cases were
    found in, for review and rescore). ``notes``: the files discovery did not score.
    ``stop``: the run's stop request (the command line turns SIGINT and SIGTERM into it)."""
    with output_lock(out):
        summary = _run_batch(cases, config, out, options or RunOptions(), notes=notes,
                             on_case=on_case, stop=stop or Stop())
    return RunReport(summary)


def fingerprints(cases: list[Case], jobs: int, stop: Stop | None = None) -> list[str | None]:
    """Each case's input fingerprint (its files' content hashed), on up to ``jobs`` threads
    (sha256 releases the GIL); the threads are gone before any worker is forked. After a
    stop request the cases not yet fingerprinted get None (they are not run)."""
    stop = stop or Stop()

    def one(case: Case) -> str | None:
        return None if stop.requested else case.fingerprint()

    if jobs < 2 or len(cases) < 2:
        return [one(c) for c in cases]
    with ThreadPoolExecutor(max_workers=min(jobs, 8)) as threads:
        return list(threads.map(one, cases))


def _run_batch(cases: list[Case], config: Config, out: Path, opts: RunOptions, *,
               notes: list[dict[str, str]] | None,
               on_case: Callable[[Case, dict, bool], None] | None,
               stop: Stop) -> dict[str, Any]:
    jobs, force, scheduler, dask_local = opts.jobs, opts.force, opts.scheduler, opts.dask_local
    _remove_stale_temporaries(out)
    recover(out)  # a commit cut short by a stopped run is finished or undone
    t_start = time.perf_counter()
    sha = config.sha256()
    todo: list[tuple[Case, str]] = []
    docs: dict[str, dict[str, Any]] = {}  # every case's document, read or made once
    reused, redone = 0, Counter[str]()
    for case, fp in zip(cases, fingerprints(cases, jobs, stop)):
        if fp is None:
            continue  # stopped before it was fingerprinted: not run
        old, why = (None, "") if force else reuse(out, case.case_id, config_sha256=sha,
                                                    fingerprint=fp)
        if old is not None:
            reused += 1
            docs[case.case_id] = old
            if on_case:
                on_case(case, old, True)
            continue
        if why:
            redone[why] += 1
        todo.append((case, fp))
    log.info("run: %d case(s), %d reused, %d to do%s", len(cases), reused, len(todo),
             "".join(f"; {n} redone ({why} changed)" for why, n in sorted(redone.items())))
    executor = decide(jobs, len(todo), scheduler, dask_local)  # once: execute() decides alike
    started = start_method() if executor.startswith("process-pool") else None
    try:
        for case, doc in execute(todo, config, jobs=jobs, scheduler=scheduler,
                                 dask_local=dask_local, out=out, stop=stop):
            try:
                with stop.critical():  # the result and its artefacts land whole
                    write_result(out, doc)
            except OSError as err:
                raise OutputError(f"cannot write the result of case {case.case_id}: "
                                  f"{err.strerror}", path=str(out)) from None
            docs[case.case_id] = doc
            log.info("case %s: %s", case.case_id, scan_of(doc)["status"])
            if on_case:
                on_case(case, doc, False)
    except Abort:
        pass  # a second signal while results were being collected: they are kept
    interrupted: dict[str, Any] | None = None
    not_run: list[str] = []
    if stop.requested:
        recover(out)  # the abandoned cases' staging folders
        not_run = sorted(c.case_id for c in cases if c.case_id not in docs)
        interrupted = {"signal": stop.signal, "recorded": len(docs), "not_run": not_run,
                       "tables_written": False}
        log.warning("interrupted by %s: %d case(s) recorded, %d not run", stop.signal,
                    len(docs), len(not_run))
        if stop.hard:
            return {"counts": {"cases": len(docs), "reused": reused, "not_run": len(not_run)},
                    "interrupted": interrupted}
    try:
        with stop.running("hard"):  # a second signal here leaves the tables unwritten
            summary = _tables(cases, docs, config, out, opts, notes=notes, reused=reused,
                              redone=redone, todo=todo, started=started, t_start=t_start,
                              interrupted=interrupted, stop=stop, executor=executor)
    except Abort:
        return {"counts": {"cases": len(docs), "reused": reused,
                           "not_run": len(not_run)}, "interrupted": interrupted}
    return summary


def _tables(cases: list[Case], docs: dict[str, dict[str, Any]], config: Config, out: Path,
            opts: RunOptions, *, notes, reused: int, redone: Counter, todo, started,
            t_start: float, interrupted: dict[str, Any] | None, stop: Stop,
            executor: str) -> dict[str, Any]:
    """Rebuild and write the tables, discovery.csv and run.json of the recorded cases."""
    extra: dict[str, Any] = {"reused": reused}
    if interrupted is not None:
        extra["not_run"] = len(interrupted["not_run"])
    summary, files = rebuild(out, docs, config=config, argv=list(opts.argv), notes=notes,
                             extra=extra, ran={c.case_id for c, _ in todo})
    summary["redone"] = dict(sorted(redone.items()))
    summary["executor"] = executor  # what ran (one case on --jobs 2 is serial)
    summary["executor_start"] = (None if started is None
                                 else {"method": started[0], "why": started[1]})
    summary["case_ids"] = sorted(docs)  # the recorded cases (all of them unless interrupted)
    summary["shard"] = None if opts.shard is None else f"{opts.shard[0]}/{opts.shard[1]}"
    summary["inputs"] = opts.inputs
    files[out / "discovery.csv"] = to_csv(discovery_rows(cases, notes or []), DISCOVERY_COLUMNS)
    summary["timings_s"]["total"] = round(time.perf_counter() - t_start, 4)
    if interrupted is not None:
        summary["interrupted"] = {**interrupted, "tables_written": True}
    files[out / "run.json"] = json_text(summary)
    with stop.critical():
        write_all(files)  # the tables, discovery.csv and run.json of one run: all or none
    return summary


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left behind (never a finished file: those are renamed)."""
    for tmp in list(out.glob(".*.tmp")) + list(out.glob("cases/*/.*.tmp")):
        try:
            tmp.unlink()
        except OSError:
            pass


__all__ = ["execute", "run_batch", "select_shard", "start_method"]
