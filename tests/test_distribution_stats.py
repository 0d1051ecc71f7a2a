"""Percentiles, green shares, change against a baseline year and Theil-Sen trends: the real dbt models on a
real PostGIS, each figure checked against an independent numpy computation on the same pixels.

Three years of the benchmark's tiny case (7 districts, one all cloud every year, one all cloud in one year only,
one off the raster) are loaded with the pipeline's loaders into the scratch database ``ndvi_bench``; then
``dbt build`` (models and their data tests) runs, and every district-year and district is compared with numpy.
Then the area's thresholds and baseline change (the pipeline's settings tables, no dbt var) and a plain re-run
recomputes what they affect.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from rasterio.features import rasterize

from ingestion.config import GreenThreshold
from ingestion.db.connection import embedded_dsn
from ingestion.imagery.cog import write_composite_cog
from ingestion.imagery.composite import Composite
from ingestion.load.postgis import load_composite
from ingestion.load.settings import write_statistics_settings
from tests.conftest import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("zonal_stats", PROJECT_ROOT / "benchmarks" / "zonal_stats.py")
zonal_stats = importlib.util.module_from_spec(spec)
sys.modules["zonal_stats"] = zonal_stats  # dataclasses look their module up there
spec.loader.exec_module(zonal_stats)

pytestmark = pytest.mark.slow

YEARS = (2019, 2021, 2024)
THRESHOLDS = (GreenThreshold(name="vegetated", ndvi=0.2), GreenThreshold(name="dense_vegetation", ndvi=0.5))


@pytest.fixture
def bench_dsn(database_url: str) -> str:
    """The embedded cluster's ``ndvi_bench`` database (replaced raw.* and analytics.*), as the benchmark test."""
    if url := os.environ.get("NDVI_BENCH_DATABASE_URL"):
        return url
    if database_url != embedded_dsn("ndvi_test"):
        pytest.skip("set NDVI_BENCH_DATABASE_URL to a scratch PostGIS database to run the statistics check")
    return embedded_dsn("ndvi_bench")


def _year_pixels(case, year: int) -> tuple[np.ndarray, np.ndarray]:
    """The case's NDVI shifted per year (a trend), with exact float32 threshold values planted, and district
    index 3 all cloud in 2021 (a year without valid pixels inside a series)."""
    rng = np.random.default_rng(year)
    ndvi = (case.ndvi + np.float32(0.03 * (year - 2019)) + rng.normal(0, 0.02, case.ndvi.shape)).astype(np.float32)
    ndvi = np.clip(ndvi, -1, 1)
    plant = rng.random(ndvi.shape) < 0.02  # values exactly at the thresholds: ">=" must count them
    ndvi[plant] = rng.choice(np.array([0.5, np.float32(0.2)], dtype=np.float32), plant.sum())
    count = case.count.copy()
    ndvi[np.isnan(case.ndvi)] = np.nan
    if year == 2021:
        zone = rasterize([(case.districts.geometry.iloc[3], 1)], out_shape=ndvi.shape, transform=case.transform,
                         dtype="uint8")
        ndvi[zone == 1], count[zone == 1] = np.nan, 0
    return ndvi, count


def _load_years(case, dsn: str, tmp: Path) -> dict[int, np.ndarray]:
    zonal_stats.load_case(case, dsn, tmp)  # districts, and the tiny composite as 2024 (replaced below)
    pixels = {}
    with psycopg.connect(dsn) as conn:
        conn.execute("delete from raw.ndvi_composites")
        conn.commit()
        for year in YEARS:
            ndvi, count = _year_pixels(case, year)
            height, width = ndvi.shape
            composite = Composite(ndvi=ndvi, count=count, days=[], offsets={},
                                  geobox=zonal_stats.GeoBox((height, width), case.transform, case.crs))
            load_composite(conn, zonal_stats.AREA, year, write_composite_cog(composite, tmp / f"{year}.tif"))
            pixels[year] = ndvi
    return pixels


def _district_values(case, ndvi: np.ndarray) -> dict[str, np.ndarray]:
    """Valid NDVI values (float64) of each district by the pixel-centre rule."""
    zones = rasterize([(g, i + 1) for i, g in enumerate(case.districts.geometry)], out_shape=ndvi.shape,
                      transform=case.transform, all_touched=False, fill=0, dtype="int32")
    return {code: ndvi[(zones == i) & ~np.isnan(ndvi)].astype(np.float64)
            for i, code in enumerate(case.districts["district_code"], start=1)}


def _numpy_indicators(case, pixels: dict[int, np.ndarray], thresholds) -> dict[tuple[str, str, int], float | None]:
    """(district, indicator, year) -> value, computed with numpy: mean, median, green shares."""
    out = {}
    for year, ndvi in pixels.items():
        for code, values in _district_values(case, ndvi).items():
            has = values.size > 0
            out[code, "mean_ndvi", year] = float(values.mean()) if has else None
            out[code, "median_ndvi", year] = float(np.percentile(values, 50)) if has else None
            for t in thresholds:
                out[code, f"green_share_{t.name}", year] = float((values >= t.ndvi).mean()) if has else None
    return out


def _theil_sen(points: list[tuple[int, float]]) -> float | None:
    if len(points) < 3:
        return None
    return float(np.median([(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.combinations(points, 2)]))


def _query(conn: psycopg.Connection, sql: str) -> list[dict]:
    cur = conn.execute(sql)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _check(case, pixels, conn, thresholds, baseline: int) -> None:
    # percentiles and green counts per district-year, against np.percentile and >= on the same pixels
    rows = _query(conn, "select * from analytics.ndvi_stats_yearly_distribution")
    assert len(rows) == len(case.districts) * len(YEARS)
    for row in rows:
        values = _district_values(case, pixels[row["year"]])[row["district_code"]]
        assert row["pixel_count"] == values.size
        assert list(row["green_threshold_names"]) == [t.name for t in thresholds]
        assert list(row["green_pixel_counts"]) == [int((values >= t.ndvi).sum()) for t in thresholds]
        for column, q in zonal_stats.PERCENTILES.items():
            want = float(np.percentile(values, q)) if values.size else None
            got = row[f"{column}_ndvi"]
            assert (got is None) == (want is None), (row["district_code"], row["year"], column)
            if want is not None:
                assert abs(got - want) <= 1e-9, (row["district_code"], row["year"], column, got, want)

    want = _numpy_indicators(case, pixels, thresholds)
    shares = _query(conn, "select * from analytics.ndvi_green_share_yearly")
    assert len(shares) == len(case.districts) * len(YEARS) * len(thresholds)
    for row in shares:
        expected = want[row["district_code"], f"green_share_{row['threshold_name']}", row["year"]]
        assert row["green_share"] == pytest.approx(expected, abs=1e-12) if expected is not None else \
            row["green_share"] is None

    # change against the baseline, with the NULL reasons
    for row in _query(conn, "select * from analytics.ndvi_change_baseline"):
        key = (row["district_code"], row["indicator"])
        value, base = want[(*key, row["year"])], want[(*key, baseline)]
        assert row["baseline_year"] == baseline
        if base is None:
            assert row["change"] is None and row["change_null_reason"] == "no valid pixels in the baseline year"
        elif value is None:
            assert row["change"] is None and row["change_null_reason"] == "no valid pixels in this year"
        else:
            assert row["change_null_reason"] is None
            assert row["change"] == pytest.approx(value - base, abs=1e-9), (key, row["year"])

    # Theil-Sen trend over the valid years
    trends = _query(conn, "select * from analytics.ndvi_trend")
    indicators = {"mean_ndvi", "median_ndvi", *(f"green_share_{t.name}" for t in thresholds)}
    assert {r["indicator"] for r in trends} == indicators
    assert len(trends) == len(case.districts) * len(indicators)
    for row in trends:
        points = [(y, want[row["district_code"], row["indicator"], y]) for y in YEARS]
        points = [(y, v) for y, v in points if v is not None]
        assert row["n_years"] == len(points)
        assert row["first_year"] == (points[0][0] if points else None)
        assert row["last_year"] == (points[-1][0] if points else None)
        slope = _theil_sen(points)
        if slope is None:
            assert row["slope_per_year"] is None
            assert row["trend_null_reason"] == "fewer than 3 years with valid pixels"
        else:
            assert row["slope_per_year"] == pytest.approx(slope, abs=1e-9), (row["district_code"], row["indicator"])


def test_distribution_change_and_trend_equal_numpy(bench_dsn, tmp_path):
    case = zonal_stats.tiny_case()
    pixels = _load_years(case, bench_dsn, tmp_path)
    with psycopg.connect(bench_dsn) as conn:
        write_statistics_settings(conn, zonal_stats.AREA, THRESHOLDS, 2019)
    zonal_stats._dbt(["build", "--exclude", "test_type:unit"], bench_dsn, tmp_path / "target")
    with psycopg.connect(bench_dsn) as conn:
        _check(case, pixels, conn, THRESHOLDS, baseline=2019)
        # the series hold what the test means them to: a 3-year trend, a 2-year one, none
        trend = {r["district_code"]: r for r in _query(conn, "select * from analytics.ndvi_trend"
                                                             " where indicator = 'mean_ndvi'")}
        codes = list(case.districts["district_code"])
        assert trend[codes[0]]["n_years"] == 3 and trend[codes[0]]["slope_per_year"] > 0
        assert trend[codes[3]]["n_years"] == 2 and trend[codes[3]]["slope_per_year"] is None
        assert trend[codes[1]]["n_years"] == 0  # all cloud every year

        # new thresholds (a third class, one moved) and baseline 2024: written as the pipeline does, then a
        # plain re-run recomputes the distribution of every year (no dbt var, no re-parse needed)
        changed = (GreenThreshold(name="sparse", ndvi=0.1), GreenThreshold(name="vegetated", ndvi=0.25),
                   GreenThreshold(name="dense_vegetation", ndvi=0.5))
        assert write_statistics_settings(conn, zonal_stats.AREA, changed, 2024)
        assert not write_statistics_settings(conn, zonal_stats.AREA, changed, 2024)  # unchanged: no rewrite
    zonal_stats._dbt(["build", "--exclude", "test_type:unit"], bench_dsn, tmp_path / "target")
    with psycopg.connect(bench_dsn) as conn:
        _check(case, pixels, conn, changed, baseline=2024)
