"""Dagster's SQLite event log, with each database file's connection kept open in the process.

Why: Dagster records a planned event and a materialisation per asset and partition, so a batch of 96 areas × 2
years writes thousands of events. Its ``SqliteEventLogStorage`` creates an engine, opens the file, and disposes
of both for every statement group: two thirds of about 10 ms per event, measured with py-spy in
``ndvi-pipeline run`` (``benchmarks/areas.py``). This class keeps one connection per database file (a run's
file, and the index shared by all runs), still used under the storage's own lock, one transaction at a time,
so nothing else changes: the same files, tables and schema, readable by the stock class and by other
processes (SQLite locks per transaction, not per connection). The tables it checks for once present are
remembered, not looked up again for each event, and so are the index columns of ``asset_keys``.

Its connections also commit without waiting for the disk (``PRAGMA synchronous = NORMAL``; the files are in
WAL mode, as Dagster makes them): with SQLite's default (``FULL``) every commit syncs the log to disk, and
while a composite writes its COGs that sync waited for their pages too (4 s of commit waits in the 96-area
run, py-spy). In WAL mode this keeps the database consistent through any crash of a process; only a power
loss or an operating-system crash can lose the last events, which then show as not materialised, so those
partitions run again.

A batch of events (Dagster's materialisations of one step output over many partitions, or a run's planned
materialisations, sent to ``store_event_batch`` when ``DAGSTER_EVENT_BATCH_SIZE`` is set, as ``ndvi-pipeline``
and ``make dev`` do) is written in one transaction per database file instead of one per event and file: the
same rows, committed together (or, on an error, not at all, and then Dagster writes them one by one). Its asset
events are also written with a few statements instead of five per event (:meth:`_store_asset_events`): the
stock class builds, compiles and runs each insert and the ``asset_keys`` upsert one event at a time, and
serialises every materialisation twice; that was 8.7 of the 10.4 s of event handling (py-spy) in the 96-area
run, whose 192 area-years make about 5,200 asset events. The rows are the same, ids included.

Configured in ``dagster.yaml`` (``event_log_storage``); ``base_dir`` defaults to where Dagster's default
storage keeps events: ``history/runs`` in the instance's folder (the one holding that ``dagster.yaml``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby
from typing import Any

import sqlalchemy.exc as db_exc
from dagster import DagsterInstance, Field, StringSource
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetKeyTable, SqlEventLogStorageTable
from dagster._core.storage.sql import create_engine
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

#: Open database files kept per process: the index and the last few runs' files (a process writes one run's
#: events at a time; the UI reads older ones now and then).
MAX_OPEN = 8
#: Seconds a statement waits for another process's write lock (Dagster's own SQLite value).
BUSY_TIMEOUT_S = 30
#: Events per batch write (``DAGSTER_EVENT_BATCH_SIZE``, read by Dagster's instance): a step's materialisations
#: of many partitions reach :meth:`PooledSqliteEventLogStorage.store_event_batch` in batches of this size.
EVENT_BATCH_SIZE = 1000


def enable_event_batches() -> None:
    """Let Dagster hand a step's materialisations to ``store_event_batch`` (``DAGSTER_EVENT_BATCH_SIZE``, unless
    already set). Call at process start, before any other thread runs: setting the environment is not
    thread-safe."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))


def _commit_without_sync(dbapi_connection: Any) -> None:
    """Commits that do not wait for the disk (module docstring), in WAL mode only: in a rollback journal the
    same setting could corrupt the file on a power loss, so such a file keeps SQLite's default."""
    if dbapi_connection.execute("pragma journal_mode").fetchone()[0] == "wal":
        dbapi_connection.execute("pragma synchronous = normal")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that keeps one connection per database file open (module docstring)."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables: set[str] = set()
        self._asset_key_cols: set[str] = set()
        self._inst_data = inst_data
        # while a thread writes a batch (holding the storage's lock): that thread, and its open transaction per
        # database file
        self._batch_thread: int | None = None
        self._batch_conns: dict[str, Connection] = {}
        if base_dir:
            super().__init__(base_dir, inst_data)
        # else: opened by register_instance, in the folder of the instance it belongs to

    def register_instance(self, instance: DagsterInstance) -> None:
        """Open the event log in ``<instance folder>/history/runs`` (where Dagster's default storage keeps it)
        unless a ``base_dir`` was configured: the instance's own folder, whatever ``DAGSTER_HOME`` says."""
        if not hasattr(self, "_base_dir"):
            super().__init__(os.path.join(instance.root_directory, "history", "runs"), self._inst_data)
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
                          ) -> PooledSqliteEventLogStorage:
        return cls(config_value.get("base_dir"), inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine (one connection, made on first use); the least recently used beyond
        :data:`MAX_OPEN` is closed. Called under ``self._db_lock``."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            # StaticPool: one connection for every checkout; check_same_thread off because the storage's lock,
            # not the thread, serialises its use
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=StaticPool,
                                   connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
            if shard not in self._initialized_dbs:
                self._initdb(engine)  # creates a new file's tables and puts it in WAL mode
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:  # the engine's one connection, from now on
                _commit_without_sync(conn.connection.dbapi_connection)
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        if self._batch_thread == threading.get_ident():  # inside store_event_batch: its transaction
            conn = self._batch_conns.get(shard)
            if conn is None:
                conn = self._batch_conns[shard] = self._engine(shard).connect()
                conn.begin()
            yield conn
            return
        with self._db_lock:
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` as :meth:`store_event` does, in one transaction per database file (module
        docstring); an error rolls all of them back and is raised (Dagster then stores them one by one)."""
        with self._db_lock:
            self._batch_thread = threading.get_ident()
            try:
                for run, bulk in _runs_of(events):
                    if bulk:
                        self._store_asset_events(run)
                    else:
                        for event in run:
                            self.store_event(event)
                for conn in self._batch_conns.values():
                    conn.commit()
            except BaseException:
                for conn in self._batch_conns.values():
                    conn.rollback()
                raise
            finally:
                for conn in self._batch_conns.values():
                    conn.close()
                self._batch_conns = {}
                self._batch_thread = None

    def _store_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        """What :meth:`store_event` stores for each of ``events`` (asset events of one run, with an asset key; the
        batch's transactions are open), in a few statements: the rows into the run's file (one ``executemany``)
        and into the index (one multi-row insert returning their ids, in order), the indexed tags in one insert,
        and one ``asset_keys`` upsert per asset key with the columns its events set, the last event's value of
        each (an event's columns depend on its type only, so of several events of one key and type only the last
        one's values are computed). The rows are those the stock class writes one event at a time."""
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            inserted = conn.execute(SqlEventLogStorageTable.insert().returning(
                SqlEventLogStorageTable.c.id, sort_by_parameter_order=True), rows)
            ids = list(inserted.scalars())
            self._store_asset_event_tags(conn, events, ids)
            index_cols = self._has_asset_key_index_cols_on_connection(conn)
            last: dict[tuple[str, str], tuple[EventLogEntry, int]] = {}  # (asset key, event type): last event
            for event, event_id in zip(events, ids, strict=True):
                last[(event.dagster_event.asset_key.to_string(), event.dagster_event_type.value)] = (event, event_id)
            values: dict[str, dict[str, Any]] = {}
            for (key, _), (event, event_id) in sorted(last.items(), key=lambda item: item[1][1]):  # event order
                values.setdefault(key, {}).update(self._get_asset_entry_values(event, event_id, index_cols))
            for key, entry in values.items():
                if not entry:
                    continue
                try:  # as the stock class does (SQLite undoes the failed statement only, not the transaction)
                    conn.execute(AssetKeyTable.insert().values(asset_key=key, **entry))
                except db_exc.IntegrityError:
                    conn.execute(AssetKeyTable.update().values(**entry).where(AssetKeyTable.c.asset_key == key))

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables:
            return True
        present = super().has_table(table_name)
        if present:  # a table, once there, stays (migrations add tables, none drops one)
            self._tables.add(table_name)
        return present

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Dagster asks this for every asset event (a column listing of ``asset_keys``: 0.7 s of the 96-area
        run); a column, once there, stays, like the tables."""
        if column_name in self._asset_key_cols:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)
        if present:
            self._asset_key_cols.add(column_name)
        return present

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_all()  # the run files are deleted: no connection may keep writing to one
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _runs_of(events: Sequence[EventLogEntry]) -> Iterator[tuple[list[EventLogEntry], bool]]:
    """``events`` in order, cut into runs of consecutive events that are, or are not, asset events with an asset
    key of one Dagster run (what :meth:`PooledSqliteEventLogStorage._store_asset_events` writes in bulk); each
    with whether it is."""
    def kind(event: EventLogEntry) -> tuple[str, bool]:
        dagster_event = event.dagster_event
        bulk = bool(dagster_event and event.dagster_event_type in ASSET_EVENTS and dagster_event.asset_key)
        return event.run_id, bulk

    for (_, bulk), run in groupby(events, key=kind):
        yield list(run), bulk
