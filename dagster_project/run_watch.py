"""A watch beside one in-process run: it says what the run waits for, releases dead runs, and lets signals stop
a run that waits for a pool slot.

Dagster's in-process execution captures SIGINT and SIGTERM and acts on them only at step boundaries; a step
that waits for a pool slot sleeps in a loop that never looks, so the process would ignore both for as long as
the slot is held. The watch notices a captured signal and interrupts the main thread (through ``SIGUSR1``,
whose handler raises ``KeyboardInterrupt``): Dagster then ends the run as failed and gives up its pending
claims, and the caller stops.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType

import dagster as dg
from dagster._utils.interrupts import check_captured_interrupt

from dagster_project.run_health import WATCH_SECONDS, release_dead_runs, slot_waits

#: Seconds between two looks for a captured signal.
POLL_SECONDS = 0.2
#: A step that still waits after this many seconds is reported (one that gets its slot at once is not).
FIRST_REPORT_SECONDS = 2.0


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class RunWatch:
    """``with RunWatch(instance, run_id, echo): job.execute_in_process(run_id=run_id, ...)``.

    While the block runs, every :data:`WATCH_SECONDS` it releases dead runs (their slots may be what this run
    waits for) and echoes each new wait (pool, step, since when, which runs hold the slots). ``interrupted`` is
    true once a SIGINT or SIGTERM arrived.
    """

    def __init__(self, instance: dg.DagsterInstance, run_id: str, echo: Callable[[str], None],
                 interval: float = WATCH_SECONDS) -> None:
        self.instance, self.run_id, self.echo, self.interval = instance, run_id, echo, interval
        self.interrupted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"run-watch-{run_id[:8]}", daemon=True)
        self._reported: set[str] = set()
        self._previous_handler: object = None
        self._installed = False

    def __enter__(self) -> RunWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGUSR1, _raise_interrupt)
            self._installed = True
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        if self._installed:
            signal.signal(signal.SIGUSR1, self._previous_handler or signal.SIG_DFL)

    def _watch(self) -> None:
        next_check = time.monotonic() + FIRST_REPORT_SECONDS
        while not self._stop.wait(POLL_SECONDS):
            if check_captured_interrupt() and not self.interrupted:
                self.interrupted = True
                if self._installed:
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
            if self.instance.is_ephemeral or time.monotonic() < next_check:
                continue  # an in-memory instance is not shared with other processes, nor safe across threads
            next_check = time.monotonic() + self.interval
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the watch must never break the run it watches
                self.echo(f"       (could not check the pool slots: {type(exc).__name__}: {exc})")

    def check(self) -> None:
        """Release dead runs and echo this run's new waits for a slot."""
        for line in release_dead_runs(self.instance):
            self.echo(f"       {line}")
        for wait in slot_waits(self.instance, self.run_id):
            text = str(wait)
            if text not in self._reported:
                self._reported.add(text)
                self.echo(f"       {text}")
