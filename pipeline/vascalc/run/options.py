"""One record of how a batch runs (:class:`RunOptions`, built once from the command line or by
a library caller) and one of how it went (:class:`RunReport`, which owns the counts and the
exit code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .interrupt import EXIT_CODES


@dataclass(frozen=True)
class RunOptions:
    """Workers (``jobs`` local processes, or a Dask cluster: ``scheduler`` address or
    ``dask_local`` workers), ``force`` (redo finished cases), ``shard`` (i, n: only that
    share of the cases), and what run.json records: ``argv`` and the ``inputs`` the cases
    were found in (for review and rescore)."""

    jobs: int = 1
    force: bool = False
    scheduler: str | None = None
    dask_local: int | None = None
    shard: tuple[int, int] | None = None
    argv: tuple[str, ...] = ()
    inputs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError(f"jobs must be 1 or more, got {self.jobs}")
        if self.scheduler and self.dask_local:
            raise ValueError("give scheduler or dask_local, not both")


@dataclass(frozen=True)
class RunReport:
    """What a run did: ``summary`` is run.json as written (or, when a second signal stopped
    the run before its tables, the counts and ``interrupted`` alone); the counts and the exit
    code come from it."""

    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]

    @property
    def interrupted(self) -> dict[str, Any] | None:
        """What a stop request left (signal, recorded, not_run, tables_written), or None."""
        return self.summary.get("interrupted")

    @property
    def exit_code(self) -> int:
        """0 all ok; 1 a case failed; 130 stopped by SIGINT, 143 by SIGTERM (128 + the
        signal's number, as shells and Slurm report a signal)."""
        if self.interrupted:
            return EXIT_CODES.get(self.interrupted["signal"], 130)
        return 1 if self.counts["failed"] else 0
