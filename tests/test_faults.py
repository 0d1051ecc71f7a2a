"""Faults: bad items and files, a flaky STAC API, a load killed half-way, SQL injection attempts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin

from ingestion.config import parse_config
from ingestion.imagery.cog import write_composite_cog
from ingestion.imagery.composite import Composite, CorruptImageError, build_composite
from ingestion.imagery.grid import target_geobox
from ingestion.load.postgis import load_composite
from ingestion.pipeline import NoScenesError, build_aoi, composite_year
from ingestion.scenes import BadItemError, screen_items
from ingestion.sources.base import DropReason, SceneQuery
from ingestion.sources.earth_search import EarthSearchSource, StacApiError
from ingestion.sources.local_stac import LocalStacSource
from ingestion.vector_utils import to_wgs84
from ingestion.years import InvalidYearError
from tests.helpers import FlakyProxy, stac_api


@pytest.fixture
def catalog_copy(sample_area, tmp_path):
    """A private copy of the sample catalog that a test may damage."""
    dest = tmp_path / "catalog"
    shutil.copytree(Path(sample_area["catalog"]).parent, dest)
    return dest


def _edit_item(catalog: Path, item_id: str, edit) -> Path:
    path = next(catalog.rglob(f"{item_id}.json"))
    item = json.loads(path.read_text())
    edit(item)
    path.write_text(json.dumps(item))
    return path


def _query(sample_area, year=2024):
    districts = gpd.read_file(sample_area["districts"])
    return SceneQuery.for_year(to_wgs84(districts.union_all(), districts.crs), year), districts


def test_bad_item_metadata_and_missing_assets_dropped_or_named(sample_area, catalog_copy):
    bad_meta, no_scl = "S2B_32ULC_20240310_0_L2A", "S2B_32ULC_20240715_0_L2A"
    _edit_item(catalog_copy, bad_meta, lambda i: i["properties"].update({"s2:processing_baseline": "five"}))
    _edit_item(catalog_copy, no_scl, lambda i: i["assets"].pop("scl"))
    query, _ = _query(sample_area)
    source = LocalStacSource(catalog_copy / "catalog.json")

    selected = source.select(query)
    selection = screen_items(selected, "drop")
    assert bad_meta in {i.id for i in selected.items}  # screening returns a new selection, its input unchanged
    assert [d.kept for d in selected.decisions if d.item_id == bad_meta] == [True]
    reasons = {d.item_id: d.reason for d in selection.dropped}
    assert {d.item_id: d.cause for d in selection.dropped}[bad_meta] is DropReason.BAD_METADATA
    assert reasons[bad_meta].startswith("bad metadata: item S2B_32ULC_20240310_0_L2A: s2:processing_baseline 'five'")
    assert reasons[no_scl] == "missing assets: scl"
    assert {bad_meta, no_scl}.isdisjoint(i.id for i in selection.items) and len(selection.items) == 5

    with pytest.raises(BadItemError, match=f"item {no_scl}: missing assets: scl"):
        screen_items(source.select(query), "fail")
    _edit_item(catalog_copy, no_scl, lambda i: i["assets"].update(scl=i["assets"]["red"]))
    with pytest.raises(BadItemError, match=f"item {bad_meta}: s2:processing_baseline 'five'"):
        screen_items(source.select(query), "fail")


def test_truncated_item_json_is_dropped_with_its_path_or_named_when_failing(sample_area, catalog_copy):
    broken = next(catalog_copy.rglob("S2B_32ULC_20240505_0_L2A.json"))
    broken.write_text(broken.read_text()[:200])  # cut off mid-file, as an interrupted download
    query, _ = _query(sample_area)
    source = LocalStacSource(catalog_copy / "catalog.json")

    selection = screen_items(source.select(query), "drop")
    reasons = {d.item_id: d.reason for d in selection.dropped}
    assert reasons["S2B_32ULC_20240505_0_L2A"].startswith(f"unreadable item: {broken}: JSONDecodeError")
    expected = set(sample_area["years"]["2024"]["kept"]) - {"S2B_32ULC_20240505_0_L2A"}
    assert {i.id for i in selection.items} == expected
    # the other year's scenes are untouched by the broken file
    query_2019, _ = _query(sample_area, 2019)
    assert {i.id for i in source.select(query_2019).items} == set(sample_area["years"]["2019"]["kept"])

    with pytest.raises(BadItemError, match=f"unreadable item: {broken}: JSONDecodeError"):
        screen_items(source.select(query), "fail")


def _picked(selection):
    return [i.id for i in selection.items], selection.decisions


def test_one_source_serves_concurrent_searches_and_keeps_no_state(sample_area, catalog_copy):
    """find_items returns its failures with its items: one instance, many searches at once, same answers."""
    broken = next(catalog_copy.rglob("S2B_32ULC_20240505_0_L2A.json"))
    broken.write_text(broken.read_text()[:200])
    source = LocalStacSource(catalog_copy / "catalog.json")
    state = dict(vars(source))
    queries = [_query(sample_area, year)[0] for year in (2019, 2024) * 4]
    found = source.find_items(queries[1])
    assert [f.item_id for f in found.failures] == ["S2B_32ULC_20240505_0_L2A"]
    assert found.failures[0].cause is DropReason.UNREADABLE_ITEM
    with ThreadPoolExecutor(8) as pool:
        selections = list(pool.map(source.select, queries))
    for query, selection in zip(queries, selections, strict=True):
        assert _picked(selection) == _picked(source.select(query))
        unreadable = [d for d in selection.dropped if d.cause is DropReason.UNREADABLE_ITEM]
        assert [d.item_id for d in unreadable] == ["S2B_32ULC_20240505_0_L2A"]  # once per search, not per thread
    assert vars(source) == state


def test_catalog_path_that_is_not_stac_names_path_and_key(tmp_path, sample_area):
    not_stac = tmp_path / "settings.json"
    not_stac.write_text(json.dumps({"hello": "world"}))
    query, _ = _query(sample_area)
    with pytest.raises(ValueError, match=f"imagery.options.catalog_path {not_stac} is not a STAC catalog"):
        LocalStacSource(not_stac).select(query)
    with pytest.raises(FileNotFoundError, match=f"imagery.options.catalog_path {tmp_path / 'nope.json'} does not"):
        LocalStacSource(tmp_path / "nope.json").select(query)


def test_truncated_cog_is_named_by_href(sample_area, catalog_copy):
    red = next(catalog_copy.rglob("S2B_32ULC_20240925_0_L2A/red.tif"))
    red.write_bytes(red.read_bytes()[:3000])
    query, districts = _query(sample_area)
    items = LocalStacSource(catalog_copy / "catalog.json").select(query).items
    geobox = target_geobox(districts.union_all(), districts.crs.to_string())
    with pytest.raises(CorruptImageError, match=f"item S2B_32ULC_20240925_0_L2A: asset 'red' at {red}"):
        build_composite(items, geobox)


def test_stac_api_500s_are_retried_with_backoff_then_reported(sample_area):
    query, _ = _query(sample_area)
    with stac_api(sample_area["catalog"]) as upstream:
        with FlakyProxy(upstream, fail_first=2) as proxy:
            source = EarthSearchSource(url=proxy.url, max_retries=3, backoff_seconds=0.05)
            items = source.select(query).items
            assert sorted(i.id for i in items) == sorted(sample_area["years"]["2024"]["kept"])
            assert proxy.requests >= 3  # two failures, then success
        with FlakyProxy(upstream, fail_first=10_000) as proxy:
            source = EarthSearchSource(url=proxy.url, max_retries=2, backoff_seconds=0.05)
            with pytest.raises(StacApiError, match=f"STAC search at {proxy.url} failed"):
                source.select(query)
            assert proxy.requests == 3  # bounded: the first try and two retries
        with FlakyProxy(upstream, fail_first=10_000, delay=3) as proxy:
            source = EarthSearchSource(url=proxy.url, max_retries=1, backoff_seconds=0.05, timeout_seconds=0.5)
            started = time.monotonic()
            with pytest.raises(StacApiError, match="(?i)timed? ?out"):
                source.select(query)
            assert time.monotonic() - started < 3


def test_year_value_is_validated_before_any_sql(database_url, tmp_path):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("create table if not exists public.canary (x int)")
        with pytest.raises(InvalidYearError, match="'2024; drop table public.canary' is not a year"):
            load_composite(conn, "faults", "2024; drop table public.canary", tmp_path / "none.tif")
        assert conn.execute("select to_regclass('public.canary')").fetchone()[0] == "canary"


def _random_composite(size: int, seed: int) -> Composite:
    rng = np.random.default_rng(seed)
    geobox = GeoBox((size, size), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
    ndvi = rng.uniform(-0.2, 0.9, (size, size)).astype(np.float32)
    return Composite(ndvi=ndvi, count=np.ones((size, size), np.uint16), geobox=geobox, days=[], offsets={})


def _year_fingerprint(conn, year):
    return conn.execute("select count(*), sum(st_width(rast) * st_height(rast)),"
                        " round((st_summarystatsagg(rast, 1, true)).sum::numeric, 3)"
                        " from raw.ndvi_composites where year = %s", (year,)).fetchone()


def test_load_killed_half_way_leaves_old_data_and_next_run_completes(database_url, tmp_path):
    old = write_composite_cog(_random_composite(300, 1), tmp_path / "old.tif")
    other = write_composite_cog(_random_composite(200, 2), tmp_path / "other.tif")
    big = write_composite_cog(_random_composite(3000, 3), tmp_path / "big.tif")
    with psycopg.connect(database_url, autocommit=True) as conn:
        load_composite(conn, "faults", 2016, old, publish=False)
        load_composite(conn, "faults", 2017, other, publish=False)
        before = {y: _year_fingerprint(conn, y) for y in (2016, 2017)}

        script = ("import sys; from ingestion.db import connect; from ingestion.load.postgis import load_composite;"
                  "load_composite(connect(sys.argv[1]), 'faults', 2016, sys.argv[2], tile=32, publish=False)")
        proc = subprocess.Popen([sys.executable, "-c", script, database_url, str(big)])
        # kill it once the server has received a good part of the year's tiles (COPY progress, not a timer)
        total = (3000 // 32 + 1) ** 2
        deadline = time.monotonic() + 60
        while True:
            copied = conn.execute("select max(tuples_processed) from pg_stat_progress_copy"
                                  " where relid = 'raw.ndvi_composites'::regclass").fetchone()[0] or 0
            if copied >= total // 4:
                break
            assert proc.poll() is None, "the loader finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert proc.poll() is None and copied < total, "the loader finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        for _ in range(100):  # the server notices the dead client and rolls back
            if not conn.execute("select count(*) from pg_stat_activity where query like 'copy raw.ndvi_composites%%'"
                                " and state <> 'idle'").fetchone()[0]:
                break
            time.sleep(0.1)
        assert {y: _year_fingerprint(conn, y) for y in (2016, 2017)} == before
        tiles = load_composite(conn, "faults", 2016, big, tile=512, publish=False)
        assert _year_fingerprint(conn, 2016)[:2] == (tiles, 3000 * 3000)
        assert _year_fingerprint(conn, 2017) == before[2017]
        conn.execute("delete from raw.ndvi_composites where year in (2016, 2017)")


def _cfg(sample_area, tmp_path, districts_path, years=(2024,), **extra):
    raw = {"districts": {"path": str(districts_path)}, "years": list(years),
           "imagery": {"source": "local-stac", "options": {"catalog_path": sample_area["catalog"]}},
           "output_dir": str(tmp_path / "out"), **extra}
    return parse_config(raw, tmp_path / "area.yaml").areas[0]


def test_year_without_scenes_and_area_outside_imagery_fail_with_the_reason(sample_area, tmp_path):
    cfg = _cfg(sample_area, tmp_path, sample_area["districts"], years=(2022,))
    build_aoi(cfg, gpd.read_file(sample_area["districts"]))
    with pytest.raises(NoScenesError, match="no usable Sentinel-2 scenes for 2022 from local-stac"):
        composite_year(cfg, 2022)
    assert not (tmp_path / "out" / "2022").exists()

    moved = gpd.read_file(sample_area["districts"])
    moved["geometry"] = moved.geometry.translate(50_000, 0)
    moved.to_file(tmp_path / "moved.gpkg", driver="GPKG")
    cfg = _cfg(sample_area, tmp_path, tmp_path / "moved.gpkg")
    build_aoi(cfg, moved)
    with pytest.raises(NoScenesError, match="'no overlap': 7"):
        composite_year(cfg, 2024)

    far = gpd.GeoDataFrame(geometry=moved.geometry.translate(0, 90_000), crs=moved.crs)
    far.to_file(tmp_path / "far.gpkg", driver="GPKG")
    with pytest.raises(ValueError, match="far.gpkg does not overlap any district"):
        build_aoi(_cfg(sample_area, tmp_path, tmp_path / "moved.gpkg", boundary=str(tmp_path / "far.gpkg")), moved)
