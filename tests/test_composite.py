"""Composites recover the generator's truth; the notebook's method does not; real scenes match numpy."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pystac
import rasterio
from shapely.geometry import box

from ingestion.imagery.cog import NODATA, write_composite_cog
from ingestion.imagery.composite import build_composite
from ingestion.imagery.grid import target_geobox
from ingestion.sources.base import SceneQuery, apply_selection_rules
from ingestion.sources.local_stac import LocalStacSource
from ingestion.vector_utils import to_wgs84
from tests.helpers import read_on_geobox


def _sample_composite(sample_area, year):
    districts = gpd.read_file(sample_area["districts"])
    aoi = districts.union_all()
    query = SceneQuery.for_year(to_wgs84(aoi, districts.crs), year)
    selection = LocalStacSource(sample_area["catalog"]).select(query)
    geobox = target_geobox(aoi, districts.crs.to_string(), 10)
    return selection, build_composite(selection.items, geobox)


def _truth(sample_area, year, geobox):
    root = sample_area["root"] / "truth"
    return (read_on_geobox(root / f"ndvi_true_{year}.tif", geobox),
            read_on_geobox(root / f"clear_count_{year}.tif", geobox))


def test_composite_equals_truth_and_counts_clear_deduplicated_days(sample_area):
    for year in (2019, 2024):
        _, comp = _sample_composite(sample_area, year)
        truth, count = _truth(sample_area, year, comp.geobox)
        observed = count > 0
        assert observed.mean() > 0.9 and (~observed).sum() > 0  # the test covers both cases
        assert np.abs(comp.ndvi[observed] - truth[observed]).max() < 1e-3
        assert np.isnan(comp.ndvi[~observed]).all()
        np.testing.assert_array_equal(comp.count, count)
        assert count.max() <= len({i[:-6] for i in sample_area["years"][str(year)]["kept"]})


def _notebook_composite(items, geobox):
    """The notebook's method: every item under the cloud limit, DN × 0.0001, no SCL mask, median over items."""
    import odc.stac

    ds = odc.stac.load(items, bands=["red", "nir"], geobox=geobox, groupby="id", resampling="nearest")
    red = ds.red.values.astype("float32") * 1e-4
    nir = ds.nir.values.astype("float32") * 1e-4
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = np.where((ds.red.values == 0), np.nan, (nir - red) / (nir + red))
    return np.nanmedian(ndvi, axis=0)


def test_notebook_method_is_wrong_where_ours_is_right(sample_area):
    selection, comp = _sample_composite(sample_area, 2024)
    truth, count = _truth(sample_area, 2024, comp.geobox)
    naive = _notebook_composite(selection.items, comp.geobox)
    observed = count > 0
    naive_error = np.abs(naive - truth)[observed]
    ours_error = np.abs(comp.ndvi - truth)[observed]
    assert np.nanmean(naive_error) > 0.02  # offsets, duplicates and clouds bias the notebook
    assert ours_error.max() < 1e-3
    # where no day was clear, the notebook still publishes a (cloud) value; we publish nodata
    assert np.isfinite(naive[~observed]).all() and np.isnan(comp.ndvi[~observed]).all()


def test_cog_layout(sample_area, tmp_path):
    _, comp = _sample_composite(sample_area, 2019)
    path = write_composite_cog(comp, tmp_path / "2019" / "composite" / "ndvi_composite_2019.tif")
    with rasterio.open(path) as src:
        assert src.count == 2 and src.dtypes == ("float32", "float32")
        assert src.nodata == NODATA
        assert src.descriptions == ("ndvi_median", "valid_observations")
        assert src.profile["tiled"] and src.overviews(1)
        assert src.crs.to_epsg() == 32632 and src.res == (10.0, 10.0)
        ndvi, count = src.read(1), src.read(2)
    np.testing.assert_array_equal(ndvi == NODATA, comp.count == 0)
    np.testing.assert_array_equal(count, comp.count)
    # the temporary files (``<name>.tmp-<host>-<pid>-<hex>.part.tif``, overviews, VRT) are gone: only the COG
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == [path.relative_to(tmp_path)]


def test_real_scene_through_local_stac_matches_numpy(shared_data, tmp_path):
    """The real 29RKH scene (100 m red/nir, 200 m SCL): our composite equals numpy on the files."""
    scene = shared_data / "s2" / "S2A_29RKH_20200219_0_L2A"
    item = pystac.Item.from_dict(json.loads((scene / "S2A_29RKH_20200219_0_L2A.json").read_text()))
    for key, name in (("red", "B04.tif"), ("nir", "B08.tif"), ("scl", "SCL.tif")):
        item.assets[key].href = str(scene / name)
    item.clear_links()
    catalog = pystac.Catalog("real", "one real scene")
    catalog.add_item(item)
    catalog.normalize_and_save(str(tmp_path / "catalog"), pystac.CatalogType.ABSOLUTE_PUBLISHED)
    for key, name in (("red", "B04.tif"), ("nir", "B08.tif"), ("scl", "SCL.tif")):
        assert item.assets[key].href == str(scene / name)

    aoi = box(199_980, 2_690_220, 309_780, 2_800_020)  # EPSG:32629, the whole tile
    query = SceneQuery.for_year(to_wgs84(aoi, "EPSG:32629"), 2020)
    selection = LocalStacSource(tmp_path / "catalog" / "catalog.json", collection=None).select(query)
    assert [i.id for i in selection.items] == ["S2A_29RKH_20200219_0_L2A"]
    geobox = target_geobox(aoi, "EPSG:32629", 100)
    comp = build_composite(selection.items, geobox)

    # numpy: for each target pixel centre, the file pixel that contains it (the grid is snapped to 100 m,
    # the tile's to 20 m, so this is a real lookup, not an identity)
    xs = geobox.transform.c + 100 * (np.arange(geobox.width) + 0.5)
    ys = geobox.transform.f - 100 * (np.arange(geobox.height) + 0.5)

    def lookup(path):
        with rasterio.open(path) as src:
            data = src.read(1)
            col = np.floor((xs - src.transform.c) / src.transform.a).astype(int)
            row = np.floor((ys - src.transform.f) / src.transform.e).astype(int)
            inside_c, inside_r = (col >= 0) & (col < src.width), (row >= 0) & (row < src.height)
            out = data[np.clip(row, 0, src.height - 1)][:, np.clip(col, 0, src.width - 1)].astype(np.float64)
            out[~inside_r, :] = 0
            out[:, ~inside_c] = 0
            return out

    red, nir, scl = lookup(scene / "B04.tif"), lookup(scene / "B08.tif"), lookup(scene / "SCL.tif")
    expected = (nir * 1e-4 - red * 1e-4) / (nir * 1e-4 + red * 1e-4)
    clear = (red > 0) & (nir > 0) & ~np.isin(scl, [0, 1, 3, 8, 9, 10, 11])
    expected[~clear] = np.nan
    assert comp.ndvi.shape == expected.shape
    assert np.isnan(expected).sum() > 0 and np.isfinite(expected).sum() > 100_000
    np.testing.assert_array_equal(np.isnan(comp.ndvi), np.isnan(expected))
    assert np.nanmax(np.abs(comp.ndvi - expected)) < 1e-6
    assert set(np.unique(comp.count)) == {0, 1}


def test_selection_report_for_sample_year(sample_area):
    selection, _ = _sample_composite(sample_area, 2024)
    kept = sorted(i.id for i in selection.items)
    assert kept == sorted(sample_area["years"]["2024"]["kept"])
    assert any("_1_L2A" in i for i in kept)  # the duplicate is read and merged per pixel, not counted twice
    dropped = {d.item_id: d.reason for d in selection.dropped}
    assert all(r.startswith("cloud cover") for r in dropped.values()) and dropped
    assert apply_selection_rules(selection.items, SceneQuery.for_year(box(0, 0, 1, 1), 2024)).items == ()
