"""The whole graph, materialised in-process against the test PostGIS, with its numbers checked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import rasterio
import yaml
from odc.geo.geobox import GeoBox
from rasterio.features import rasterize

from dagster_project.cli import run
from dagster_project.definitions import build_definitions
from ingestion.cli.dbt import DBT_PROJECT_DIR
from ingestion.config import load_config
from tests.helpers import count_renders, numpy_zonal, read_on_geobox
from tests.pipeline_env import AREA, reset_database, run_pipeline, write_area_config

YEARS = [2019, 2021, 2024]  # 2021 is all cloud in the sample area
LATEST_QUERY = ("select district_code, source_year, pixel_count, valid_fraction, min_ndvi, max_ndvi, mean_ndvi,"
                " stddev_ndvi, updated_at from analytics.ndvi_stats_latest order by 1")


@pytest.fixture(scope="module")
def area(sample_area, database_url, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "data"
    config = write_area_config(sample_area, out, YEARS)
    return {"config": config, "out": out / AREA, "url": database_url, "sample": sample_area}


def _run(area, years, inputs=True):
    return run_pipeline(area["config"], years, inputs=inputs)


def _rounded(rows):
    """Rows with floats rounded to 12 decimals: a parallel aggregate may sum in another order between two
    builds, which changes the last bits of a mean or standard deviation and nothing else."""
    return [tuple(round(v, 12) if isinstance(v, float) else v for v in row) for row in rows]


def _latest(url):
    with psycopg.connect(url) as conn:
        return _rounded(conn.execute(LATEST_QUERY).fetchall())


def _state(area) -> tuple:
    """What the ``built`` tests read: rows and load times of every table, and every output file with its
    content hash. Any run or reset in between (this module's other tests, another module's) changes it."""
    with psycopg.connect(area["url"]) as conn:
        tables = [conn.execute(query).fetchall() for query in (
            "select area_code, year, count(*), max(loaded_at) from raw.ndvi_composites group by 1, 2 order by 1, 2",
            "select area_code, districts_version, count(*) from raw.districts group by 1, 2 order by 1, 2",
            "select year, count(*) from analytics.ndvi_stats_yearly group by 1 order by 1",
            "select count(*), max(updated_at) from analytics.ndvi_stats_latest",
        )] if conn.execute("select to_regclass('raw.ndvi_composites') is not null"
                           " and to_regclass('analytics.ndvi_stats_latest') is not null").fetchone()[0] else []
    files = sorted((str(p), hashlib.sha256(p.read_bytes()).hexdigest())
                   for p in area["out"].rglob("*") if p.is_file())
    return tuple(map(tuple, tables)), tuple(files)


@pytest.fixture(scope="module")
def _built_cache():
    return {}


@pytest.fixture
def built(area, _built_cache):
    """2019 and 2024 materialised (the notebook's years), whatever ran before: the build is reused only while
    the database and the output files are exactly as it left them, so the tests pass in any order."""
    if _built_cache.get("state") is None or _state(area) != _built_cache["state"]:
        reset_database(area["url"], area["out"])
        _built_cache["results"] = _run(area, [2019, 2024])
        _built_cache["state"] = _state(area)
    return {**area, "results": _built_cache["results"]}


def test_graph_materialises_with_dbt_checks_as_asset_checks(built):
    checks = [e for r in built["results"] for e in r.get_asset_check_evaluations()]
    dbt_checks = [e for e in checks if e.asset_key.to_user_string() in ("ndvi_stats_yearly", "ndvi_stats_latest")]
    assert len(dbt_checks) >= 10 and all(e.passed for e in dbt_checks)
    keys = {m.asset_key.to_user_string() for r in built["results"] for m in r.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    assert {"districts", "aoi_boundary", "ndvi_composite", "raw_ndvi_composites", "stg_districts", "stg_ndvi_tiles",
            "ndvi_stats_yearly", "ndvi_stats_newest_valid_year", "ndvi_stats_latest", "ndvi_change",
            "yearly_exports", "latest_exports"} <= keys


def test_scene_table_and_check_show_every_offset_the_pixels_overrode(built):
    """2024 of the sample has three items whose offset flag lies; 2019 none. The scenes table says, per item, what
    the metadata claims, what the pixels say and the offset applied; the check warns with the count."""
    for result in built["results"]:
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.to_user_string() != "ndvi_composite":
                continue
            year = materialization.partition.split("|")[-1]
            liars = set(built["sample"]["years"][year]["misflagged"])
            in_dn = set(built["sample"]["years"][year]["offset_in_dn"])
            rows = {r.data["item"]: r.data for r in materialization.metadata["scenes"].records if r.data["kept"]}
            assert materialization.metadata["offsets_contradicted"].value == len(liars)
            for item, row in rows.items():
                assert row["offset_applied"] == pytest.approx(-0.1 if item in in_dn else 0.0)
                verdict = "offset in DN" if item in in_dn else "offset removed"
                assert row["offset_pixels"].endswith(verdict), row
                claimed = "offset -0.1" if (item in in_dn) != (item in liars) else "offset 0"
                assert row["offset_metadata"].startswith(f"{claimed} ("), row
                assert ("overrides metadata" in row["offset_rule"]) == (item in liars)
            check = next(c for c in result.get_asset_check_evaluations()
                         if c.check_name == "offset_metadata_agrees")
            assert check.passed == (not liars)
            assert check.metadata["summary"].value == (f"{len(liars)} of {len(rows)} items' offset metadata "
                                                       "contradicted by their pixels")


def test_yearly_stats_equal_numpy_on_the_cog_and_the_truth(built):
    districts = gpd.read_file(built["sample"]["districts"])
    with psycopg.connect(built["url"]) as conn:
        rows = conn.execute("select district_code, year, pixel_count, district_pixel_count, min_ndvi, max_ndvi,"
                            " mean_ndvi, stddev_ndvi from analytics.ndvi_stats_yearly").fetchall()
    assert len(rows) == 2 * len(districts)
    for year in (2019, 2024):
        cog = built["out"] / str(year) / "composite" / f"ndvi_composite_{year}.tif"
        expected = numpy_zonal(cog, districts)
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


def _sessions_of(url: str, application: str) -> list[tuple[str, bool]]:
    """(state, holds a snapshot) of every server session whose application_name is ``application``."""
    with psycopg.connect(url, autocommit=True, application_name="session-watcher") as watcher:
        return watcher.execute("select state, backend_xmin is not null from pg_stat_activity"
                               " where application_name = %s", (application,)).fetchall()


def test_latest_export_keeps_no_transaction_open_while_python_computes(built, monkeypatch):
    """Classifying and drawing 14,000 districts takes minutes of Python: the database session that read the
    statistics must not sit "idle in transaction" (holding its snapshot) meanwhile. Looked up in
    pg_stat_activity from a second connection at the moment the breaks are computed; the classification
    itself runs for real, and its breaks must equal mapclassify's own on the database values."""
    import mapclassify

    from ingestion import pipeline

    cfg = load_config(built["config"]).area(AREA)
    seen: dict[str, list] = {}
    classify = pipeline.classify

    def classify_watched(values, *args, **kwargs):
        seen["sessions"] = _sessions_of(built["url"], "latest-export-test")
        seen.setdefault("values", []).append(values)  # the mean, and the other indicators side by side
        return classify(values, *args, **kwargs)

    monkeypatch.setattr(pipeline, "classify", classify_watched)
    # the plain function with the caller's connection: that session stays open, but idle and without snapshot
    with psycopg.connect(built["url"], application_name="latest-export-test") as conn:
        export = pipeline.export_latest(conn, cfg)
    assert seen["sessions"] == [("idle", False)]

    # the Dagster asset: its export thread keeps its connection for the batch's next area, idle and without
    # snapshot while it computes, and closes it when the step ends (libpq names sessions by PGAPPNAME)
    monkeypatch.setenv("PGAPPNAME", "latest-export-test")
    seen.clear()
    job = build_definitions(load_config(built["config"])).resolve_job_def("latest_ndvi")
    assert job.execute_in_process(partition_key=AREA, instance=dg.DagsterInstance.ephemeral()).success
    assert seen["sessions"] == [("idle", False)]
    assert _sessions_of(built["url"], "latest-export-test") == []

    with psycopg.connect(built["url"]) as conn:
        means = [r[0] for r in conn.execute("select mean_ndvi from analytics.ndvi_stats_latest"
                                            " where mean_ndvi is not null").fetchall()]
    classified = [sorted(values[~pd.isna(values)]) for values in seen["values"]]
    assert any(values == pytest.approx(sorted(means)) for values in classified)
    assert export.breaks["bins"] == pytest.approx(mapclassify.FisherJenks(means, k=5).bins.tolist())


def test_latest_export_renders_no_yearly_file_again_that_the_yearly_export_wrote(built, monkeypatch):
    """The yearly export renders a year's GeoJSON from its own read of the database; the latest export's
    refresh builds the same year's frame from its one snapshot. Their inputs digests must match, or every
    latest export renders every year again (about 1 s a year at 14,000 districts). to_file is counted."""
    from ingestion import pipeline

    cfg = load_config(built["config"]).area(AREA)
    renders = count_renders(monkeypatch)
    with psycopg.connect(built["url"], autocommit=True) as conn:
        for year in (2019, 2024):
            pipeline.export_year(conn, cfg, year)  # the yearly export's digest (and nothing rendered: unchanged)
        inputs = pipeline.read_latest_inputs(conn, cfg.code)
    assert inputs.years == [2019, 2024]
    assert pipeline.refresh_yearly_exports(inputs, cfg) == []
    assert renders == []


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


def test_dbt_unit_tests_of_the_latest_rules_pass(built):
    """The yml unit tests (order independence, all-cloud years, removed districts, change skipping cloudy
    years; change against the baseline and the trend rules) run on hand-made rows; they need the models' tables
    to exist, which `built` made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    proc = subprocess.run([str(Path(sys.executable).with_name("ndvi-dbt")), "test", "--select", "test_type:unit"],
                          env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    assert proc.returncode == 0, proc.stdout[-3000:]
    passed = [line for line in proc.stdout.splitlines() if " PASS " in line and "::" in line]
    # the four rules of models/marts/unit_tests.yml and the three of unit_tests_change_trend.yml
    assert len(passed) == 7, proc.stdout[-3000:]


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
        return _rounded(conn.execute("select district_code, year, pixel_count, district_pixel_count, min_ndvi,"
                                     " max_ndvi, mean_ndvi, stddev_ndvi from analytics.ndvi_stats_yearly"
                                     " order by 1, 2").fetchall())


def test_two_years_materialised_at_once_by_two_processes(area):
    reset_database(area["url"], area["out"])
    _run(area, [2019, 2024])
    sequential_yearly, sequential_latest = _yearly(area["url"]), _latest(area["url"])

    reset_database(area["url"], area["out"])
    _run(area, [], inputs=True)
    script = ("import sys; from pathlib import Path; from tests.pipeline_env import run_pipeline;"
              "run_pipeline(Path(sys.argv[2]), [int(sys.argv[1])], inputs=False)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(year), str(area["config"])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for year in (2024, 2019)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-4000:]
    assert _yearly(area["url"]) == sequential_yearly
    assert [r[:-1] for r in _latest(area["url"])] == [r[:-1] for r in sequential_latest]


def _codes_in_tables_and_files(url, out):
    with psycopg.connect(url) as conn:
        codes = "select array_agg(distinct district_code order by district_code) from "
        tables = {
            "raw.districts": conn.execute(codes + "raw.districts"),
            "yearly 2019": conn.execute(codes + "analytics.ndvi_stats_yearly where year = 2019"),
            "yearly 2024": conn.execute(codes + "analytics.ndvi_stats_yearly where year = 2024"),
            "latest": conn.execute(codes + "analytics.ndvi_stats_latest"),
            "change": conn.execute(codes + "analytics.ndvi_change"),
        }
        found = {name: cur.fetchone()[0] for name, cur in tables.items()}
    for name in ("2019/stats/zonal_stats_2019.geojson", "2024/stats/zonal_stats_2024.geojson",
                 "latest/ndvi_stats_latest.geojson"):
        found[name] = sorted(gpd.read_file(out / name)["district_code"])
    return found


def test_redistricting_recomputes_every_year_and_file_for_the_current_districts(area, tmp_path):
    """Remove, rename and add districts, re-run ONE year: every table and file holds exactly the new set."""
    reset_database(area["url"], area["out"])
    _run(area, [2019, 2024])
    old = gpd.read_file(area["sample"]["districts"])
    removed, renamed = old["district_code"].iloc[0], old["district_code"].iloc[1]
    new = old[old["district_code"] != removed].copy()
    new.loc[new["district_code"] == renamed, "district_code"] = f"{renamed}R"
    added = old[old["district_code"] == removed].copy()
    added["district_code"], added["district_name"] = "NEW01", "Nieuwbouw"
    added["geometry"] = added.geometry.buffer(-60)  # a smaller district where the removed one was
    new = gpd.GeoDataFrame(pd.concat([new, added], ignore_index=True), crs=old.crs)
    new_path = tmp_path / "districts_2025.gpkg"
    new.to_file(new_path, driver="GPKG")
    expected = sorted(new["district_code"])

    config = yaml.safe_load(area["config"].read_text())
    config["districts"]["path"] = str(new_path)
    config["years"] = [2019, 2022, 2024]  # 2022 has no scenes in the sample catalog
    redistricted = tmp_path / "redistricted.yaml"
    redistricted.write_text(yaml.safe_dump(config))
    # a run whose imagery fails publishes nothing: districts and statistics stay as they were
    before = _codes_in_tables_and_files(area["url"], area["out"])
    results = run(load_config(redistricted), years=[2022], instance=dg.DagsterInstance.ephemeral(),
                  echo=lambda line: None)
    assert results[0].success and not results[1].success
    assert _codes_in_tables_and_files(area["url"], area["out"]) == before
    assert before["latest"] == sorted(old["district_code"])

    run_pipeline(redistricted, [2024])  # only 2024: dbt recomputes 2019 for the new districts too
    found = _codes_in_tables_and_files(area["url"], area["out"])
    assert found == {name: expected for name in found}, found
    with psycopg.connect(area["url"]) as conn:
        rows = conn.execute("select district_code, year, pixel_count, district_pixel_count, mean_ndvi"
                            " from analytics.ndvi_stats_yearly").fetchall()
        versions = conn.execute("select count(distinct districts_version) from analytics.ndvi_stats_yearly"
                                " where districts_version = (select min(districts_version) from raw.districts)"
                                ).fetchone()[0]
    assert versions == 1
    for year in (2019, 2024):
        expected_stats = numpy_zonal(area["out"] / str(year) / "composite" / f"ndvi_composite_{year}.tif", new)
        for code, _year, count, district_pixels, mean in (r for r in rows if r[1] == year):
            total, values = expected_stats[code]
            assert (count, district_pixels) == (values.size, total)
            assert mean == pytest.approx(values.mean(), abs=1e-6)
    yearly_2019 = gpd.read_file(area["out"] / "2019" / "stats" / "zonal_stats_2019.geojson")
    stored = {r[0]: r[4] for r in rows if r[1] == 2019}
    for code, mean in zip(yearly_2019["district_code"], yearly_2019["mean_ndvi"], strict=True):
        assert mean == round(stored[code], 2)


def test_dbt_build_on_an_empty_database_says_what_to_materialise_first(area):
    reset_database(area["url"], area["out"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    proc = subprocess.run([str(Path(sys.executable).with_name("ndvi-dbt")), "build"],
                          env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    assert proc.returncode != 0
    assert "Nothing to build yet: missing raw.districts (materialise the `districts` asset" in proc.stdout
    assert "raw.ndvi_composites (materialise `ndvi_composite` and `raw_ndvi_composites`" in proc.stdout
    assert "does not exist" not in proc.stdout  # stopped before any model ran
