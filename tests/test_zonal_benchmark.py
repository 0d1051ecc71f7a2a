"""The zonal benchmark's correctness check on a tiny case, so it cannot rot (no timings asserted).

Runs the real ``ndvi_stats_yearly`` (dbt run, then its compiled select) on a scratch database and compares
every district with numpy pixel-centre statistics: a district with a hole, one all cloud (NULL statistics),
one off the raster. Then re-districts (one district removed, one reshaped) to check that
``district_tile_masks`` is rebuilt for the new districts version.
"""

from __future__ import annotations

import psycopg

from tests.helpers import zonal_benchmark

zonal_stats = zonal_benchmark()


def test_model_equals_numpy_on_tiny_case_and_after_redistricting(bench_dsn, tmp_path):
    case = zonal_stats.tiny_case()
    cog = zonal_stats.load_case(case, bench_dsn, tmp_path)
    model = zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="32")
    with psycopg.connect(bench_dsn) as conn:
        got = zonal_stats.model_stats(conn, model)
    want = zonal_stats.numpy_stats(case)
    assert zonal_stats.compare(got, want) == []
    cloudy, outside = case.districts["district_code"].iloc[1], "D-OUT"
    assert got[cloudy]["pixel_count"] == 0 and got[cloudy]["district_pixel_count"] > 0
    assert got[cloudy]["mean"] is None and got[cloudy]["min"] is None
    assert got[outside]["district_pixel_count"] == 0
    assert all(v["pixel_count"] > 0 for k, v in got.items() if k not in (cloudy, outside))
    exact = zonal_stats.exactextract_stats(cog, case.districts)
    assert set(exact["district_code"]) == set(got)

    # a new districts version: one district gone, one shrunk by 35 m (not a multiple of the pixel size)
    case.districts = case.districts.drop(index=2).reset_index(drop=True)
    case.districts.loc[0, "geometry"] = case.districts.geometry.iloc[0].buffer(-35)
    with psycopg.connect(bench_dsn) as conn:
        zonal_stats.replace_districts(conn, case.districts)
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="32")  # incremental: recomputes the year
    with psycopg.connect(bench_dsn) as conn:
        got = zonal_stats.table_stats(conn)
        versions = conn.execute("select count(distinct districts_version) from analytics.district_tile_masks"
                                ).fetchone()[0]
    assert zonal_stats.compare(got, zonal_stats.numpy_stats(case)) == []
    assert versions == 1
