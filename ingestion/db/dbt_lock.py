"""The one lock every dbt entry point takes: a PostgreSQL session advisory lock on the pipeline's database.

dbt's table swaps and first-time table creation are not safe for two runs at once, so Dagster's dbt steps,
``ndvi-dbt build`` (``make dbt-build``) and ``ndvi-dbt docs generate`` (``make dbt-docs``) take turns, from any
process or machine. The holder's connection carries an ``application_name`` saying who it is, so a process
that finds the lock taken can say for whom it waits (or why it refuses, with ``wait=False``). PostgreSQL
keeps the first 63 bytes of that name, so holders name themselves briefly.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from ingestion.db.connection import connect

#: Advisory lock key held while dbt runs (the same number in every entry point).
DBT_LOCK_KEY = 7_214_002
#: ``application_name`` prefix of a connection that holds, or waits for, the dbt lock.
APP_PREFIX = "ndvi dbt: "
#: PostgreSQL keeps 63 bytes of an ``application_name``: say who first, the details last.
MAX_APP_NAME = 63


class DbtLockBusy(RuntimeError):
    """The dbt lock is held elsewhere and the caller chose not to wait; the message names the holder."""


def this_process() -> str:
    """``pid N@host``: this process, as a lock holder names itself."""
    return f"pid {os.getpid()}@{socket.gethostname()}"


def lock_holder(conn: psycopg.Connection) -> str | None:
    """Who holds the dbt lock (its ``application_name``, server pid and since when), or None when free."""
    row = conn.execute(
        "select a.application_name, a.pid, to_char(a.backend_start at time zone 'UTC', 'HH24:MI:SS')"
        " from pg_locks l join pg_stat_activity a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = %s and l.objsubid = 1",
        (DBT_LOCK_KEY,)).fetchone()
    if row is None:
        return None
    name, pid, since = row
    who = name.removeprefix(APP_PREFIX) if name.startswith(APP_PREFIX) else f"{name or 'a session'} (not ours)"
    return f"{who} (server pid {pid}, since {since} UTC)"


@contextmanager
def dbt_lock(who: str, dsn: str | None = None, wait: bool = True,
             echo: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the dbt lock while the block runs. ``who`` says what holds it (shown to anyone who waits). When
    the lock is taken: with ``wait``, echo for whom this waits and wait; otherwise raise :class:`DbtLockBusy`."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute("select set_config('application_name', %s, false)", ((APP_PREFIX + who)[:MAX_APP_NAME],))
        if not conn.execute("select pg_try_advisory_lock(%s)", (DBT_LOCK_KEY,)).fetchone()[0]:
            holder = lock_holder(conn) or "another session (it just finished)"
            if not wait:
                raise DbtLockBusy(f"dbt is already running for {holder}; not starting a second dbt run on the "
                                  "same database (try again when it has finished, or wait for it)")
            echo(f"waiting for the dbt lock, held by {holder}")
            conn.execute("select pg_advisory_lock(%s)", (DBT_LOCK_KEY,))
            echo("got the dbt lock")
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock(%s)", (DBT_LOCK_KEY,))
