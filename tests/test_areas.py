"""Many areas in one deployment, the asset graph by cadence, and the automation of the latest layer."""

from __future__ import annotations

import dagster as dg
import geopandas as gpd
import psycopg
import pytest
import yaml

from dagster_project.definitions import build_definitions, defs
from dagster_project.partitions import area_year_key
from ingestion.config import load_config
from ingestion.sample.generator import generate
from tests.helpers import numpy_zonal
from tests.pipeline_env import reset_database, run_pipeline

YEARLY = ("ndvi_composite", "raw_ndvi_composites", "stg_ndvi_tiles", "district_tile_masks", "ndvi_stats_yearly",
          "yearly_exports")
PER_AREA = ("districts", "aoi_boundary", "stg_districts", "ndvi_stats_newest_valid_year", "ndvi_stats_latest",
            "ndvi_change", "latest_exports")


def _two_area_config(tmp_path, sample_area, enschede_catalog, enschede_districts) -> dg.Definitions:
    raw = {
        "years": [2024],
        "imagery": {"source": "local-stac"},
        "output_dir": str(tmp_path / "out"),
        "areas": [
            {"area": "demo", "districts": {"path": sample_area["districts"]},
             "imagery": {"options": {"catalog_path": sample_area["catalog"]}}},
            {"area": "GM0153", "districts": {"path": str(enschede_districts)},
             "imagery": {"options": {"catalog_path": enschede_catalog}}},
        ],
    }
    path = tmp_path / "two-areas.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def enschede(shared_data, tmp_path_factory):
    """A catalog painted on the real Enschede districts by the sample generator."""
    out = tmp_path_factory.mktemp("enschede")
    districts = shared_data / "enschede" / "enschede_districts.gpkg"
    manifest = generate(out, [2024], seed=11, districts_path=districts)
    return {"catalog": manifest["catalog"], "districts": districts}


def test_definitions_load_from_the_shipped_config_with_the_graph_by_cadence():
    loaded = defs()  # what `dagster dev` loads
    graph = loaded.resolve_asset_graph()
    for name in YEARLY:
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition), name
        assert {d.name for d in partitions.partitions_defs} == {"area", "year"}
    for name in PER_AREA:
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.StaticPartitionsDefinition), name
        assert partitions.get_partition_keys() == ["demo"]
    for job in ("area_inputs", "yearly_ndvi", "latest_ndvi"):
        assert loaded.resolve_job_def(job).description
    assert graph.get(dg.AssetKey("ndvi_stats_latest")).automation_condition is not None
    assert graph.get(dg.AssetKey("ndvi_stats_yearly")).automation_condition is None


def test_latest_of_an_area_is_requested_after_any_of_its_years_only(tmp_path, sample_area, enschede):
    config = load_config(_two_area_config(tmp_path, sample_area, enschede["catalog"], enschede["districts"]))
    definitions = build_definitions(config)
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    assert first.total_requested == 0  # nothing has run: nothing to refresh
    for name in ("districts", "aoi_boundary", "stg_districts", "stg_green_share_thresholds", "stg_change_baselines"):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=name, partition="GM0153"))
    inputs = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=first.cursor)
    assert inputs.total_requested == 0  # the area's inputs alone, no year yet: no latest run
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="ndvi_stats_yearly", partition=area_year_key("GM0153", 2024)))
    second = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=inputs.cursor)
    for name in ("ndvi_stats_newest_valid_year", "ndvi_stats_latest", "ndvi_change", "ndvi_indicators_yearly",
                 "ndvi_change_baseline", "ndvi_trend", "latest_exports"):
        assert second.get_requested_partitions(dg.AssetKey(name)) == {"GM0153"}, name
    assert not second.get_requested_partitions(dg.AssetKey("ndvi_stats_yearly"))
    # the same tick without two of the export's parents (as when their own parents were still in progress in
    # another year's run): the export waits for them, not fail on the missing view; its other parents go on
    partial = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=inputs.cursor,
        asset_selection=dg.AssetSelection.all() - dg.AssetSelection.assets("ndvi_change_baseline", "ndvi_trend"))
    assert partial.get_requested_partitions(dg.AssetKey("ndvi_change")) == {"GM0153"}
    assert not partial.get_requested_partitions(dg.AssetKey("latest_exports"))


def _area_rows(url, area):
    with psycopg.connect(url) as conn:
        return {table: conn.execute(f"select * from analytics.{table} where area_code = %s order by 2, 3",  # noqa: S608
                                    (area,)).fetchall()
                for table in ("ndvi_stats_yearly", "ndvi_stats_latest")}


@pytest.mark.slow
def test_two_areas_in_one_database_each_equal_numpy_and_independent(tmp_path, sample_area, enschede,
                                                                     database_url):
    out = tmp_path / "out"
    reset_database(database_url, out)
    config_path = _two_area_config(tmp_path, sample_area, enschede["catalog"], enschede["districts"])
    config = load_config(config_path)
    run_pipeline(config, [2024])

    with psycopg.connect(database_url) as conn:
        srids = dict(conn.execute("select area_code, min(st_srid(geometry)) from raw.districts group by 1"))
        rows = conn.execute("select area_code, district_code, pixel_count, district_pixel_count, mean_ndvi,"
                            " stddev_ndvi from analytics.ndvi_stats_yearly where year = 2024").fetchall()
    assert srids == {"demo": 32632, "GM0153": 28992}  # each area on its own grid and CRS
    for area, districts_file in (("demo", sample_area["districts"]), ("GM0153", enschede["districts"])):
        districts = gpd.read_file(districts_file)
        expected = numpy_zonal(out / area / "2024" / "composite" / "ndvi_composite_2024.tif", districts)
        mine = {r[1]: r[2:] for r in rows if r[0] == area}
        assert set(mine) == set(districts["district_code"])
        for code, (count, district_pixels, mean, std) in mine.items():
            total, values = expected[code]
            assert (count, district_pixels) == (values.size, total)
            assert mean == pytest.approx(values.mean(), abs=1e-6)
            assert std == pytest.approx(values.std(), abs=1e-6)
        latest = gpd.read_file(out / area / "latest" / "ndvi_stats_latest.geojson")
        assert sorted(latest["district_code"]) == sorted(districts["district_code"])

    # re-running one area changes no row or file of the other
    enschede_rows, enschede_files = _area_rows(database_url, "GM0153"), _files(out / "GM0153")
    run_pipeline(config, [2024], areas=["demo"])
    assert _area_rows(database_url, "GM0153") == enschede_rows
    assert _files(out / "GM0153") == enschede_files


def _files(folder):
    """Every file below ``folder`` with its bytes and modification time."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_districts_data_version_changes_only_with_the_districts(tmp_path, sample_area, database_url):
    """What makes Dagster show an area's yearly partitions as stale after a re-districting (and not after a
    re-run with the same file): the `districts` data version is the hash of the district set."""
    definitions = build_definitions(load_config(_two_area_config(tmp_path, sample_area, sample_area["catalog"],
                                                                 sample_area["districts"])))
    job = definitions.resolve_job_def("area_inputs")
    instance = dg.DagsterInstance.ephemeral()

    def districts_version() -> str:
        assert job.execute_in_process(partition_key="demo", instance=instance).success
        event = instance.get_latest_materialization_event(dg.AssetKey("districts"))
        return event.asset_materialization.tags["dagster/data_version"]

    first, again = districts_version(), districts_version()
    assert first == again  # same file, same version: nothing downstream becomes stale
    changed = gpd.read_file(sample_area["districts"])
    changed.loc[0, "district_name"] = "Renamed"
    changed.to_file(sample_area["districts"] + ".changed.gpkg", driver="GPKG")
    raw = yaml.safe_load((tmp_path / "two-areas.yaml").read_text())
    raw["areas"][0]["districts"]["path"] = sample_area["districts"] + ".changed.gpkg"
    (tmp_path / "two-areas.yaml").write_text(yaml.safe_dump(raw))
    job = build_definitions(load_config(tmp_path / "two-areas.yaml")).resolve_job_def("area_inputs")
    assert districts_version() != first
