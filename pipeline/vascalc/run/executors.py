"""The executors of a batch: each moves cases to :func:`vascalc.run.case.run_case` and yields
(case, result document) as cases finish, serially, on a process pool or on a Dask cluster
(:func:`execute` chooses), and each obeys the run's stop request (:mod:`vascalc.run.interrupt`).

- A worker process that dies takes only its own case with it: the cases running in the pool
  at that moment are retried alone, and fail as WORKER_DIED only when they die alone too.
- On a stop request no case starts; the running ones finish (up to GRACE_S after a SIGINT) or
  are abandoned (SIGTERM, a second signal): their workers are killed, nothing of them is
  recorded.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..config.schema import Config
from ..errors import InternalError, UsageError, WorkerDiedError
from ..io.dicom import can_fork
from ..outputs.artefacts import preload
from .case import failed_document, run_case
from .discovery import Case
from .interrupt import GRACE_S, Abort, Stop, ignore_in_worker

log = logging.getLogger("vascalc")

# executors: each yields (case, result document) as cases finish


def _serial(todo, config, out, stop: Stop):
    """Case after case in this process; a stop request starts no new one, and abandons the
    running one when it says so (the handler raises Abort inside it)."""
    for case, fp in todo:
        if stop.requested:
            return
        try:
            with stop.running("case"):
                doc = run_case(case, config, fingerprint=fp, out=out)
        except Abort:
            return  # abandoned: its staging folder holds no result and is removed
        yield case, doc


#: the file in a pool's marker folder that tells its workers to start no case (cancelling the
#: futures instead would race with killing the workers: CPython 3.11's pool then sets an
#: exception on a cancelled future and prints a traceback)
STOPPED = ".stop"


def _run_marked(started: str, case: Case, config: Config, fp: str,
                out: Path | None) -> dict | None:
    """run_case in a worker, with a marker file while it runs: when a worker dies, the cases
    whose markers remain were running in it (the others never started)."""
    if (Path(started) / STOPPED).exists():
        return None  # the run was asked to stop before this case started: not run
    marker = Path(started) / case.case_id
    marker.touch()
    doc = run_case(case, config, fingerprint=fp, out=out)
    marker.unlink()
    return doc


def _pool(todo, config, jobs, out, stop: Stop):
    """A process pool. If a worker dies (killed, out of memory), only the cases that were
    running in the pool at that moment are suspects: each is retried alone in a pool of one
    worker, and fails as WORKER_DIED only when it dies there too; cases that had not started
    are requeued as they were. So one bad case never fails the innocent ones."""
    pending = list(todo)
    attempts: dict[str, int] = {}
    alone: set[str] = set()
    while pending:
        shared = [p for p in pending if p[0].case_id not in alone]
        batches = ([shared] if shared else []) + [[p] for p in pending if p[0].case_id in alone]
        pending = []
        for batch in batches:
            if stop.requested:
                return
            pending += yield from _one_pool(batch, config, jobs, out, attempts, alone, stop)
        if stop.requested:
            return
        if pending:
            log.warning("a worker process died; retrying %d case(s)", len(pending))


def _one_pool(batch, config, jobs, out, attempts: dict[str, int], alone: set[str],
              stop: Stop):
    """Run ``batch`` on one pool; yields finished documents, returns the cases to retry. On a
    stop request the cases not started are cancelled; the running ones are waited for (up to
    GRACE_S after a SIGINT) or abandoned: their workers are killed."""
    retry: list[tuple[Case, str]] = []
    with tempfile.TemporaryDirectory(prefix="vascalc-running-") as started:
        ex = ProcessPoolExecutor(max_workers=min(jobs, len(batch)), mp_context=_mp_context(config),
                                 initializer=_worker_start)
        try:
            futures: dict[Future, tuple[Case, str]] = {
                ex.submit(_run_marked, started, c, config, fp, out): (c, fp) for c, fp in batch}
            waiting = set(futures)
            abandon = False
            while waiting:
                if stop.requested:
                    (Path(started) / STOPPED).touch()  # the cases not started return at once
                    if stop.abandon or time.monotonic() - stop.since > GRACE_S:
                        abandon = True
                        return retry  # the running cases are abandoned (finally: killed)
                done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield from _collected(fut, futures[fut], config, started, attempts,
                                          alone, retry, stop)
        finally:
            if abandon or stop.hard:
                _kill_workers(ex)
            ex.shutdown(wait=not (abandon or stop.hard))
    return retry


def _collected(fut: Future, job: tuple[Case, str], config: Config, started: str,
               attempts: dict[str, int], alone: set[str], retry: list, stop: Stop):
    """The document of a finished future; a worker's death retries or fails its case
    (never while stopping: a worker killed then is an abandoned case, not a failed one)."""
    case, fp = job
    try:
        doc = fut.result()
        if doc is not None:  # None: not started, the run was stopping
            yield case, doc
    except BrokenProcessPool:
        if stop.requested:
            return
        if not (Path(started) / case.case_id).exists():
            retry.append((case, fp))  # it never started: not a suspect
            return
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


def _kill_workers(ex: ProcessPoolExecutor) -> None:
    """Kill a pool's worker processes (Python 3.14 has ProcessPoolExecutor.kill_workers; before
    it, the pool's own process table)."""
    kill = getattr(ex, "kill_workers", None)
    if kill is not None:
        kill()
        return
    for proc in list((getattr(ex, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (OSError, ValueError, AttributeError):
            pass


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
        ctx.set_forkserver_preload(["vascalc.run.executors", "vascalc.run.case",
                                    "vascalc.io.dicom"])
        return ctx
    return mp.get_context("spawn")


def _worker_start() -> None:
    """A pool worker's start: die with the parent (a SIGKILLed run must not leave workers
    holding memory and the caller's stdout); ignore Ctrl-C, die on SIGTERM
    (:func:`vascalc.run.interrupt.ignore_in_worker`)."""
    ignore_in_worker()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # the parent died before prctl took effect
                os._exit(1)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass


def _dask(todo, config, out, stop: Stop, *, scheduler: str | None,
          local_workers: int | None):
    """Cases on a Dask cluster. A stop request cancels every case not finished (Dask does not
    tell a running task from a queued one): they are abandoned, the finished ones kept."""
    try:
        from dask.distributed import Client, LocalCluster  # optional extra
    except ImportError:
        raise UsageError("Dask is not installed", hint="pip install 'vascalc[dask]'") from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        with _sigint_ignored():  # its processes leave Ctrl-C to this one (which stops them)
            cluster = LocalCluster(n_workers=local_workers or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(run_case, c, config, fingerprint=fp, out=out, pure=False,
                                 key=f"vascalc-{c.case_id}-{fp[:8]}"): (c, fp) for c, fp in todo}
        pending = set(futures)
        while pending:
            if stop.requested:
                client.cancel(list(pending))
                return
            done = {f for f in pending if f.done()}
            if not done:
                time.sleep(0.1)
                continue
            pending -= done
            for fut in done:
                case, fp = futures[fut]
                try:
                    doc = fut.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker fails its case only
                    if stop.requested:
                        continue  # a worker stopped by the same signal: abandoned
                    doc = failed_document(case, config, fp, WorkerDiedError.code,
                                          f"{case.display_path}: {type(exc).__name__}: {exc}")
                yield case, doc
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while child processes start (they inherit it: a Python started with SIGINT
    ignored installs no KeyboardInterrupt handler), so Ctrl-C at the terminal reaches this
    process's stop request only, not the local cluster's processes as a traceback each."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def execute(todo: list[tuple[Case, str]], config: Config, *, jobs: int = 1,
            scheduler: str | None = None, dask_local: int | None = None,
            out: Path | None = None, stop: Stop | None = None) -> Iterator:
    stop = stop or Stop()
    executor = decide(jobs, len(todo), scheduler, dask_local)
    if executor.startswith("dask"):
        return _dask(todo, config, out, stop, scheduler=scheduler, local_workers=dask_local)
    if executor == "serial":
        return _serial(todo, config, out, stop)
    return _pool(todo, config, jobs, out, stop)


def decide(jobs: int, n_cases: int, scheduler: str | None, dask_local: int | None) -> str:
    """The executor a batch runs on, decided once from the options and the number of cases to
    score (run.json ``executor`` records this, what really ran): Dask when asked, a local
    process pool for two or more cases with ``jobs`` > 1, else serial (one case on a pool of
    two would only pay for the workers' start).

    >>> decide(2, 1, None, None), decide(2, 8, None, None), decide(1, 8, None, 2)
    ('serial', 'process-pool:2', 'dask-local:2')
    """
    if scheduler:
        return "dask-distributed"
    if dask_local:
        return f"dask-local:{dask_local}"
    return f"process-pool:{jobs}" if jobs > 1 and n_cases > 1 else "serial"


def uses_pool(jobs: int, n_cases: int, scheduler: str | None, dask_local: int | None) -> bool:
    """Whether :func:`execute` runs the cases on a local process pool."""
    return decide(jobs, n_cases, scheduler, dask_local).startswith("process-pool")


__all__ = ["decide", "execute", "start_method", "uses_pool"]
