"""Nearest-neighbour reads onto a block of another CRS (UTM COG under an RD New block) by pixel map and gather:
each block pixel takes the source pixel under its centre, exactly as a per-pixel pyproj transform says, 0 outside
the source; GDAL's warper (approximate transformer) may differ only next to a source pixel edge."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from odc.loader import RasterLoadParams, RasterSource, RioReader
from pyproj import Transformer
from rasterio.transform import from_origin

from ingestion.imagery.blocks import read_asset
from ingestion.imagery.nearest import pixel_map

UTM, RD = "EPSG:32632", "EPSG:28992"


@pytest.fixture(scope="module")
def utm_cog(tmp_path_factory):
    """A 700 x 600 px UTM 32N (10 m) uint16 GeoTIFF near Enschede, random values 1..10000, nodata 0."""
    path = tmp_path_factory.mktemp("nearest") / "red.tif"
    values = np.random.default_rng(4).integers(1, 10_000, size=(600, 700), dtype=np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=700, height=600, count=1, dtype="uint16", crs=UTM,
                       transform=from_origin(345_000, 5_792_000, 10, 10), nodata=0, tiled=True, blockxsize=256,
                       blockysize=256, compress="deflate") as dst:
        dst.write(values, 1)
    return path, values


def _rd_block(shape: tuple[int, int], offset: tuple[float, float]) -> GeoBox:
    """An RD New 10 m block whose upper-left corner lies ``offset`` metres east and south of the COG's."""
    x, y = Transformer.from_crs(UTM, RD, always_xy=True).transform(345_000 + offset[0], 5_792_000 - offset[1])
    return GeoBox(shape, from_origin(x, y, 10, 10), RD)


def _exact(block: GeoBox, values: np.ndarray, transform) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the value under the centre by an exact pyproj transform (0 outside), and the distance of the
    centre to the nearest source pixel edge, in source pixels."""
    rows, cols = np.indices(block.shape)
    x, y = block.transform * (cols + 0.5, rows + 0.5)
    sx, sy = Transformer.from_crs(RD, UTM, always_xy=True).transform(x, y)
    c, r = ~transform * (np.asarray(sx), np.asarray(sy))
    ci, ri = np.floor(c).astype(int), np.floor(r).astype(int)
    inside = (ci >= 0) & (ci < values.shape[1]) & (ri >= 0) & (ri < values.shape[0])
    expected = np.zeros(block.shape, dtype=values.dtype)
    expected[inside] = values[ri[inside], ci[inside]]
    edge = np.minimum(np.abs(c - np.round(c)), np.abs(r - np.round(r)))
    return expected, edge


@pytest.mark.parametrize("offset", [(500.0, 400.0), (-1200.0, 3000.0), (6500.0, 5500.0)],
                         ids=["inside", "west edge", "south-east corner"])
def test_block_pixels_take_the_source_pixel_under_their_centre(utm_cog, offset):
    path, values = utm_cog
    block = _rd_block((300, 320), offset)
    expected, edge = _exact(block, values, rasterio.open(path).transform)
    mine = read_asset(str(path), block, "uint16")
    assert np.array_equal(mine[edge > 1e-3], expected[edge > 1e-3])
    assert (mine != expected).sum() <= 2  # at most a pixel or two within 1e-3 px of an edge
    assert (expected == 0).any() == (offset != (500.0, 400.0))  # the edge cases do reach outside the source
    assert (mine > 0).sum() > 1000

    # GDAL's warper agrees except next to source pixel edges (its transformer is approximate to 0.125 px)
    cfg = RasterLoadParams(dtype="uint16", fill_value=0, src_nodata_fallback=0, resampling="nearest")
    roi, pix = RioReader(RasterSource(str(path)), None).read(cfg, block)
    warped = np.zeros(block.shape, dtype="uint16")
    warped[roi] = pix
    assert (edge[warped != mine] < 0.125).all()


def test_a_block_outside_the_source_reads_zeros_and_maps_are_shared(utm_cog):
    path, _ = utm_cog
    far = _rd_block((64, 64), (20_000.0, 0.0))
    assert not read_asset(str(path), far, "uint16").any()
    block = _rd_block((128, 128), (100.0, 100.0))
    with rasterio.open(path) as src:
        assert pixel_map(block, src) is pixel_map(block, src)  # one map per block and grid, for every item
