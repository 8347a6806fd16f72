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
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config.schema import Config
from ..errors import InternalError, OutputError, UsageError, WorkerDiedError
from ..files import write_all
from ..io.dicom import can_fork
from ..outputs.artefacts import preload
from ..outputs.tables import json_text, to_csv
from ..results.document import reusable, scan_of, write_result
from .case import failed_document, run_case
from .discovery import DISCOVERY_COLUMNS, Case, discovery_rows
from .lock import output_lock
from .options import RunOptions, RunReport
from .rebuild import rebuild

log = logging.getLogger("vascalc")

# executors: each yields (case, result document) as cases finish


def _serial(todo, config, out):
    for case, fp in todo:
        yield case, run_case(case, config, fingerprint=fp, out=out)


def _run_marked(started: str, case: Case, config: Config, fp: str, out: Path | None) -> dict:
    """run_case in a worker, with a marker file while it runs: when a worker dies, the cases
    whose markers remain were running in it (the others never started)."""
    marker = Path(started) / case.case_id
    marker.touch()
    doc = run_case(case, config, fingerprint=fp, out=out)
    marker.unlink()
    return doc


def _pool(todo, config, jobs, out):
    """A process pool. If a worker dies (killed, out of memory), only the cases that were
    running in the pool at that moment are suspects: each is retried alone in a pool of one
    worker, and fails as WORKER_DIED only when it dies there too; cases that had not started
    are requeued as they were. So one bad case never fails the innocent ones."""
    pending, attempts, alone = list(todo), {}, set()
    while pending:
        shared = [p for p in pending if p[0].case_id not in alone]
        batches = ([shared] if shared else []) + [[p] for p in pending if p[0].case_id in alone]
        pending = []
        for batch in batches:
            pending += yield from _one_pool(batch, config, jobs, out, attempts, alone)
        if pending:
            log.warning("a worker process died; retrying %d case(s)", len(pending))


def _one_pool(batch, config, jobs, out, attempts: dict[str, int], alone: set[str]):
    """Run ``batch`` on one pool; yields finished documents, returns the cases to retry."""
    retry = []
    with tempfile.TemporaryDirectory(prefix="vascalc-running-") as started, \
            ProcessPoolExecutor(max_workers=min(jobs, len(batch)), mp_context=_mp_context(config),
                                initializer=_worker_start) as ex:
        futures: dict[Future, tuple[Case, str]] = {
            ex.submit(_run_marked, started, c, config, fp, out): (c, fp) for c, fp in batch}
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for fut in done:
                case, fp = futures[fut]
                try:
                    yield case, fut.result()
                except BrokenProcessPool:
                    if not (Path(started) / case.case_id).exists():
                        retry.append((case, fp))  # it never started: not a suspect
                        continue
                    attempts[case.case_id] = attempts.get(case.case_id, 0) + 1
                    if attempts[case.case_id] >= 2:
                        yield case, failed_document(
                            case, config, fp, WorkerDiedError.code,
                            f"{case.display_path}: the worker process died twice while "
                            "scoring this case, the second time alone (killed or out of "
                            "memory) -> run it alone with --jobs 1 to see why")
                    else:
                        alone.add(case.case_id)
                        retry.append((case, fp))
                except Exception as exc:  # noqa: BLE001
                    yield case, failed_document(case, config, fp, InternalError.code,
                                                f"{case.display_path}: {type(exc).__name__}: {exc}")
    return retry


def start_method() -> tuple[str, str]:
    """How workers start, and why (run.json ``executor_start``): fork on Linux with no other
    thread running (the cheapest: workers start at once, nothing re-imported); with threads
    running forkserver with the pipeline preloaded (a forked lock held by another thread would
    never be released); elsewhere spawn."""
    if can_fork():
        return "fork", "Linux, one thread: workers forked from the loaded process"
    if "forkserver" in mp.get_all_start_methods():
        return "forkserver", "other threads run in this process: fork is unsafe"
    return "spawn", "fork and forkserver are not available on this platform"


def _mp_context(config):
    """The multiprocessing context of :func:`start_method`'s choice."""
    method, _ = start_method()
    if method == "fork":
        preload(config)
        return mp.get_context("fork")
    if method == "forkserver":
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["vascalc.run.batch", "vascalc.run.case", "vascalc.io.dicom"])
        return ctx
    return mp.get_context("spawn")


def _worker_start() -> None:
    """A pool worker's start: die with the parent (a SIGKILLed run must not leave workers
    holding memory and the caller's stdout)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # the parent died before prctl took effect
                os._exit(1)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass


def _dask(todo, config, out, *, scheduler: str | None, local_workers: int | None):
    try:
        from dask.distributed import Client, LocalCluster, as_completed  # optional extra
    except ImportError:
        raise UsageError("Dask is not installed", hint="pip install 'vascalc[dask]'") from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(n_workers=local_workers or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(run_case, c, config, fingerprint=fp, out=out, pure=False,
                                 key=f"vascalc-{c.case_id}-{fp[:8]}"): (c, fp) for c, fp in todo}
        for fut in as_completed(list(futures)):
            case, fp = futures[fut]
            try:
                yield case, fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its case only
                yield case, failed_document(case, config, fp, WorkerDiedError.code,
                                        f"{case.display_path}: {type(exc).__name__}: {exc}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def execute(todo: list[tuple[Case, str]], config: Config, *, jobs: int = 1,
            scheduler: str | None = None, dask_local: int | None = None,
            out: Path | None = None) -> Iterator:
    if scheduler or dask_local:
        return _dask(todo, config, out, scheduler=scheduler, local_workers=dask_local)
    if not uses_pool(jobs, len(todo), scheduler, dask_local):
        return _serial(todo, config, out)
    return _pool(todo, config, jobs, out)


def uses_pool(jobs: int, n_cases: int, scheduler: str | None, dask_local: int | None) -> bool:
    """Whether :func:`execute` runs the cases on a local process pool."""
    return jobs > 1 and n_cases > 1 and not scheduler and not dask_local


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
              on_case: Callable[[Case, dict, bool], None] | None = None) -> RunReport:
    """Run every case (reusing finished ones), then rebuild the tables and run.json (which
    lists the run's case ids and its shard, for merge, and the ``inputs`` the cases were
    found in, for review and rescore). ``notes``: the files discovery did not score."""
    with output_lock(out):
        summary = _run_batch(cases, config, out, options or RunOptions(), notes=notes,
                             on_case=on_case)
    return RunReport(summary)


def _run_batch(cases: list[Case], config: Config, out: Path, opts: RunOptions, *,
               notes: list[dict[str, str]] | None,
               on_case: Callable[[Case, dict, bool], None] | None) -> dict[str, Any]:
    jobs, force, scheduler, dask_local = opts.jobs, opts.force, opts.scheduler, opts.dask_local
    _remove_stale_temporaries(out)
    t_start = time.perf_counter()
    sha = config.sha256()
    todo: list[tuple[Case, str]] = []
    docs: dict[str, dict[str, Any]] = {}  # every case's document, read or made once
    reused = 0
    for case in cases:
        fp = case.fingerprint()
        old = None if force else reusable(out, case.case_id, config_sha256=sha, fingerprint=fp)
        if old is not None:
            reused += 1
            docs[case.case_id] = old
            if on_case:
                on_case(case, old, True)
            continue
        todo.append((case, fp))
    log.info("run: %d case(s), %d reused, %d to do", len(cases), reused, len(todo))
    started = start_method() if uses_pool(jobs, len(todo), scheduler, dask_local) else None
    for case, doc in execute(todo, config, jobs=jobs, scheduler=scheduler, dask_local=dask_local,
                             out=out):
        try:
            write_result(out, doc)
        except OSError as err:
            raise OutputError(f"cannot write the result of case {case.case_id}: {err.strerror}",
                              path=str(out)) from None
        docs[case.case_id] = doc
        log.info("case %s: %s", case.case_id, scan_of(doc)["status"])
        if on_case:
            on_case(case, doc, False)
    summary, files = rebuild(out, docs, config=config, argv=list(opts.argv), notes=notes,
                             extra={"reused": reused}, ran={c.case_id for c, _ in todo})
    summary["executor"] = opts.executor
    summary["executor_start"] = (None if started is None
                                 else {"method": started[0], "why": started[1]})
    summary["case_ids"] = sorted(c.case_id for c in cases)
    summary["shard"] = None if opts.shard is None else f"{opts.shard[0]}/{opts.shard[1]}"
    summary["inputs"] = opts.inputs
    files[out / "discovery.csv"] = to_csv(discovery_rows(cases, notes or []), DISCOVERY_COLUMNS)
    summary["timings_s"]["total"] = round(time.perf_counter() - t_start, 4)
    files[out / "run.json"] = json_text(summary)
    write_all(files)  # the tables, discovery.csv and run.json of one run: all or none
    return summary


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left behind (never a finished file: those are renamed)."""
    for tmp in list(out.glob(".*.tmp")) + list(out.glob("cases/*/.*.tmp")):
        try:
            tmp.unlink()
        except OSError:
            pass


__all__ = ["execute", "run_batch", "select_shard"]
