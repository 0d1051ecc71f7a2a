"""The PNG previews: each image pixel shows its array pixel on the stated colour scale, the outline keeps
holes and aspect."""

import io

import matplotlib
import numpy as np
from PIL import Image
from shapely.geometry import Polygon, box

from ingestion.export.preview import LEGEND_PX, NDVI_RANGE, NO_DATA_RGB, composite_png, outline_png


def _image(png: bytes) -> np.ndarray:
    assert png[:4] == b"\x89PNG"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _rdylgn(ndvi: float) -> np.ndarray:
    """matplotlib's RdYlGn at ``ndvi`` on NDVI_RANGE, 8-bit (the independent reference)."""
    low, high = NDVI_RANGE
    fraction = min(max((ndvi - low) / (high - low), 0.0), 1.0)
    return np.array(matplotlib.colormaps["RdYlGn"](fraction)[:3]) * 255


def test_composite_preview_colours_each_pixel_by_its_ndvi_and_greys_no_data():
    rng = np.random.default_rng(3)
    ndvi = rng.uniform(-0.5, 1.0, (60, 90)).astype(np.float32)
    ndvi[10:20, 30:40] = np.nan
    image = _image(composite_png(ndvi))
    assert image.shape == (60 + 2 + LEGEND_PX, 90, 3)
    for row, col in [(0, 0), (5, 70), (33, 12), (59, 89), (25, 44)]:
        # within one step of the 256-colour table
        assert np.abs(image[row, col] - _rdylgn(float(ndvi[row, col]))).max() <= 6, (row, col)
    assert (image[10:20, 30:40] == NO_DATA_RGB).all()
    ramp = image[-1]
    assert np.abs(ramp[0] - _rdylgn(NDVI_RANGE[0])).max() <= 1 and np.abs(ramp[-1] - _rdylgn(NDVI_RANGE[1])).max() <= 1


def test_composite_preview_is_decimated_to_its_longest_side():
    ndvi = np.zeros((1000, 2400), dtype=np.float32)
    ndvi[::3, ::3] = 0.9  # every third pixel: the kept ones with a step of 3
    image = _image(composite_png(ndvi, max_pixels=800))
    assert image.shape[:2] == (334 + 2 + LEGEND_PX, 800)
    assert np.abs(image[:334].astype(int) - _rdylgn(0.9)).max() <= 1


def test_outline_keeps_holes_and_aspect():
    ring = Polygon(box(0, 0, 2000, 1000).exterior.coords, [box(800, 300, 1200, 700).exterior.coords])
    image = _image(outline_png([ring], max_pixels=400))
    assert abs(image.shape[1] / image.shape[0] - 2.0) < 0.05
    height, width = image.shape[:2]
    assert (image[height // 2, width // 2] == 255).all()  # the hole
    assert tuple(image[height // 2, width // 8]) == (158, 202, 225)  # the fill
    assert tuple(image[height // 4, width // 2]) == (158, 202, 225)


def test_choropleth_fills_each_district_with_its_class_colour_in_proportion_to_its_area():
    """Four districts of areas 1 : 2 : 3 : 4 in four classes: each class colour covers its district's share of
    the map, and a district without a value is hatched grey. Each value is its class's upper bound, which
    belongs to the class (as in breaks.json and the web map)."""
    import geopandas as gpd

    from ingestion.export.preview import choropleth_png

    widths = [100, 200, 300, 400]
    lefts = np.cumsum([0, *widths[:-1]])
    shapes = [box(left, 0, left + w, 500) for left, w in zip(lefts, widths, strict=True)]
    stats = gpd.GeoDataFrame({"district_code": list("abcde"), "v": [0.2, 0.4, 0.6, 0.8, None]},
                             geometry=[*shapes, box(1000, 0, 1100, 500)], crs="EPSG:28992")
    colors = ["#ff0000", "#00ff00", "#0000ff", "#ffff00"]
    breaks = {"min": 0.0, "bins": [0.2, 0.4, 0.6, 0.8], "colors": colors}
    image = _image(choropleth_png(stats, "v", breaks, "test"))
    counts = [int((image == np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)])).all(axis=2).sum()) for c in colors]
    shares = np.array(counts) / sum(counts)
    assert np.allclose(shares, np.array(widths) / sum(widths), atol=0.02), shares
    assert (image == 0xDD).all(axis=2).sum() > 0.3 * counts[0]  # the grey of the district without a value
