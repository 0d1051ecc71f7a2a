"""Retiring an area: its rows leave every table in one transaction, and its output folder moves aside.

An area removed from the config is no longer served, but its rows (``raw.*`` and ``analytics.*``) and its files
(``<output_dir>/<area>/``) would stay for good. :func:`retire_area` removes them:

- **Rows.** Every base table of the ``raw`` and ``analytics`` schemas with an ``area_code`` column loses the
  area's rows, in one transaction, so a reader sees the area either whole or gone. The tables are found in the
  catalog, not listed here, so a table added later is covered too. Views follow their tables.
- **Lock.** The transaction runs under the dbt lock, so no dbt build (Dagster step, ``ndvi-dbt build``) reads
  or writes the area's rows meanwhile.
- **Files.** ``<output_dir>/<area>/`` is renamed to ``<output_dir>/_retired/<area>-<UTC time>/`` after the rows
  are gone (delete it when you no longer need it); nothing is published under the area's folder any more.

A configured area cannot be retired: the caller checks the config first (``ndvi-pipeline retire``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from ingestion.db.connection import connect
from ingestion.db.dbt_lock import dbt_lock, this_process

log = logging.getLogger(__name__)

#: Schemas whose tables hold per-area rows.
SCHEMAS = ("raw", "analytics")
#: Folder under ``output_dir`` that retired areas' folders move to.
RETIRED_DIR = "_retired"


@dataclass(frozen=True)
class RetireReport:
    """What retiring an area removed: rows per table (``schema.table``) and where its folder went."""

    area_code: str
    rows: dict[str, int] = field(default_factory=dict)
    moved_to: Path | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def found(self) -> bool:
        """Whether there was anything of the area to retire."""
        return self.total_rows > 0 or self.moved_to is not None


def area_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every base table of :data:`SCHEMAS` with an ``area_code`` column, as (schema, table), sorted."""
    return [(schema, table) for schema, table in conn.execute(
        "select c.table_schema, c.table_name from information_schema.columns c"
        " join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name"
        " where c.column_name = 'area_code' and t.table_type = 'BASE TABLE' and c.table_schema = any(%s)"
        " order by 1, 2", (list(SCHEMAS),)).fetchall()]


def delete_area_rows(conn: psycopg.Connection, area_code: str) -> dict[str, int]:
    """Delete ``area_code``'s rows from every area table, in the caller's transaction; rows deleted per table."""
    deleted = {}
    for schema, table in area_tables(conn):
        cursor = conn.execute(sql.SQL("delete from {} where area_code = %s").format(sql.Identifier(schema, table)),
                              (area_code,))
        if cursor.rowcount:
            deleted[f"{schema}.{table}"] = cursor.rowcount
    return deleted


def retire_area(area_code: str, output_dir: Path, dsn: str | None = None) -> RetireReport:
    """Remove every row of ``area_code`` (one transaction, under the dbt lock), then move its output folder
    ``output_dir/area_code`` to ``output_dir/_retired/``. Idempotent: a second call finds nothing."""
    with dbt_lock(f"retire {area_code} {this_process()}", dsn, echo=log.warning), connect(dsn) as conn:
        with conn.transaction():
            rows = delete_area_rows(conn, area_code)
    folder = output_dir / area_code
    moved_to = None
    if folder.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved_to = output_dir / RETIRED_DIR / f"{area_code}-{stamp}"
        moved_to.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(moved_to)
    for table, count in rows.items():
        log.info("retire %s: %d rows deleted from %s", area_code, count, table)
    return RetireReport(area_code, rows, moved_to)
