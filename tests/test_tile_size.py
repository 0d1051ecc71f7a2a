"""The tile size of stg_ndvi_tiles is chosen per area, from that area's districts only: adding an area with
much smaller districts leaves the first area's tiling as it was (macro ``zonal_tile_sizes``)."""

from __future__ import annotations

import json
import os
import subprocess

import psycopg
import pytest

from ingestion.cli.dbt import DBT_PROJECT_DIR
from ingestion.load.postgis import ensure_raw_schema
from tests.crash_env import DBT_CLI
from tests.pipeline_env import reset_database

SIZES = "select area_code, tile_size from ({{ zonal_tile_sizes() }}) as sizes order by area_code"


def _add_area(conn: psycopg.Connection, area: str, district_side_m: int, districts: int) -> None:
    """An area of 10 m pixels (one empty composite tile) and ``districts`` squares of ``district_side_m``."""
    conn.execute("insert into raw.ndvi_composites (area_code, year, rid, rast) values"
                 " (%s, 2024, 1, st_addband(st_makeemptyraster(10, 10, 0, 0, 10, -10, 0, 0, 28992), '32BF'))",
                 (area,))
    for i in range(districts):
        conn.execute("insert into raw.districts (area_code, district_code, district_name, geometry,"
                     " districts_version) values (%s, %s, %s, st_multi(st_makeenvelope(%s, 0, %s, %s, 28992)),"
                     " 'v1')", (area, f"{area}{i}", f"{area} {i}", i * district_side_m, (i + 1) * district_side_m,
                                district_side_m))


def _tile_sizes(database_url: str) -> dict[str, int]:
    shown = subprocess.run([DBT_CLI, "show", "--inline", SIZES, "--output", "json", "--log-format", "json",
                            "--limit", "100"], env={**os.environ, "DATABASE_URL": database_url},
                           capture_output=True, text=True, cwd=DBT_PROJECT_DIR, timeout=300)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    for line in shown.stdout.splitlines():
        preview = json.loads(line).get("data", {}).get("preview")
        if preview:
            return {row["area_code"]: int(row["tile_size"]) for row in json.loads(preview)}
    raise AssertionError(shown.stdout[-2000:])


@pytest.mark.slow
def test_adding_an_area_leaves_another_areas_tiling_as_it_was(database_url):
    reset_database(database_url)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            ensure_raw_schema(conn)
            _add_area(conn, "large", district_side_m=9000, districts=3)  # 900 px sides: 256 px tiles
        alone = _tile_sizes(database_url)
        assert alone == {"large": 256}
        with psycopg.connect(database_url, autocommit=True) as conn:
            _add_area(conn, "small", district_side_m=600, districts=9)  # 60 px sides: 32 px tiles
        assert _tile_sizes(database_url) == {"large": 256, "small": 32}
    finally:
        reset_database(database_url)
