"""The project's Dagster event log (dagster_project/event_log.py): the stock SQLite files, one connection per file
per process, correct under concurrent writers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from dagster_project.event_log import PooledSqliteEventLogStorage
from tests.conftest import PROJECT_ROOT
from tests.helpers import sqlite_tables

PARTITIONS = [f"p{i:03d}" for i in range(60)]

JOB = textwrap.dedent("""
    import sys
    import dagster as dg

    parts = dg.StaticPartitionsDefinition([f"p{i:03d}" for i in range(60)])

    def materialise(instance, prefix):
        @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run(), key_prefix=[prefix])
        def thing(context):
            for key in context.partition_keys:
                context.add_asset_metadata({"key": key}, partition_key=key)
            return dg.MaterializeResult()

        job = dg.Definitions(assets=[thing]).resolve_implicit_global_asset_job_def()
        tags = {"dagster/asset_partition_range_start": parts.get_first_partition_key(),
                "dagster/asset_partition_range_end": parts.get_last_partition_key()}
        return job.execute_in_process(instance=instance, tags=tags).success

    if __name__ == "__main__":
        with dg.DagsterInstance.get() as instance:
            assert materialise(instance, sys.argv[1])
""")


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster_project" / "dagster.yaml").read_text())
    return home


def _materialised(instance: dg.DagsterInstance, prefix: str) -> set[str]:
    return instance.get_materialized_partitions(dg.AssetKey([prefix, "thing"]))


def _stock(home: Path) -> dg.DagsterInstance:
    """The same folder opened with Dagster's own storage (no dagster.yaml)."""
    plain = home.parent / "plain"
    plain.mkdir(exist_ok=True)
    (plain / "dagster.yaml").write_text(
        f"event_log_storage:\n  module: dagster._core.storage.event_log\n  class: SqliteEventLogStorage\n"
        f"  config:\n    base_dir: {home / 'history' / 'runs'}\n"
        f"run_storage:\n  module: dagster._core.storage.runs\n  class: SqliteRunStorage\n"
        f"  config:\n    base_dir: {home / 'history'}\n")
    return dg.DagsterInstance.from_config(str(plain))


def test_concurrent_processes_record_every_partition_readable_by_dagsters_own_storage(tmp_path):
    home = _home(tmp_path)
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with dg.DagsterInstance.from_config(str(home)):  # the instance's files exist, as after `make dev` or a first run
        pass
    procs = [subprocess.Popen([sys.executable, str(script), prefix], env=env, cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for prefix in ("a", "b")]
    for proc in procs:
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output[-3000:]
        assert "database is locked" not in output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        for prefix in ("a", "b"):
            assert _materialised(instance, prefix) == set(PARTITIONS)
        runs = instance.get_runs()
        assert len(runs) == 2 and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        planned = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                                                                   asset_key=dg.AssetKey(["a", "thing"])))
        assert len(planned) == len(PARTITIONS)
    with _stock(home) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        for prefix in ("a", "b"):
            assert _materialised(stock, prefix) == set(PARTITIONS)


def test_a_process_opens_each_file_once_and_wipe_starts_afresh(tmp_path):
    home = _home(tmp_path)
    namespace: dict = {}
    exec(compile(JOB.replace('if __name__ == "__main__":', "if False:"), "job", "exec"), namespace)
    opened: list[str] = []

    def count(dbapi_connection, record):  # every new SQLite connection of any engine in this process: its file
        opened.append(dbapi_connection.execute("pragma database_list").fetchall()[0][2])

    def listing(conn, cursor, statement, *args):  # column listings of asset_keys (Dagster's per-event check)
        if "info" in statement.lower() and "asset_keys" in statement:
            listings.append(statement)

    listings: list[str] = []
    event.listen(Engine, "connect", count)
    event.listen(Engine, "before_cursor_execute", listing)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert namespace["materialise"](instance, "a")  # the first run (creates the index's tables)
            before, listed = len(opened), len(listings)
            assert namespace["materialise"](instance, "b")
            # asset_keys' columns are not listed for each of the 120 asset events (the new run file's table
            # creation still checks that the table exists)
            assert len(listings[listed:]) < len(PARTITIONS), listings[listed:]
            # 60 planned events and 60 materialisations, with step and run events: only the new run's file is
            # opened, once; the index stays open (the run storage, history/runs.db, is Dagster's own)
            run_id = instance.get_runs(limit=1)[0].run_id
            assert len(instance.all_logs(run_id)) > 2 * len(PARTITIONS)
            events_dir = home / "history" / "runs"
            assert [Path(f).name for f in opened[before:] if Path(f).parent == events_dir] == [f"{run_id}.db"]
            assert _materialised(instance, "a") == _materialised(instance, "b") == set(PARTITIONS)
            # every open file (index and run) is in WAL mode and commits without a sync to disk
            engines = instance.event_log_storage._engines
            assert "index" in engines and run_id in engines
            for engine in engines.values():
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
                    assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL (FULL is 2)
            instance.wipe()
            assert _materialised(instance, "a") == set()
            # the deleted run files are closed, not kept open (and written to) behind the new ones
            held = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.exists()]
            assert not [f for f in held if f.startswith(str(events_dir)) and f.endswith("(deleted)")]
            assert namespace["materialise"](instance, "a")
            assert _materialised(instance, "a") == set(PARTITIONS)
    finally:
        event.remove(Engine, "connect", count)
        event.remove(Engine, "before_cursor_execute", listing)


def test_an_instance_opened_by_its_folder_keeps_its_events_there_whatever_dagster_home_says(tmp_path, monkeypatch):
    home = _home(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    namespace: dict = {}
    exec(compile(JOB.replace('if __name__ == "__main__":', "if False:"), "job", "exec"), namespace)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert namespace["materialise"](instance, "a")
        run_id = instance.get_runs()[0].run_id
    assert (home / "history" / "runs" / f"{run_id}.db").exists()
    assert not list(elsewhere.iterdir())
    with _stock(home) as stock:
        assert _materialised(stock, "a") == set(PARTITIONS)


def test_a_steps_materialisations_are_written_in_one_transaction_per_file(tmp_path, monkeypatch):
    """With ``DAGSTER_EVENT_BATCH_SIZE`` set (as ``ndvi-pipeline`` sets it), Dagster hands the 60 materialisations
    of a step's output to ``store_event_batch``: one transaction per file instead of one per event and file,
    and the same records."""
    namespace: dict = {}
    exec(compile(JOB.replace('if __name__ == "__main__":', "if False:"), "job", "exec"), namespace)
    commits: list[str] = []

    def count(conn):
        commits.append(conn.engine.url.database)

    event.listen(Engine, "commit", count)
    try:
        counted = {}
        for prefix, batch in (("one_by_one", None), ("batched", "1000")):
            if batch:
                monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch)
            else:
                monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
            (tmp_path / prefix).mkdir()
            home = _home(tmp_path / prefix)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                assert namespace["materialise"](instance, "warm")  # the index's tables exist
                before = len(commits)
                assert namespace["materialise"](instance, prefix)
                counted[prefix] = len(commits) - before
                assert _materialised(instance, prefix) == set(PARTITIONS)
                records = instance.fetch_materializations(dg.AssetKey([prefix, "thing"]), limit=100).records
                assert sorted((r.partition_key, r.asset_materialization.metadata["key"].value) for r in records) == \
                    [(p, p) for p in PARTITIONS]
            with _stock(home) as stock:
                assert _materialised(stock, prefix) == set(PARTITIONS)
    finally:
        event.remove(Engine, "commit", count)
    # one by one: a commit in the run's file and one in the index per materialisation
    assert counted["one_by_one"] - counted["batched"] >= 2 * len(PARTITIONS) - 2, counted


REPLAYED = textwrap.dedent("""
    import dagster as dg

    parts = dg.StaticPartitionsDefinition(["p1", "p2", "p3", "p4"])

    @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
    def versioned(context):
        for key in context.partition_keys:
            context.add_asset_metadata({"key": key}, partition_key=key)
        return dg.MaterializeResult(data_version=dg.DataVersion("v1"))

    @dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="plain")])
    def plain():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])

    def runs(instance):
        tags = {"dagster/asset_partition_range_start": "p1", "dagster/asset_partition_range_end": "p4"}
        for assets, run_tags in (([versioned], tags), ([plain], {}), ([versioned], tags)):
            job = dg.Definitions(assets=assets).resolve_implicit_global_asset_job_def()
            assert job.execute_in_process(instance=instance, tags=run_tags).success
""")


def test_a_batch_of_asset_events_writes_the_rows_dagsters_storage_writes_one_event_at_a_time(tmp_path, monkeypatch):
    """``store_event_batch`` writes asset events in bulk (``_store_asset_events``): replaying three real runs'
    events (planned events, partitioned materialisations with data versions, an asset check, run and step
    events) in two batches, cut in the middle of a run of asset events, leaves every table of every file, ids
    and ``asset_keys`` included, as Dagster's own storage leaves it storing them one by one."""
    from dagster._core.storage.event_log import SqliteEventLogStorage

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    namespace: dict = {}
    exec(compile(REPLAYED, "replayed", "exec"), namespace)
    with dg.DagsterInstance.from_config(str(_home(tmp_path))) as instance:
        namespace["runs"](instance)
        events = [e for run in reversed(instance.get_runs()) for e in instance.all_logs(run.run_id)]
    kinds = [e.dagster_event_type.value for e in events if e.dagster_event]
    assert kinds.count("ASSET_MATERIALIZATION") == 9 and kinds.count("ASSET_CHECK_EVALUATION") == 1
    cut = [i for i, e in enumerate(events) if e.dagster_event_type and e.dagster_event_type.value ==
           "ASSET_MATERIALIZATION"][1]  # after the first run's first materialisation

    stock = SqliteEventLogStorage(str(tmp_path / "stock"))
    for entry in events:
        stock.store_event(entry)
    pooled = PooledSqliteEventLogStorage(str(tmp_path / "pooled"))
    bulk_writes = []
    original = pooled._store_asset_events
    monkeypatch.setattr(pooled, "_store_asset_events", lambda run: bulk_writes.append(len(run)) or original(run))
    pooled.store_event_batch(events[:cut])
    pooled.store_event_batch(events[cut:])
    stock.dispose()
    pooled.dispose()

    assert max(bulk_writes) >= 4  # the partitions' planned events and materialisations went in bulk
    expected, written = sqlite_tables(tmp_path / "stock"), sqlite_tables(tmp_path / "pooled")
    assert expected["index.db"]["asset_event_tags"]  # the data versions are indexed tags
    assert len(expected["index.db"]["asset_keys"]) == 2
    assert written == expected

    # the asset events alone, in one batch: the three runs' events meet, and each run's go to its own file
    assets_only = [e for e in events if e.dagster_event and e.dagster_event.asset_key
                   and e.dagster_event_type.value.startswith("ASSET_MATERIALIZATION")]
    stock = SqliteEventLogStorage(str(tmp_path / "stock_assets"))
    for entry in assets_only:
        stock.store_event(entry)
    pooled = PooledSqliteEventLogStorage(str(tmp_path / "pooled_assets"))
    pooled.store_event_batch(assets_only)
    stock.dispose()
    pooled.dispose()
    assert len({e.run_id for e in assets_only}) == 3
    assert sqlite_tables(tmp_path / "pooled_assets") == sqlite_tables(tmp_path / "stock_assets")
