"""Re-runs are bit-stable: ``ndvi_stats_yearly`` gives the same bits whatever the physical order of its input
rows. ST_SummaryStatsAgg accumulates in input order, so without a fixed order a re-run beside other areas' rows
(another heap order, another plan) changed ``stddev_ndvi`` and ``mean_ndvi`` in their last bits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.pipeline_env import reset_database, run_pipeline, write_area_config

#: The yearly model's input tables and the key that puts their rows in another physical order.
INPUTS = {"district_tile_masks": "st_xmin(cell) {d}, st_ymax(cell) {d}, district_code {d}",
          "stg_ndvi_tiles": "st_upperleftx(rast) {d}, st_upperlefty(rast) {d}, year {d}"}


def _stats(url: str) -> dict[tuple[str, int], tuple]:
    with psycopg.connect(url) as conn:
        return {(r[0], r[1]): r[2:] for r in conn.execute(
            "select district_code, year, pixel_count, district_pixel_count, valid_fraction, min_ndvi, max_ndvi,"
            " mean_ndvi, stddev_ndvi, mean_clear_observations from analytics.ndvi_stats_yearly")}


def _rewrite_in_order(url: str, direction: str) -> None:
    """Rewrite each input table's rows in ``direction`` (asc/desc) of its key, so scans meet them in that order."""
    with psycopg.connect(url) as conn:
        for table, key in INPUTS.items():
            conn.execute(f"create temp table copy as select * from analytics.{table}")  # noqa: S608
            conn.execute(f"delete from analytics.{table}")  # noqa: S608
            conn.execute(f"insert into analytics.{table} select * from copy order by {key.format(d=direction)}")  # noqa: S608
            conn.execute("drop table copy")
        conn.commit()
        for table in INPUTS:
            conn.execute(f"analyze analytics.{table}")  # noqa: S608


def _rebuild_yearly_stats() -> None:
    dbt = subprocess.run([str(Path(sys.executable).with_name("ndvi-dbt")), "run", "--select", "ndvi_stats_yearly",
                          "--full-refresh", "--quiet"], capture_output=True, text=True)
    assert dbt.returncode == 0, dbt.stdout[-3000:] + dbt.stderr[-3000:]


@pytest.mark.slow
def test_yearly_statistics_are_bit_identical_whatever_the_order_of_their_input_rows(tmp_path, sample_area,
                                                                                     database_url):
    out = tmp_path / "out"
    reset_database(database_url, out)
    run_pipeline(write_area_config(sample_area, out, [2019, 2024]), [2019, 2024], latest=False)
    first = _stats(database_url)
    assert len(first) == 16 and all(row[6] is not None for row in first.values())  # 8 districts x 2 years
    for direction in ("desc", "asc"):
        _rewrite_in_order(database_url, direction)
        _rebuild_yearly_stats()
        assert _stats(database_url) == first, direction  # exactly equal: not approx
