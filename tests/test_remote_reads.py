"""COGs read over HTTP from a range-serving server on 127.0.0.1: clean, flaky (503s), and one broken COG."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest

from ingestion.imagery.composite import CorruptImageError, build_composite
from ingestion.imagery.grid import target_geobox
from ingestion.sources.base import SceneQuery
from ingestion.sources.local_stac import LocalStacSource
from ingestion.vector_utils import to_wgs84
from tests.range_server import RangeServer

FAST_RETRIES = {"GDAL_HTTP_MAX_RETRY": 3, "GDAL_HTTP_RETRY_DELAY": 0.05}

# ingestion.imagery.gdal_env sizes GDAL's /vsicurl cache for the process at import, before any read: which
# test reads first does not matter (a 16 MB cache made the composite below fetch tiles up to 6 times).


def sample_items_and_grid(sample_area: dict, year: int = 2024):
    districts = gpd.read_file(sample_area["districts"])
    aoi = districts.union_all()
    query = SceneQuery.for_year(to_wgs84(aoi, districts.crs), year)
    items = LocalStacSource(sample_area["catalog"]).select(query).items
    return items, target_geobox(aoi, districts.crs.to_string(), 10)


def served(items: list[pystac.Item], server: RangeServer) -> list[pystac.Item]:
    """Copies of ``items`` whose assets point at ``server``."""
    out = []
    for item in items:
        copy = item.full_copy()
        for key, asset in copy.assets.items():
            asset.href = server.href(Path(item.assets[key].get_absolute_href()))
        out.append(copy)
    return out


def assert_same_composite(a, b) -> None:
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_array_equal(a.ndvi, b.ndvi)  # NaN where no clear day, in both


@pytest.fixture(scope="module")
def local_run(sample_area):
    items, geobox = sample_items_and_grid(sample_area)
    return items, geobox, build_composite(items, geobox, chunk=256)


def test_clean_http_server_gives_the_local_file_composite(sample_area, local_run):
    items, geobox, local = local_run
    with RangeServer(Path(sample_area["root"])) as server:
        remote = build_composite(served(items, server), geobox, chunk=256)
        assert server.range_requests > 0
    assert_same_composite(remote, local)


def test_flaky_server_is_retried_to_the_exact_composite(sample_area, local_run):
    items, geobox, local = local_run
    with RangeServer(Path(sample_area["root"]), fail_every=3, fail_budget=25) as server:
        remote = build_composite(served(items, server), geobox, chunk=256, gdal=FAST_RETRIES)
        assert server.failures >= 10  # a share of the range requests really failed
    assert_same_composite(remote, local)


def test_server_failing_one_cog_names_its_href(sample_area, local_run):
    items, geobox, _ = local_run
    victim = next(i for i in items if i.id == "S2B_32ULC_20240925_0_L2A")
    root = Path(sample_area["root"])
    rel = str(Path(victim.assets["nir"].get_absolute_href()).resolve().relative_to(root.resolve()))
    with RangeServer(root, broken={rel}) as server:
        with pytest.raises(CorruptImageError, match=f"item {victim.id}: asset 'nir' at {server.url}/{rel}"):
            build_composite(served(items, server), geobox, chunk=256, gdal=FAST_RETRIES)
        assert server.failures >= 2  # the first try and the retries


def test_gdal_cachemax_reaches_rasterio_in_bytes():
    """rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64 (bytes): 256 would be a 256-byte cache."""
    from ingestion.imagery.gdal_env import gdal_options

    assert gdal_options()["GDAL_CACHEMAX"] == 64 * 1024 * 1024
    assert gdal_options({"GDAL_CACHEMAX": "512"})["GDAL_CACHEMAX"] == 512 * 1024 * 1024
    assert gdal_options({"GDAL_CACHEMAX": 300_000_000})["GDAL_CACHEMAX"] == 300_000_000  # bytes, as GDAL reads it
    with pytest.raises(ValueError, match="GDAL_CACHEMAX must be a whole number of megabytes, got '1GB'"):
        gdal_options({"GDAL_CACHEMAX": "1GB"})


@pytest.fixture(scope="module")
def earth_search_layout(tmp_path_factory) -> Path:
    """A 2024 catalog of about 1.7 Mpx in Earth Search's COG layout (1024 px tiles, PREDICTOR=2): 2 x 2 tiles
    per file, so blocks of another grid share tiles."""
    from ingestion.sample.generator import generate, synthetic_districts

    out = tmp_path_factory.mktemp("es-layout")
    synthetic_districts(5, n=12, size_m=(12_600.0, 12_600.0)).to_file(out / "districts.gpkg", driver="GPKG")
    generate(out, [2024], seed=5, districts_path=out / "districts.gpkg", cog_layout="earth-search")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("multirange", ["SERIAL", "YES"])
def test_each_source_tile_is_fetched_once_per_composite(earth_search_layout, multirange):
    """Over a range server with a request log: the composite (offset check included) onto RD New, whose blocks
    cut through the UTM source tiles, fetches no full-resolution tile twice. GDAL's parallel multi-range reads
    (``YES``) bypass its cache; the test sees the repeats they cause, so it can fail."""
    from tests.cog_tiles import TileTable

    root = earth_search_layout
    districts = gpd.read_file(root / "districts.gpkg").to_crs("EPSG:28992")
    aoi = districts.union_all()
    query = SceneQuery.for_year(to_wgs84(aoi, districts.crs), 2024)
    items = LocalStacSource(root / "catalog" / "catalog.json").select(query).items
    geobox = target_geobox(aoi, "EPSG:28992", 10)
    with RangeServer(root) as server:
        build_composite(served(items, server), geobox, chunk=512, gdal={"GDAL_HTTP_MULTIRANGE": multirange})
        log = list(server.log)
    ranges: dict[str, list[tuple[int, int]]] = {}
    for rel, first, last in log:
        ranges.setdefault(rel, []).append((first, last))
    fetched = {}
    for rel, spans in ranges.items():
        counts = TileTable.read(root / rel).fetched(spans)
        fetched.update({(rel, *tile): times for tile, times in counts.items() if tile[0] == 0})
    assert len(fetched) >= 4 * len(items)  # the files' full-resolution tiles were really read over HTTP
    repeated = {tile: times for tile, times in fetched.items() if times > 1.5}
    if multirange == "SERIAL":  # the default
        assert not repeated, sorted(repeated.items())[:5]
    else:
        assert repeated
