"""Many areas at the cost of one: ``ndvi-pipeline run`` materialises a province's area-years as one batch per job
(one dbt build for all of them), records each partition with its own figures, and an area-year that fails does
not stop the others; the latest layers of all areas refresh in one run."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import yaml

from dagster_project.cli import run
from dagster_project.partitions import area_year_boxes, area_year_key
from ingestion.config import PipelineConfig, load_config
from ingestion.sample.generator import generate, synthetic_districts
from tests.helpers import numpy_zonal
from tests.pipeline_env import reset_database
from tests.update_env import counting_opens

AREAS = ("GM0001", "GM0002", "GM0003")
YEARS = (2021, 2022)
MISSING = 2023  # a configured year without any scene in the catalog


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> dict:
    """Three municipalities of 1.5 x 1.5 km side by side, 4 districts each, one districts file and one catalog."""
    folder = tmp_path_factory.mktemp("province")
    parts = []
    for index, code in enumerate(AREAS):
        part = synthetic_districts(30 + index, n=4, size_m=(1500.0, 1500.0))
        part["geometry"] = part.geometry.translate(index * 1500.0, 0.0)
        part["gm_code"] = code
        part["district_code"] = [f"WK{code[2:]}{i:02d}" for i in range(len(part))]
        parts.append(part)
    frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
    frame.to_file(folder / "districts.gpkg", driver="GPKG")
    manifest = generate(folder, list(YEARS), seed=3, districts_path=folder / "districts.gpkg")
    return {"districts": folder / "districts.gpkg", "catalog": manifest["catalog"], "frame": frame,
            "misflagged": {year: manifest["years"][str(year)]["misflagged"] for year in YEARS}}


def _config(tmp_path, province: dict, out) -> PipelineConfig:
    """One area per municipality (``districts.area_column``), years with scenes and one without."""
    path = tmp_path / "province.yaml"
    path.write_text(yaml.safe_dump({
        "years": [*YEARS, MISSING], "output_dir": str(out),
        "districts": {"path": str(province["districts"]), "area_column": "gm_code", "areas": list(AREAS)},
        "imagery": {"source": "local-stac", "options": {"catalog_path": province["catalog"]}}}))
    return load_config(path)


def _materialisations(instance: dg.DagsterInstance, asset: str) -> dict[str, dict]:
    """Partition -> metadata of the newest materialisation of ``asset``."""
    found = {}
    for record in instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records:
        materialization = record.asset_materialization
        found.setdefault(str(materialization.partition), {k: v.value for k, v in materialization.metadata.items()})
    return found


def test_area_year_boxes_cover_exactly_the_wanted_area_years(tmp_path, province):
    config = _config(tmp_path, province, tmp_path / "out")
    every = {code: [*YEARS, MISSING] for code in AREAS}
    assert len(area_year_boxes(config, every)) == 1  # the whole province in one run
    ragged = {"GM0001": [2021, 2022], "GM0002": [2021], "GM0003": [2021, 2022]}
    boxes = area_year_boxes(config, ragged)
    covered = sorted(key for box in boxes for key in box.keys)
    assert covered == sorted(str(area_year_key(a, y)) for a, years in ragged.items() for y in years)
    assert len(covered) == len(set(covered))


@pytest.mark.slow
def test_a_province_runs_as_one_batch_per_job_with_honest_records(tmp_path, province, database_url, caplog):
    out = tmp_path / "out"
    reset_database(database_url, out)
    config = _config(tmp_path, province, out)
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    with counting_opens("catalog.json") as opened, caplog.at_level(logging.WARNING, "ingestion"):
        results = run(config, instance=instance, echo=lines.append)

    # one run per job, plus one follow-up of the yearly batch after its composite failed for the missing year
    jobs = [r.dagster_run.job_name for r in results]
    assert jobs == ["area_inputs", "yearly_ndvi", "yearly_ndvi", "latest_ndvi"], "\n".join(lines)
    assert [r.success for r in results] == [True, False, True, True]
    failed = [x for x in lines if "failed in ndvi_composite" in x]
    assert len(failed) == 1 and "3 of 9 partitions failed" in failed[0], "\n".join(lines)
    text = "\n".join(lines)
    for code in AREAS:
        assert f"{code} {MISSING}: no usable Sentinel-2 scenes for {MISSING}" in text
    # the composite step searches its batch's 9 area-years at once: local-stac walks its catalog (opens it
    # twice: parsed, then digested) once, not once per area-year (a digest per search: 10 opens)
    assert len(opened) == 2, opened
    # each scene whose offset flag lies warns once for the batch, not once per area that read it
    liars = sorted(item for items in province["misflagged"].values() for item in items)
    warned = sorted(r.getMessage() for r in caplog.records if r.name.startswith("ingestion.")
                    and "offset metadata contradicted" in r.getMessage())
    assert len(liars) >= 2 and [w.split(":")[0] for w in warned] == [f"scene {item}" for item in liars], warned
    # one dbt build for the whole batch
    assert sum(1 for x in lines if x.startswith("ok") and " dbt_yearly_models " in x) == 1, text

    # every area-year has every yearly record, each with its own partition's row count; the missing year none
    with psycopg.connect(database_url) as conn:
        counts = dict(((a, y), n) for a, y, n in conn.execute(
            "select area_code, year, count(*) from analytics.ndvi_stats_yearly group by 1, 2"))
        tiles = dict(((a, y), n) for a, y, n in conn.execute(
            "select area_code, year, count(*) from raw.ndvi_composites group by 1, 2"))
    stats = _materialisations(instance, "ndvi_stats_yearly")
    loads = _materialisations(instance, "raw_ndvi_composites")
    composites = _materialisations(instance, "ndvi_composite")
    for code in AREAS:
        for year in YEARS:
            key = str(area_year_key(code, year))
            assert stats[key]["dagster/row_count"] == counts[(code, year)] == 4
            assert loads[key]["dagster/row_count"] == tiles[(code, year)]
            assert composites[key]["scenes_used"] > 0
        assert str(area_year_key(code, MISSING)) not in composites
    # the batch's warnings count what the area-years' scenes tables record: checked, and overridden by the pixels
    read, overridden = Counter(), Counter()
    for metadata in composites.values():
        for row in metadata["scenes"].records:
            read[row.data["item"]] += bool(row.data["offset_pixels"])
            overridden[row.data["item"]] += "overrides metadata" in row.data["offset_rule"]
    for item, warning in zip(liars, warned, strict=True):
        assert f" in {overridden[item]} of the {read[item]} area-years that read it " in warning, warning
        assert overridden[item] >= 2  # read in several areas, warned once

    # the numbers equal numpy on each area's composite, and every area's latest layer was written in one run
    frame = province["frame"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select area_code, year, district_code, pixel_count, district_pixel_count, mean_ndvi"
                            " from analytics.ndvi_stats_yearly").fetchall()
    for code in AREAS:
        districts = frame[frame["gm_code"] == code]
        for year in YEARS:
            expected = numpy_zonal(out / code / str(year) / "composite" / f"ndvi_composite_{year}.tif", districts)
            mine = {r[2]: r[3:] for r in rows if r[0] == code and r[1] == year}
            assert set(mine) == set(districts["district_code"])
            for district, (count, district_pixels, mean) in mine.items():
                total, values = expected[district]
                assert (count, district_pixels) == (values.size, total)
                assert mean == pytest.approx(values.mean(), abs=1e-6)
        latest = gpd.read_file(out / code / "latest" / "ndvi_stats_latest.geojson")
        assert sorted(latest["district_code"]) == sorted(districts["district_code"])
    assert set(_materialisations(instance, "latest_exports")) == set(AREAS)


@pytest.mark.slow
def test_a_broken_scene_warns_once_for_the_batch(tmp_path, province, database_url, caplog):
    """A scene whose nir asset is gone is dropped by every area that finds it: the batch warns once, counting
    the area-years that dropped it among those that found it, as their scenes tables record them."""
    catalog = tmp_path / "catalog"
    shutil.copytree(Path(province["catalog"]).parent, catalog)
    items = {path: json.loads(path.read_text()) for path in catalog.rglob(f"S2*_{YEARS[0]}*_L2A.json")}
    path, item = min(items.items(), key=lambda kv: kv[1]["properties"]["eo:cloud_cover"])  # one the areas keep
    item["assets"]["nir"]["href"] = str(tmp_path / "gone" / "nir.tif")
    path.write_text(json.dumps(item))
    out = tmp_path / "out"
    reset_database(database_url, out)
    config = _config(tmp_path, {**province, "catalog": str(catalog / "catalog.json")}, out)
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    with caplog.at_level(logging.WARNING, "ingestion"):
        run(config, years=[YEARS[0]], instance=instance, latest=False, echo=lines.append)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"scene {item['id']}: dropped")]
    rows = [row.data for metadata in _materialisations(instance, "ndvi_composite").values()
            for row in metadata["scenes"].records if row.data["item"] == item["id"]]
    dropped = [row for row in rows if row["reason"].startswith("unreadable asset: ")]
    assert len(dropped) >= 2, rows
    assert len(warned) == 1, "\n".join(warned + lines)
    assert f" dropped in {len(dropped)} of the {len(rows)} area-years that found it " in warned[0], warned[0]
    assert "gone/nir.tif" in warned[0]
