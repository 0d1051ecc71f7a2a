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

A batch of events (Dagster's materialisations of one step output over many partitions, sent to
``store_event_batch`` when ``DAGSTER_EVENT_BATCH_SIZE`` is set, as ``ndvi-pipeline`` and ``make dev`` do) is
written in one transaction per database file instead of one per event and file: the same rows, committed
together (or, on an error, not at all, and then Dagster writes them one by one).

Configured in ``dagster.yaml`` (``event_log_storage``); ``base_dir`` defaults to where Dagster's default
storage keeps events: ``history/runs`` in the instance's folder (the one holding that ``dagster.yaml``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance, Field, StringSource
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
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
                for event in events:
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
