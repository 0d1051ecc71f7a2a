"""The single-area layout's upgrade runs once per database, then is recorded and not checked again."""

from __future__ import annotations

import psycopg

from ingestion.load.layout import LAYOUT_VERSION, recorded_layout
from ingestion.load.postgis import ensure_raw_schema
from tests.pipeline_env import reset_database


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def _columns(conn: psycopg.Connection, schema: str, table: str) -> set[str]:
    return {r[0] for r in conn.execute("select column_name from information_schema.columns"
                                       " where table_schema = %s and table_name = %s", (schema, table))}


def test_the_single_area_layout_is_upgraded_once_and_recorded(database_url):
    reset_database(database_url)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("set client_min_messages = warning")
            conn.execute("create schema raw")
            conn.execute("create schema analytics")
            conn.execute("create table raw.ndvi_composites (year integer, rid integer, rast raster)")
            conn.execute("insert into raw.ndvi_composites values (2019, 1, null)")
            conn.execute("create table analytics.ndvi_stats_yearly (district_code text, year integer)")
            assert recorded_layout(conn) is None

            ensure_raw_schema(conn)
            assert recorded_layout(conn) == LAYOUT_VERSION
            assert "area_code" in _columns(conn, "raw", "ndvi_composites")
            assert conn.execute("select count(*) from raw.ndvi_composites_v1").fetchone()[0] == 1  # data kept
            assert not _exists(conn, "analytics.ndvi_stats_yearly")  # dbt rebuilds it

            # recorded: a later load does not look for the old layout again
            conn.execute("create table analytics.ndvi_stats_latest (district_code text)")
            ensure_raw_schema(conn)
            assert _exists(conn, "analytics.ndvi_stats_latest")
            assert conn.execute("select count(*) from raw.layout_version").fetchone()[0] == 1
    finally:
        reset_database(database_url)


def test_a_new_database_is_recorded_at_the_current_layout(database_url):
    reset_database(database_url)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            ensure_raw_schema(conn)
            assert recorded_layout(conn) == LAYOUT_VERSION
    finally:
        reset_database(database_url)


def test_a_ready_schema_costs_two_queries_and_the_table_list_is_what_it_makes(database_url):
    """``ensure_raw_schema`` returns after :func:`raw_schema_ready` when every table exists at the current
    layout; the list it checks is exactly the tables it makes, and a table dropped since is made again."""
    from ingestion.load.postgis import RAW_TABLES, raw_schema_ready

    reset_database(database_url)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("set client_min_messages = warning")
            assert not raw_schema_ready(conn)
            ensure_raw_schema(conn)
            made = {f"raw.{r[0]}" for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'")}
            assert made == set(RAW_TABLES)
            assert raw_schema_ready(conn)
            statements: list[str] = []
            original = conn.execute

            def counting(query, *args, **kwargs):
                statements.append(str(query))
                return original(query, *args, **kwargs)

            conn.execute = counting
            ensure_raw_schema(conn)
            assert len(statements) == 2, statements
            conn.execute = original
            conn.execute("drop table raw.change_baselines")
            assert not raw_schema_ready(conn)
            ensure_raw_schema(conn)
            assert _exists(conn, "raw.change_baselines") and raw_schema_ready(conn)
    finally:
        reset_database(database_url)
