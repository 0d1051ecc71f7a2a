"""The whole graph, materialised in-process against the test PostGIS, with its numbers checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.features import rasterize

from ingestion.cli.dbt import DBT_PROJECT_DIR
from tests.helpers import read_on_geobox
from tests.pipeline_env import load_code_location, reset_database, write_area_config

YEARS = [2019, 2021, 2024]  # 2021 is all cloud in the sample area
LATEST_QUERY = ("select district_code, source_year, pixel_count, valid_fraction, min_ndvi, max_ndvi, mean_ndvi,"
                " stddev_ndvi, updated_at from analytics.ndvi_stats_latest order by 1")


@pytest.fixture(scope="module")
def area(sample_area, database_url, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "data"
    config = write_area_config(sample_area, out, YEARS)
    runner = load_code_location(config)
    return {"runner": runner, "out": out, "url": database_url, "sample": sample_area}


def _run(area, years, inputs=True):
    results = area["runner"].materialize_area(years, inputs=inputs)
    for result in results:
        assert result.success
        failed = [e for e in result.get_asset_check_evaluations() if not e.passed
                  and e.severity.value == "ERROR"]
        assert not failed, failed
    return results


def _latest(url):
    with psycopg.connect(url) as conn:
        return conn.execute(LATEST_QUERY).fetchall()


@pytest.fixture(scope="module")
def built(area):
    """2019 and 2024 materialised (the notebook's years)."""
    reset_database(area["url"], area["out"])
    results = _run(area, [2019, 2024])
    return {**area, "results": results}


def test_graph_materialises_with_dbt_checks_as_asset_checks(built):
    checks = [e for r in built["results"] for e in r.get_asset_check_evaluations()]
    dbt_checks = [e for e in checks if e.asset_key.to_user_string() in ("ndvi_stats_yearly", "ndvi_stats_latest")]
    assert len(dbt_checks) >= 10 and all(e.passed for e in dbt_checks)
    keys = {m.asset_key.to_user_string() for r in built["results"] for m in r.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    assert {"districts", "aoi_boundary", "ndvi_composite", "raw_ndvi_composites", "stg_ndvi_tiles",
            "ndvi_stats_yearly", "ndvi_stats_latest", "ndvi_exports"} <= keys


def _numpy_zonal(cog, districts):
    """Pixel-centre zonal statistics with numpy on the exported COG."""
    with rasterio.open(cog) as src:
        ndvi = src.read(1)
        zones = rasterize([(g, i + 1) for i, g in enumerate(districts.geometry)], out_shape=ndvi.shape,
                          transform=src.transform, fill=0, all_touched=False, dtype="int32")
        nodata = src.nodata
    out = {}
    for i, code in enumerate(districts["district_code"]):
        inside = zones == i + 1
        values = ndvi[inside & (ndvi != nodata)].astype(np.float64)
        out[code] = (int(inside.sum()), values)
    return out


def test_yearly_stats_equal_numpy_on_the_cog_and_the_truth(built):
    districts = gpd.read_file(built["sample"]["districts"])
    with psycopg.connect(built["url"]) as conn:
        rows = conn.execute("select district_code, year, pixel_count, district_pixel_count, min_ndvi, max_ndvi,"
                            " mean_ndvi, stddev_ndvi from analytics.ndvi_stats_yearly").fetchall()
    assert len(rows) == 2 * len(districts)
    for year in (2019, 2024):
        cog = built["out"] / str(year) / "composite" / f"ndvi_composite_{year}.tif"
        expected = _numpy_zonal(cog, districts)
        with rasterio.open(cog) as src:
            geobox = GeoBox((src.height, src.width), src.transform, src.crs)
        truth = read_on_geobox(built["sample"]["root"] / "truth" / f"ndvi_true_{year}.tif", geobox)
        zones = rasterize([(g, i + 1) for i, g in enumerate(districts.geometry)], out_shape=truth.shape,
                          transform=geobox.transform, fill=0, dtype="int32")
        for code, _year, count, district_pixels, mn, mx, mean, std in (r for r in rows if r[1] == year):
            total, values = expected[code]
            assert count == values.size and district_pixels == total
            assert mn == pytest.approx(values.min(), abs=1e-6)
            assert mx == pytest.approx(values.max(), abs=1e-6)
            assert mean == pytest.approx(values.mean(), abs=1e-6)
            assert std == pytest.approx(values.std(), abs=1e-6)
            i = list(districts["district_code"]).index(code)
            with rasterio.open(cog) as src:
                valid = (zones == i + 1) & (src.read(1) != src.nodata)
            assert mean == pytest.approx(float(truth[valid].mean()), abs=1e-3)


def test_exports_are_valid_wgs84_with_every_district_and_monotonic_breaks(built):
    districts = gpd.read_file(built["sample"]["districts"])
    latest = gpd.read_file(built["out"] / "latest" / "ndvi_stats_latest.geojson")
    yearly = gpd.read_file(built["out"] / "2019" / "stats" / "zonal_stats_2019.geojson")
    raw = json.loads((built["out"] / "latest" / "ndvi_stats_latest.geojson").read_text())
    assert raw["type"] == "FeatureCollection" and "crs" not in raw  # RFC 7946: EPSG:4326 implied
    for layer in (latest, yearly):
        assert layer.crs.to_epsg() == 4326
        assert sorted(layer["district_code"]) == sorted(districts["district_code"])
        assert layer.geometry.is_valid.all()
        points = layer.geometry.representative_point()
        lon, lat = points.x, points.y
        assert lon.between(-180, 180).all() and lat.between(-90, 90).all()
        assert all(round(v, 2) == v for v in layer["mean_ndvi"])
    assert set(latest["source_year"]) == {2024}
    with psycopg.connect(built["url"]) as conn:
        db_means = dict(conn.execute("select district_code, mean_ndvi from analytics.ndvi_stats_latest").fetchall())
    for code, mean in zip(latest["district_code"], latest["mean_ndvi"], strict=True):
        assert mean == round(db_means[code], 2)
    breaks = json.loads((built["out"] / "latest" / "breaks.json").read_text())
    bins = breaks["bins"]
    assert breaks["scheme"] == "FisherJenks" and breaks["k"] == len(bins) == len(breaks["colors"]) == 5
    assert all(a < b for a, b in zip(bins, bins[1:], strict=False))
    assert breaks["min"] == pytest.approx(min(db_means.values())) and bins[-1] == pytest.approx(max(db_means.values()))
    assert (built["out"] / "latest" / "ndvi_latest_map.png").read_bytes()[:4] == b"\x89PNG"


def test_dbt_build_on_its_own_passes(built):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    proc = subprocess.run([str(Path(sys.executable).with_name("ndvi-dbt")), "build"],
                          env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ERROR=0" in proc.stdout and "PASS=" in proc.stdout
    with psycopg.connect(built["url"]) as conn:
        years = conn.execute("select array_agg(distinct year order by year)"
                             " from analytics.ndvi_stats_yearly").fetchone()
    assert years[0] == [2019, 2024]


def test_latest_independent_of_order_rerun_is_noop_and_all_cloud_keeps_values(area):
    reset_database(area["url"], area["out"])
    _run(area, [2024, 2019])
    backwards = _latest(area["url"])
    _run(area, [2024], inputs=False)
    assert _latest(area["url"]) == backwards  # re-running a year changes nothing, not even updated_at

    reset_database(area["url"], area["out"])
    _run(area, [2019, 2024])
    forwards = _latest(area["url"])
    assert [r[:-1] for r in forwards] == [r[:-1] for r in backwards]
    assert {r[1] for r in forwards} == {2024}

    _run(area, [2021], inputs=False)  # all cloud: yearly rows with valid_fraction 0, latest untouched
    with psycopg.connect(area["url"]) as conn:
        cloudy = conn.execute("select pixel_count, valid_fraction, min_ndvi, mean_ndvi, district_pixel_count"
                              " from analytics.ndvi_stats_yearly where year = 2021").fetchall()
    assert cloudy and all(r[0] == 0 and r[1] == 0 and r[2] is None and r[3] is None and r[4] > 0 for r in cloudy)
    assert _latest(area["url"]) == forwards


def _yearly(url):
    with psycopg.connect(url) as conn:
        return conn.execute("select district_code, year, pixel_count, district_pixel_count, min_ndvi, max_ndvi,"
                            " mean_ndvi, stddev_ndvi from analytics.ndvi_stats_yearly order by 1, 2").fetchall()


def test_two_years_materialised_at_once_by_two_processes(area):
    reset_database(area["url"], area["out"])
    _run(area, [2019, 2024])
    sequential_yearly, sequential_latest = _yearly(area["url"]), _latest(area["url"])

    reset_database(area["url"], area["out"])
    _run(area, [], inputs=True)
    script = ("import sys; from dagster_project.runner import materialize_area;"
              "ok = all(r.success for r in materialize_area([int(sys.argv[1])], inputs=False));"
              "sys.exit(0 if ok else 1)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(year)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for year in (2024, 2019)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-4000:]
    assert _yearly(area["url"]) == sequential_yearly
    assert [r[:-1] for r in _latest(area["url"])] == [r[:-1] for r in sequential_latest]
