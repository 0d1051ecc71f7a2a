"""The database layout's upgrades, run once per database and recorded, not checked on every build.

Layout 1 was the single-area one (tables without ``area_code``, before one deployment served many areas);
layout 2 keys every table by area. Upgrading from 1 keeps each raw table as ``raw.<table>_v1`` (its data stays
readable) and drops the analytics tables of layout 1, which dbt then rebuilds from ``raw``; incremental models
cannot be appended to across the change. ``raw.layout_version`` records the layout a database has: a
database at the current layout costs one query, and a new database is recorded as current at once.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

#: The layout this code writes.
LAYOUT_VERSION = 2
#: Tables of ``raw`` that layout 1 had without ``area_code``: kept as ``<table>_v1``.
RAW_TABLES = ("ndvi_composites", "districts", "districts_staged")
#: Incremental dbt models of layout 1 (the others are rebuilt whole by every dbt run): dropped.
ANALYTICS_TABLES = ("stg_ndvi_tiles", "ndvi_stats_yearly", "ndvi_stats_latest")


def _single_area(conn: psycopg.Connection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists without an ``area_code`` column (layout 1)."""
    return conn.execute(
        "select to_regclass(%s) is not null and not exists (select from information_schema.columns"
        " where table_schema = %s and table_name = %s and column_name = 'area_code')",
        (f"{schema}.{table}", schema, table)).fetchone()[0]


def recorded_layout(conn: psycopg.Connection) -> int | None:
    """The layout recorded for this database, or None before the first upgrade (or with schema ``raw``
    missing)."""
    if conn.execute("select to_regclass('raw.layout_version')").fetchone()[0] is None:
        return None
    return conn.execute("select max(version) from raw.layout_version").fetchone()[0]


def upgrade_layout(conn: psycopg.Connection) -> list[str]:
    """Bring the database to :data:`LAYOUT_VERSION` once; returns what was done (empty when it was current).
    Call inside the transaction that holds the raw schema's setup lock, after ``create schema raw``."""
    current = recorded_layout(conn)
    if current is not None and current >= LAYOUT_VERSION:
        return []
    done = []
    for table in RAW_TABLES:
        if _single_area(conn, "raw", table):
            log.warning("raw.%s has the single-area layout; keeping it as raw.%s_v1", table, table)
            conn.execute(sql.SQL("drop table if exists {} cascade").format(sql.Identifier("raw", f"{table}_v1")))
            conn.execute(sql.SQL("alter table {} rename to {}").format(sql.Identifier("raw", table),
                                                                       sql.Identifier(f"{table}_v1")))
            done.append(f"raw.{table} kept as raw.{table}_v1")
    for table in ANALYTICS_TABLES:
        if _single_area(conn, "analytics", table):
            log.warning("analytics.%s has the single-area layout; dropped, dbt rebuilds it", table)
            conn.execute(sql.SQL("drop table {} cascade").format(sql.Identifier("analytics", table)))
            done.append(f"analytics.{table} dropped")
    conn.execute("create table if not exists raw.layout_version (version integer not null,"
                 " upgraded_at timestamptz not null default now())")
    conn.execute("insert into raw.layout_version (version) values (%s)", (LAYOUT_VERSION,))
    return done
