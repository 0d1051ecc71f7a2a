"""``raw.ndvi_composite_inputs``: the inputs version (:mod:`ingestion.updates`) of each loaded area-year,
written in the load's transaction, so that a reload of the same inputs can be skipped."""

from __future__ import annotations

import psycopg


def ensure_inputs_table(conn: psycopg.Connection) -> None:
    """Create ``raw.ndvi_composite_inputs(area_code, year, inputs_version, loaded_at)`` if missing (inside the
    caller's transaction; the loader's DDL lock held)."""
    conn.execute("""
        create table if not exists raw.ndvi_composite_inputs (
            area_code text not null,
            year integer not null,
            inputs_version text not null,
            loaded_at timestamptz not null default clock_timestamp(),
            primary key (area_code, year)
        )""")


def record_loaded_inputs(conn: psycopg.Connection, area_code: str, year: int, version: str | None) -> None:
    """Within the load's transaction: the area-year's rows now come from inputs ``version`` (None: unknown,
    so the next load never skips)."""
    conn.execute("delete from raw.ndvi_composite_inputs where area_code = %s and year = %s", (area_code, year))
    if version is not None:
        conn.execute("insert into raw.ndvi_composite_inputs (area_code, year, inputs_version) values (%s, %s, %s)",
                     (area_code, year, version))


def loaded_inputs_version(conn: psycopg.Connection, area_code: str, year: int) -> str | None:
    """The inputs version of the area-year's rows in ``raw.ndvi_composites`` (None: not loaded or unknown)."""
    if conn.execute("select to_regclass('raw.ndvi_composite_inputs')").fetchone()[0] is None:
        return None
    row = conn.execute(
        "select i.inputs_version from raw.ndvi_composite_inputs i where i.area_code = %s and i.year = %s"
        " and exists (select 1 from raw.ndvi_composites c where c.area_code = i.area_code and c.year = i.year)",
        (area_code, year)).fetchone()
    return row[0] if row else None
