"""Stopping a batch when asked: SIGINT (Ctrl-C at a terminal) or SIGTERM (what Slurm, systemd
and ``kill`` send; Slurm sends SIGKILL ``KillWait`` seconds later, 30 s by default).

One :class:`Stop` is shared by the command line (which turns the signals into requests) and the
runners of :mod:`vascalc.run.batch` (which ask it what to do). The policy:

- the first SIGINT: no case starts any more; the running cases finish (a process pool waits up
  to :data:`GRACE_S` seconds for them, then abandons those still running); every finished case
  is recorded, the tables of what is done are written, and the run exits with 130;
- the first SIGTERM: the same, but the running cases are abandoned at once (a time limit leaves
  no time to wait); exit 143;
- a second signal: whatever still runs is abandoned at once and the tables are not written
  (run.json and the tables stay those of the previous run, whole); the recorded cases stay.

An abandoned case leaves nothing that passes for a result: its artefacts were being written
into a staging folder that becomes the case folder only with its result.json
(:func:`vascalc.results.casefolder.commit`), and the next run removes it. 130 and 143 are the
shells' 128 + signal number, which Slurm and CI systems read as "terminated by a signal".
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

#: how long a process pool waits for its running cases after the first SIGINT
GRACE_S = 10.0

#: the exit code of a run stopped by each signal (128 + the signal number)
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Abort(BaseException):
    """Raised by the signal handler in the main thread where the work cannot poll (a case
    scored in this process, discovery, the tables being computed). A BaseException, so that
    the ``except Exception`` that turns a case's error into its failed row lets it pass."""


class Stop:
    """The stop request of one run (see the module text). ``requested``: no case starts;
    ``abandon``: running cases are given up; ``hard``: a second signal, stop at once."""

    def __init__(self) -> None:
        self.signal = ""  # the first signal's name, '' = none
        self.count = 0
        self.abandon = False
        self.hard = False
        self.since = 0.0  # time.monotonic() of the first signal
        self._mode: str | None = None  # what the main thread does: see :meth:`running`
        self._critical = 0
        self._pending = False
        self._pid = os.getpid()

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal, 130)

    def request(self, name: str) -> None:
        """A stop request by signal ``name`` (the handler's work; a library caller or a test
        may call it too)."""
        self.count += 1
        if self.count == 1:
            self.signal, self.since = name, time.monotonic()
            self.abandon = name == "SIGTERM"
        else:
            self.abandon = self.hard = True
        if self._should_raise():
            if self._critical:
                self._pending = True
            else:
                raise Abort(name)

    def _should_raise(self) -> bool:
        return (self._mode == "any" or (self._mode == "case" and self.abandon)
                or (self._mode == "hard" and self.hard))

    @contextmanager
    def running(self, mode: str | None) -> Iterator[None]:
        """While the block runs, a signal raises :class:`Abort` in this thread: ``any``
        (discovery: nothing to keep), ``case`` (a case scored in this process: when it is to
        be abandoned), ``hard`` (the tables being computed: on a second signal only); None:
        the caller polls :attr:`requested` (a pool's loop)."""
        before, self._mode = self._mode, mode
        try:
            if self.requested and self._should_raise():
                raise Abort(self.signal)
            yield
        finally:
            self._mode = before

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A block no signal interrupts (a result or the tables being renamed into place):
        an Abort due inside it is raised when it ends."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
        if not self._critical and self._pending:
            self._pending = False
            raise Abort(self.signal)

    @contextmanager
    def signals(self) -> Iterator["Stop"]:
        """Turn SIGINT and SIGTERM into requests while the block runs (main thread only;
        elsewhere signals are left as they are), then put the old handlers back."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: object) -> None:
            if os.getpid() != self._pid:  # a forked worker before its own handlers are set
                return
            name = signal.Signals(signum).name
            if self.count and name == self.signal and \
                    time.monotonic() - self.since < DUPLICATE_S:
                return  # one request delivered twice: a wrapper (timeout, srun) forwards it
            _say(self, name)
            self.request(name)

        for s in old:
            signal.signal(s, handle)
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


#: the same signal again within this many seconds is the first one delivered twice (a wrapper
#: such as ``timeout`` forwards it to the process its group kill reached already), not a
#: second request
DUPLICATE_S = 0.1


def _say(stop: Stop, name: str) -> None:
    """One line on stderr at once (os.write: safe inside a signal handler, unlike print)."""
    if stop.count == 0:
        what = ("abandoning the running cases" if name == "SIGTERM" else
                f"letting the running cases finish (up to {GRACE_S:g} s with workers)")
        text = (f"\n{name}: stopping: no new case starts; {what}; every finished case is "
                f"kept ({'send it again' if name == 'SIGTERM' else 'press Ctrl-C again'} "
                "to stop at once)\n")
    else:
        text = f"\n{name} again: stopping at once; the tables are not written\n"
    try:
        os.write(2, text.encode())
    except OSError:
        pass


def ignore_in_worker() -> None:
    """A pool worker's signal handling: it ignores SIGINT (Ctrl-C reaches the terminal's whole
    process group; the parent decides what runs on) and dies on SIGTERM (a scheduler's time
    limit reaches every process of the job: the parent records what finished)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


__all__ = ["Abort", "EXIT_CODES", "GRACE_S", "Stop", "ignore_in_worker"]
