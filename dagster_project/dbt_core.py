"""dbt Core inside the run's own process: the project is parsed once per process, then each step builds.

A dbt CLI process per step costs 2-4 s before the first query (imports, profile, adapter, parse), more than
the SQL of a demo-sized year. Here dbt runs through dbt-core's public ``dbtRunner`` in the Dagster process:

- the project is parsed once per process and database, in a background thread that starts when the run's
  resources are set up, so it overlaps the composite of a yearly run; the parse reuses and then refreshes
  dbt's own ``target/partial_parse.msgpack``, and must agree with the manifest the asset graph was built from
  (:mod:`dagster_project.dbt_manifest`), or the step fails saying so;
- dbt gets the database through a profile written for it (:mod:`dagster_project.dbt_profile`), never through
  this process's environment, which GDAL threads read meanwhile;
- each step takes the dbt lock, runs ``dbt build`` with that parsed manifest (no parse) in a thread, and turns
  its events into Dagster events as they happen (:mod:`dagster_project.dbt_adapter`, the one module that uses
  dagster-dbt's internals, honours every selection form dagster-dbt produces); every (area, year) that the
  build rewrote is reported with its own row count (:mod:`dagster_project.dbt_partitions`);
- the lock is released only after dbt's thread has ended, also when the step's generator is closed early;
- every invocation writes ``run_results.json``, ``dbt.log`` and the compiled SQL (not ``manifest.json``) into
  its own folder under ``target/dagster/``; the newest :data:`KEEP_INVOCATIONS` are kept.

dbt is not safe for two invocations at once in one process: a lock serialises them (the database's advisory
lock in :mod:`dagster_project.resources` serialises processes).
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_project import dbt_partitions
from dagster_project.dbt_adapter import StepSelection, dagster_events, event_dict, step_selection
from dagster_project.dbt_manifest import check_agrees
from dagster_project.dbt_profile import profiles_dir
from dagster_project.resources import PostGISResource, dbt_lock

#: Invocation folders kept under ``target/dagster/`` (older ones are removed once they are an hour old).
KEEP_INVOCATIONS = 20
#: dbt events forwarded to the Dagster log at info level: one line per model and test, and the summary.
RESULT_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult", "StatsLine"})

_INVOKE_LOCK = threading.Lock()  # one dbt invocation at a time in this process
_MANIFESTS: dict[tuple[str, ...], Future] = {}  # parsed manifests by project and database
_MANIFESTS_LOCK = threading.Lock()


def _invoke(args: list[str], manifest: Any = None, callback: Any = None) -> Any:
    """``dbtRunner(...).invoke(args)`` under the process lock; returns dbt's result."""
    from dbt.cli.main import dbtRunner  # dbt's import is ~0.3 s once dagster_dbt is loaded

    with _INVOKE_LOCK:
        # usage statistics off by a flag: the environment stays untouched
        return dbtRunner(manifest=manifest, callbacks=[callback] if callback else []).invoke(
            [*args, "--no-send-anonymous-usage-stats"])


def forget_parses() -> None:
    """Forget this process's parsed manifests: the next dbt step parses again (after a project change)."""
    with _MANIFESTS_LOCK:
        _MANIFESTS.clear()


class DbtCoreResource(dg.ConfigurableResource):
    """``dbt build`` in this process, against the database of ``postgis``.

    ``project_dir`` is the dbt project's folder; its ``profiles.yml`` is the template of the profile dbt gets
    (with ``postgis``'s database filled in, :mod:`dagster_project.dbt_profile`).
    """

    project_dir: str
    postgis: PostGISResource

    @property
    def _target(self) -> Path:
        return Path(self.project_dir) / "target"

    def _new_invocation_dir(self, name: str) -> Path:
        folder = self._target / "dagster" / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        folder.mkdir(parents=True)
        return folder

    def _common_args(self, folder: Path, dsn: str, project_dir: str | Path | None = None) -> list[str]:
        return ["--project-dir", str(project_dir or self.project_dir),
                "--profiles-dir", str(profiles_dir(self.project_dir, dsn)), "--no-use-colors",
                "--target-path", str(folder), "--log-path", str(folder)]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # start parsing now, so that it overlaps the steps before the first dbt step
        self.manifest_future()

    def manifest_future(self, dsn: str | None = None) -> Future:
        """The parsed manifest of this project for the database ``dsn`` (default: ``postgis``'s), parsed once
        per process."""
        dsn = self.postgis.resolved_dsn() if dsn is None else dsn
        key = (self.project_dir, dsn)
        with _MANIFESTS_LOCK:
            future = _MANIFESTS.get(key)
            if future is None or (future.done() and future.exception() is not None):
                future = _MANIFESTS[key] = Future()
                threading.Thread(target=self._parse, args=(future, dsn), name="dbt-parse", daemon=True).start()
        return future

    def _parse(self, future: Future, dsn: str) -> None:
        """``dbt parse`` from the project's partial parse, which it then refreshes (atomically)."""
        try:
            folder = self._new_invocation_dir("parse")
            shared = self._target / "partial_parse.msgpack"
            if shared.exists():
                shutil.copyfile(shared, folder / shared.name)
            reasons: list[str] = []

            def note(event: Any) -> None:
                if event.info.name == "UnableToPartialParse":
                    reasons.append(event.info.msg)

            started = time.perf_counter()
            result = _invoke(["parse", "--quiet", "--no-write-json", *self._common_args(folder, dsn)], callback=note)
            if not result.success:
                raise dg.Failure(f"dbt could not parse {self.project_dir}: {result.exception}",
                                 metadata={"dbt log": dg.MetadataValue.path(str(folder / "dbt.log"))})
            temporary = shared.with_name(f".{shared.name}.{os.getpid()}")
            shutil.copyfile(folder / shared.name, temporary)
            os.replace(temporary, shared)
            future.set_result((result.result, time.perf_counter() - started, reasons))
        except BaseException as exc:  # noqa: BLE001 - handed to the step that waits for the manifest
            future.set_exception(exc)

    def build(self, context: dg.AssetExecutionContext, exclude: tuple[str, ...] = ()) -> Iterator[Any]:
        """``dbt build`` of the step's selected models and tests under the dbt lock; yields their Dagster
        events as dbt reports them (each rewritten partition with its own row count), and raises
        :class:`dagster.Failure` naming what failed. The lock is held until dbt's thread has ended."""
        dsn = self.postgis.resolved_dsn()
        manifest, parse_seconds, reasons = self.manifest_future(dsn).result()
        context.log.debug(f"dbt project parsed once in this process in {parse_seconds:.1f} s")
        for reason in reasons:
            context.log.info(f"dbt: {reason}")
        selection = step_selection(context, Path(self.project_dir), exclude)
        try:
            check_agrees(manifest, selection.manifest, self.project_dir)
            with dbt_lock(self.postgis, context):
                yield from self._build_locked(context, selection, manifest, dsn)
        finally:
            selection.cleanup()

    def _build_locked(self, context: dg.AssetExecutionContext, selection: StepSelection, manifest: Any,
                      dsn: str) -> Iterator[Any]:
        folder = self._new_invocation_dir(context.op_def.name)
        # no manifest.json per step (0.6 MB of JSON, ~0.1 s); run_results.json is written below
        args = ["build", "--no-write-json", *self._common_args(folder, dsn, selection.project_dir),
                *selection.args]
        events: queue.Queue = queue.Queue()
        errors: list[str] = []
        failed: list[str] = []  # the models and tests that errored or failed

        def forward(event: Any) -> None:
            if event.info.level != "debug":  # dbt's debug chatter needs no translation
                events.put(event_dict(event))

        def run() -> None:
            try:
                events.put(_invoke(args, manifest, callback=forward))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the step's thread
                events.put(exc)

        with self.postgis.connect() as conn:
            conn.autocommit = True
            mark = dbt_partitions.write_mark(conn)
            worker = threading.Thread(target=run, name="dbt-build", daemon=True)
            worker.start()
            try:
                result = yield from _relay(context, selection, folder, events, conn, mark, errors, failed)
            finally:
                worker.join()  # an early close waits for dbt: the caller's lock must outlive dbt's work
        if result.result is not None and hasattr(result.result, "write"):
            result.result.write(str(folder / "run_results.json"))
        _prune(self._target / "dagster")
        if not result.success:
            details = "\n".join(errors) or str(result.exception or "see the dbt log")
            raise dg.Failure(description=f"dbt build failed: {', '.join(failed) or 'see below'}\n{details}",
                             metadata={"dbt log": dg.MetadataValue.path(str(folder / "dbt.log"))})


def _relay(context: dg.AssetExecutionContext, selection: StepSelection, folder: Path, events: queue.Queue,
           conn: Any, mark: int, errors: list[str], failed: list[str]) -> Iterator[Any]:
    """Log dbt's lines and yield its Dagster events until dbt's result arrives; returns that result. Error
    lines go to ``errors``, the models and tests that errored or failed to ``failed``."""
    while True:
        item = events.get()
        if isinstance(item, BaseException):
            raise item
        if not isinstance(item, dict):
            return item
        info = item["info"]
        if info["level"] == "error":
            errors.append(info["msg"])
            if info["name"] in RESULT_EVENTS and "node_info" in item["data"]:
                failed.append(item["data"]["node_info"]["node_name"])
            context.log.error(f"dbt: {info['msg']}")
        elif info["level"] == "warn":
            context.log.warning(f"dbt: {info['msg']}")
        elif info["name"] in RESULT_EVENTS:
            context.log.info(f"dbt: {info['msg']}")
        for event in dagster_events(item, selection, context, folder):
            yield from dbt_partitions.with_partition_figures(event, item, conn, context, mark)


def _prune(folder: Path, keep: int = KEEP_INVOCATIONS, min_age_s: float = 3600) -> None:
    """Remove invocation folders beyond the newest ``keep`` that are older than ``min_age_s`` seconds."""
    folders = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in folders[keep:]:
        if now - old.stat().st_mtime > min_age_s:
            shutil.rmtree(old, ignore_errors=True)
