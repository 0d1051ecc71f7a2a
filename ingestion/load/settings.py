"""The area's statistics settings as small raw tables, so dbt reads them without ``--vars`` (no re-parse).

``raw.green_share_thresholds`` holds one row per area and green-share class (name, label, NDVI threshold) and
``raw.change_baselines`` one row per area (the baseline year of the change models). The pipeline writes an
area's rows before each of its dbt steps, from the area config (``statistics`` section), so a config change
applies at the next run of any job of the area; the models recompute what the change affects (the yearly
distribution model stores the thresholds it used per row).
"""

from __future__ import annotations

import logging

import psycopg

from ingestion.config import AreaConfig, GreenThreshold

log = logging.getLogger(__name__)

_SETUP_LOCK = 7_214_001  # the same advisory lock as ingestion.load.postgis: raw DDL never races


def ensure_settings_tables(conn: psycopg.Connection) -> None:
    """Create ``raw.green_share_thresholds`` and ``raw.change_baselines`` if missing (inside a transaction)."""
    conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
    conn.execute("create schema if not exists raw")
    conn.execute("""
        create table if not exists raw.green_share_thresholds (
            area_code text not null,
            threshold_name text not null,
            threshold_label text not null,
            ndvi_threshold double precision not null check (ndvi_threshold between -1 and 1),
            primary key (area_code, threshold_name)
        )""")
    conn.execute("""
        create table if not exists raw.change_baselines (
            area_code text primary key,
            baseline_year integer not null
        )""")


def _stored(conn: psycopg.Connection, area_code: str) -> tuple[list[tuple[str, str, float]], int | None]:
    rows = conn.execute("select threshold_name, threshold_label, ndvi_threshold from raw.green_share_thresholds"
                        " where area_code = %s order by ndvi_threshold", (area_code,)).fetchall()
    baseline = conn.execute("select baseline_year from raw.change_baselines where area_code = %s",
                            (area_code,)).fetchone()
    return [tuple(r) for r in rows], (baseline[0] if baseline else None)


def write_statistics_settings(conn: psycopg.Connection, area_code: str,
                              thresholds: tuple[GreenThreshold, ...], baseline_year: int) -> bool:
    """Replace the area's thresholds and baseline year in one transaction; returns True when they changed.

    Unchanged settings are not rewritten (no churn for a re-run).
    """
    wanted = [(t.name, t.display_label, float(t.ndvi)) for t in sorted(thresholds, key=lambda t: t.ndvi)]
    with conn.transaction():
        ensure_settings_tables(conn)
        if _stored(conn, area_code) == (wanted, baseline_year):
            return False
        conn.execute("delete from raw.green_share_thresholds where area_code = %s", (area_code,))
        with conn.cursor() as cur:
            cur.executemany("insert into raw.green_share_thresholds (area_code, threshold_name, threshold_label,"
                            " ndvi_threshold) values (%s, %s, %s, %s)",
                            [(area_code, *row) for row in wanted])
        conn.execute("insert into raw.change_baselines (area_code, baseline_year) values (%s, %s)"
                     " on conflict (area_code) do update set baseline_year = excluded.baseline_year",
                     (area_code, baseline_year))
    log.info("raw statistics settings: %s: thresholds %s, baseline year %d", area_code,
             ", ".join(f"{name} >= {value:g}" for name, _, value in wanted) or "none", baseline_year)
    return True


def write_area_settings(conn: psycopg.Connection, area: AreaConfig) -> bool:
    """:func:`write_statistics_settings` from an area config (its thresholds and resolved baseline year)."""
    return write_statistics_settings(conn, area.code, area.statistics.green_thresholds, area.baseline_year)
