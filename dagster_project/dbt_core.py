"""dbt Core inside the run's own process: the project is parsed once per process, then each step builds.

A dbt CLI process per step costs 2-4 s before the first query (imports, profile, adapter, parse), more than
the SQL of a demo-sized year. Here dbt runs through ``dbtRunner`` in the Dagster process:

- the project is parsed once per process and database, in a background thread that starts when the run's
  resources are set up, so it overlaps the composite of a yearly run; the parse reuses and then refreshes
  dbt's own ``target/partial_parse.msgpack``;
- each step runs ``dbt build`` with that parsed manifest (no parse), and its events become Dagster events
  through dagster-dbt's translation (materialisations, checks), as they happen;
- every invocation writes ``run_results.json``, ``dbt.log`` and the compiled SQL (not ``manifest.json``) into
  its own folder under ``target/dagster/``; the newest :data:`KEEP_INVOCATIONS` are kept.

dbt is not safe for two invocations at once in one process: a lock serialises them (the database's advisory
lock in :mod:`dagster_project.resources` serialises processes).
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator
from dagster_dbt.asset_utils import (
    get_manifest_and_translator_from_dbt_assets,
    get_updated_cli_invocation_params_for_context,
)
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dbt_common.events.functions import msg_to_dict
from psycopg import sql

from dagster_project.resources import PostGISResource

#: Invocation folders kept under ``target/dagster/`` (older ones are removed once they are an hour old).
KEEP_INVOCATIONS = 20
#: dbt events forwarded to the Dagster log at info level: one line per model and test, and the summary.
RESULT_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult", "StatsLine"})

_INVOKE_LOCK = threading.Lock()  # one dbt invocation at a time in this process
_MANIFESTS: dict[tuple[str, ...], Future] = {}  # parsed manifests by project and database
_MANIFESTS_LOCK = threading.Lock()


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables (dbt's profile reads the database from ``PG*``) and restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _invoke(args: list[str], env: Mapping[str, str], manifest: Any = None, callback: Any = None) -> Any:
    """``dbtRunner(...).invoke(args)`` under the process lock and with ``env`` set; returns dbt's result."""
    from dbt.cli.main import dbtRunner  # dbt's import is ~0.3 s once dagster_dbt is loaded

    with _INVOKE_LOCK, _environment({**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}):
        return dbtRunner(manifest=manifest, callbacks=[callback] if callback else []).invoke(args)


class DbtCoreResource(dg.ConfigurableResource):
    """``dbt build`` in this process, against the database of ``postgis``.

    ``project_dir`` and ``profiles_dir`` are the dbt project's folders; the profile reads the database from
    the ``PG*`` variables that ``postgis`` resolves (set only while dbt runs).
    """

    project_dir: str
    profiles_dir: str
    postgis: PostGISResource

    @property
    def _target(self) -> Path:
        return Path(self.project_dir) / "target"

    def _new_invocation_dir(self, name: str) -> Path:
        folder = self._target / "dagster" / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        folder.mkdir(parents=True)
        return folder

    def _common_args(self, folder: Path) -> list[str]:
        return ["--project-dir", self.project_dir, "--profiles-dir", self.profiles_dir, "--no-use-colors",
                "--target-path", str(folder), "--log-path", str(folder)]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # start parsing now, so that it overlaps the steps before the first dbt step
        self.manifest_future()

    def manifest_future(self, env: Mapping[str, str] | None = None) -> Future:
        """The parsed manifest of this project for the database of ``env`` (default: ``postgis``'s ``PG*``
        variables), parsed once per process."""
        env = self.postgis.pg_environment() if env is None else env
        key = (self.project_dir, self.profiles_dir, *sorted(f"{k}={v}" for k, v in env.items()))
        with _MANIFESTS_LOCK:
            future = _MANIFESTS.get(key)
            if future is None or (future.done() and future.exception() is not None):
                future = _MANIFESTS[key] = Future()
                threading.Thread(target=self._parse, args=(future, env), name="dbt-parse", daemon=True).start()
        return future

    def _parse(self, future: Future, env: Mapping[str, str]) -> None:
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
            result = _invoke(["parse", "--quiet", "--no-write-json", *self._common_args(folder)], env, callback=note)
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
        """``dbt build`` of the step's selected models and tests; yields their Dagster events as dbt reports
        them, with each model's row count, and raises :class:`dagster.Failure` naming what failed."""
        env = self.postgis.pg_environment()
        manifest, parse_seconds, reasons = self.manifest_future(env).result()
        context.log.debug(f"dbt project parsed once in this process in {parse_seconds:.1f} s")
        for reason in reasons:
            context.log.info(f"dbt: {reason}")
        dagster_manifest, translator, project = get_manifest_and_translator_from_dbt_assets([context.assets_def])
        selection = _selection_args(context, dagster_manifest, translator, exclude)
        folder = self._new_invocation_dir(context.op_def.name)
        # no manifest.json per step (0.6 MB of JSON, ~0.1 s); run_results.json is written below
        args = ["build", "--no-write-json", *self._common_args(folder), *selection]

        events: queue.Queue = queue.Queue()

        def forward(event: Any) -> None:
            if event.info.level != "debug":  # dbt's debug chatter needs no translation
                events.put(msg_to_dict(event))  # the dict of its JSON log line

        def run() -> None:
            try:
                events.put(_invoke(args, env, manifest, callback=forward))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the step's thread
                events.put(exc)

        threading.Thread(target=run, name="dbt-build", daemon=True).start()
        errors: list[str] = []
        failed: list[str] = []  # the models and tests that errored or failed
        with self.postgis.connect() as conn:
            while True:
                item = events.get()
                if isinstance(item, BaseException):
                    raise item
                if not isinstance(item, dict):
                    result = item
                    break
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
                message = DbtCoreCliEventMessage(raw_event=item, event_history_metadata={})
                for event in message.to_default_asset_events(manifest=dagster_manifest,
                                                             dagster_dbt_translator=translator,
                                                             context=context, target_path=folder, project=project):
                    yield _with_figures(event, item, conn, context)
        if result.result is not None and hasattr(result.result, "write"):
            result.result.write(str(folder / "run_results.json"))
        _prune(self._target / "dagster")
        if not result.success:
            details = "\n".join(errors) or str(result.exception or "see the dbt log")
            raise dg.Failure(description=f"dbt build failed: {', '.join(failed) or 'see below'}\n{details}",
                             metadata={"dbt log": dg.MetadataValue.path(str(folder / "dbt.log"))})


def _selection_args(context: dg.AssetExecutionContext, manifest: Mapping[str, Any],
                    translator: DagsterDbtTranslator, exclude: tuple[str, ...]) -> list[str]:
    """dagster-dbt's ``--select``/``--exclude`` for the step's selected assets and checks, plus ``exclude``."""
    params = get_updated_cli_invocation_params_for_context(context=context, manifest=manifest,
                                                           dagster_dbt_translator=translator,
                                                           runtime_excludes=list(exclude))
    return [*params.selection_args, "--indirect-selection", params.indirect_selection or "buildable"]


def _with_figures(event: Any, raw: Mapping[str, Any], conn: Any, context: dg.AssetExecutionContext) -> Any:
    """A model's output with its table's row count; a check result with the partition it ran for."""
    partition = {"partition": context.partition_key} if context.has_partition_key else {}
    if isinstance(event, dg.Output):
        relation = raw["data"]["node_info"]["node_relation"]
        count = conn.execute(sql.SQL("select count(*) from {}").format(
            sql.Identifier(relation["schema"], relation["alias"]))).fetchone()[0]
        return event.with_metadata({**event.metadata, "dagster/row_count": count})
    if isinstance(event, dg.AssetCheckResult) and partition:
        # so the check history says which area and year passed or failed
        return dg.AssetCheckResult(passed=event.passed, asset_key=event.asset_key, check_name=event.check_name,
                                   severity=event.severity, description=event.description,
                                   metadata={**event.metadata, **partition})
    return event


def _prune(folder: Path, keep: int = KEEP_INVOCATIONS, min_age_s: float = 3600) -> None:
    """Remove invocation folders beyond the newest ``keep`` that are older than ``min_age_s`` seconds."""
    folders = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in folders[keep:]:
        if now - old.stat().st_mtime > min_age_s:
            shutil.rmtree(old, ignore_errors=True)
