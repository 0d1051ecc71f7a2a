"""Dead runs release what they hold: runs whose process is gone are marked failed and their pool slots freed.

A run killed with ``kill -9`` (or by the OOM killer, a reboot, a CI timeout) stays STARTED in the Dagster
instance and keeps its pool slot, so every later step of that pool would wait for ever. Every run of this
project records who executes it in its tags (:data:`HOST_TAG`, :data:`PID_TAG`, :data:`PID_START_TAG`: the
host, the process id and the process's start time, so a recycled pid is not mistaken for the run). Then:

- :func:`release_dead_runs` marks every unfinished run of this host whose process is gone as failed, with the
  reason, and frees the pool slots of every finished (or deleted) run that still holds some. ``ndvi-pipeline
  run`` calls it before each run and every :data:`WATCH_SECONDS` while one waits for a slot.
- :class:`OwnerCheckingRunLauncher` (``dagster.yaml``) lets the daemon's run monitoring ask the same question
  about the runs it launched (``make dev``, backfills).

Runs of another host are left alone: their liveness cannot be checked from here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import FINISHED_STATUSES, IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

HOST_TAG = "ndvi/host"
PID_TAG = "ndvi/pid"
PID_START_TAG = "ndvi/pid_start"
#: Seconds between two checks for dead runs while a run waits for a pool slot.
WATCH_SECONDS = 10.0
#: Statuses of a run that may still hold a process (and slots).
UNFINISHED = (*IN_PROGRESS_RUN_STATUSES, dg.DagsterRunStatus.CANCELING)


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that name the process executing a run: this process unless ``pid`` is given."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _process_start(pid) or ""}


def process_alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` exists and, when ``start`` is known, is the same process (not a recycled pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if start and (now := _process_start(pid)) is not None:
        return now == start
    return True


def dead_owner(run: dg.DagsterRun) -> str | None:
    """Why ``run``'s process is known to be gone (it ran on this host and its pid no longer runs it), or None
    when it is alive or cannot be checked from here."""
    tags = run.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    pid = int(tags[PID_TAG])
    if process_alive(pid, tags.get(PID_START_TAG) or None):
        return None
    return f"its process (pid {pid} on {tags[HOST_TAG]}) is gone (killed, out of memory, or the machine restarted)"


def record_owner(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag run ``run_id`` with this process, unless the launcher already did."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.tags.get(PID_TAG) != str(os.getpid()):
        instance.add_run_tags(run_id, owner_tags())


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's unfinished runs whose process is gone as failed, and free the pool slots of dead,
    finished or deleted runs. Returns one line per run released."""
    released = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=list(UNFINISHED))):
        run = record.dagster_run
        reason = dead_owner(run)
        if reason is None:
            continue
        message = f"Run {run.run_id} marked failed: {reason}."
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(f"released dead run {run.run_id[:8]} ({_describe(run)}): {reason}")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.status in FINISHED_STATUSES:
                storage.free_concurrency_slots_for_run(run_id)
                what = f"{_describe(run)}, {run.status.value}" if run else "deleted"
                released.append(f"freed the pool slots of run {run_id[:8]} ({what})")
    return released


def _describe(run: dg.DagsterRun | None) -> str:
    if run is None:
        return "unknown run"
    partition = run.tags.get("dagster/partition", "")
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not partition and start and end:  # a batch (dagster_project.partitions)
        partition = start if start == end else f"{start}..{end}"
    return f"{run.job_name} {partition}".strip()


@dataclass(frozen=True)
class SlotWait:
    """A step of one run waiting for a slot of ``pool`` that other runs hold."""

    pool: str
    step: str
    since: datetime
    holders: tuple[str, ...]

    def __str__(self) -> str:
        return (f"waiting for pool '{self.pool}' (step {self.step}, since {self.since:%H:%M:%S} UTC): "
                f"held by {'; '.join(self.holders) or 'no run (a slot is being released)'}")


def slot_waits(instance: dg.DagsterInstance, run_id: str) -> list[SlotWait]:
    """The pools whose slot a step of ``run_id`` waits for, with the runs that hold them."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    waits = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        for pending in info.pending_steps:
            if pending.run_id != run_id or pending.assigned_timestamp is not None:
                continue
            holders = tuple(_holder(instance, slot.run_id, slot.step_key) for slot in info.claimed_slots
                            if slot.run_id != run_id)
            since = pending.enqueued_timestamp
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            waits.append(SlotWait(pool, pending.step_key, since.astimezone(UTC), holders))
    return waits


def _holder(instance: dg.DagsterInstance, run_id: str, step: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (deleted), step {step}"
    stats = instance.get_run_stats(run_id)
    started = (f", started {datetime.fromtimestamp(stats.start_time, UTC):%H:%M:%S} UTC"
               if stats.start_time else "")
    where = f", pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}" if PID_TAG in run.tags else ""
    return f"run {run_id} ({_describe(run)}, step {step}{where}{started})"


class OwnerCheckingRunLauncher(DefaultRunLauncher):
    """The default launcher, plus a health check for the daemon's run monitoring: a run whose recorded process
    is gone has FAILED, so monitoring marks it failed and ``free_slots_after_run_end_seconds`` frees its slots
    (also after the whole ``dagster dev`` was killed, when no code server is left to notice)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        reason = dead_owner(run)
        if reason is not None:
            return CheckRunHealthResult(WorkerStatus.FAILED, reason)
        return CheckRunHealthResult(WorkerStatus.RUNNING)


def unfinished(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> list[dg.DagsterRun]:
    """The runs among ``run_ids`` that are not finished."""
    runs = (instance.get_run_by_id(r) for r in run_ids)
    return [r for r in runs if r is not None and r.status not in FINISHED_STATUSES]
