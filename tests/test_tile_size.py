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


@pytest.mark.parametrize("size", ["100", "0", "2048"])
def test_a_tile_size_that_does_not_divide_the_load_squares_is_refused(database_url, size):
    """The loader stores composites in 1,024 px squares and ST_Tile cuts each on its own: at 100 px the tiles
    of the second square start at 1,024, off the 100 px grid the masks are cut on, and a district of 5,349
    pixels got 5,897. Such a size fails before any SQL, naming the var and what to use."""
    shown = subprocess.run([DBT_CLI, "compile", "--inline", SIZES, "--vars", json.dumps({"tile_size": size})],
                           env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                           cwd=DBT_PROJECT_DIR, timeout=300)
    assert shown.returncode != 0
    assert "var 'tile_size' must divide 1024" in shown.stdout, shown.stdout[-2000:]
    assert f"got '{size}'" in shown.stdout


def test_a_power_of_two_tile_size_is_taken_for_every_area(database_url):
    shown = subprocess.run([DBT_CLI, "compile", "--inline", SIZES, "--vars", json.dumps({"tile_size": "64"})],
                           env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                           cwd=DBT_PROJECT_DIR, timeout=300)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    assert "64 as tile_size" in shown.stdout
