"""The web map page on its own (no database): escaping, offline, basemap, classes; rendered in Chromium."""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import box

from ingestion.export.webmap import MAP_FILE, script_json, write_web_map
from ingestion.export.webmap_data import class_index

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned = 1">'
HOSTILE_CODE = "</script><script>window.__pwned = 2</script>"
BREAKS = {"scheme": "FisherJenks", "k": 2, "bins": [0.3, 0.456], "min": 0.2, "max": 0.456,
          "colors": ["#a50026", "#006837"]}
TINY_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                         "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e0d4e8a90000000049454e44ae426082")


def _write_map(folder: Path, basemap_url: str | None = None) -> Path:
    """Two districts (EPSG:28992) with hostile names and code; one with values, one never valid."""
    latest = gpd.GeoDataFrame(
        {"district_code": [HOSTILE_CODE, "B&2"], "district_name": [HOSTILE_NAME, HOSTILE_IMG],
         "source_year": [2024, None], "pixel_count": [10, None], "valid_fraction": [0.5, None],
         "min_ndvi": [0.1, None], "max_ndvi": [0.8, None], "mean_ndvi": [0.456, None], "stddev_ndvi": [0.1, None]},
        geometry=[box(257000, 471000, 258000, 472000), box(258000, 471000, 259000, 472000)], crs="EPSG:28992")
    yearly = [{"district_code": HOSTILE_CODE, "year": 2024, "pixel_count": 10, "valid_fraction": 0.5,
               "min_ndvi": 0.1, "max_ndvi": 0.8, "mean_ndvi": 0.456, "stddev_ndvi": 0.1}]
    return write_web_map(folder, latest, yearly, [], BREAKS, title="Test <b>area</b>", basemap_url=basemap_url)


def _open(browser_page, path: Path):
    page = browser_page.page
    page.goto(path.as_uri())
    page.wait_for_selector("#map path.leaflet-interactive")
    return page


def _click_district(page, index: int) -> str:
    """Click the centre of district ``index`` (a square, so its centre is inside) and return the popup text."""
    point = page.evaluate("""(i) => {
        const layer = window.ndviMap.districts.getLayers()[i];
        const p = window.ndviMap.map.latLngToContainerPoint(layer.getBounds().getCenter());
        const r = window.ndviMap.map.getContainer().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y];
    }""", index)
    page.mouse.click(*point)
    popup = page.locator(".leaflet-popup .ndvi-popup")
    popup.wait_for()
    return popup


def test_script_json_cannot_end_its_script_element():
    data = {"name": "</script><script>x()</script><!-- & \u2028 \u2029"}
    text = script_json(data)
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == data


def test_class_index_follows_upper_bounds_and_keeps_a_break_value_in_its_class():
    bins = [0.2936124845441315, 0.481171848919041, 0.6379645667785848]  # FisherJenks bins are data values
    assert class_index(0.481171848919041, bins, 3) == 1  # rounded to 0.48 it would still be class 1; 0.4812 is not
    assert class_index(0.4811718489190411, bins, 3) == 2
    assert class_index(-0.5, bins, 3) == 0
    assert class_index(0.9, bins, 3) == 2  # above the last break: last class
    assert class_index(None, bins, 3) is None and class_index(float("nan"), bins, 3) is None


def test_hostile_district_names_and_codes_render_as_text(browser_page, tmp_path):
    path = _write_map(tmp_path)
    html = path.read_text()
    assert HOSTILE_NAME not in html and HOSTILE_CODE not in html and "<img src=x" not in html
    page = _open(browser_page, path)
    assert page.title() == "Test <b>area</b>"
    codes = page.eval_on_selector_all("#map path.leaflet-interactive", "els => els.map(e => e.dataset.districtCode)")
    assert codes == [HOSTILE_CODE, "B&2"]

    popup = _click_district(page, 0)
    assert popup.locator("h3").inner_text() == HOSTILE_NAME
    assert popup.locator("dd.code").inner_text() == HOSTILE_CODE
    assert popup.locator("tr[data-year='2024'] td.mean_ndvi").inner_text() == "0.46"
    page.locator(".leaflet-popup-close-button").click()
    page.locator(".leaflet-popup").wait_for(state="detached")
    popup = _click_district(page, 1)
    assert popup.locator("h3").inner_text() == HOSTILE_IMG
    assert popup.locator("dd.source-year").inner_text() == "no year with valid pixels"
    assert popup.locator("tr[data-year='2024'] td.mean_ndvi").inner_text() == "–"

    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 3  # the data block, Leaflet, the map
    assert page.locator("img[src='x']").count() == 0
    assert browser_page.dialogs == [] and browser_page.errors == []
    assert browser_page.outside_requests == [] and page.locator("img.leaflet-tile").count() == 0


class _TileServer(http.server.ThreadingHTTPServer):
    """A basemap tile server on 127.0.0.1 answering every /z/x/y.png with a 1-pixel PNG."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(TINY_PNG)))
                self.end_headers()
                self.wfile.write(TINY_PNG)

        super().__init__(("127.0.0.1", 0), Handler)


def test_basemap_tiles_come_only_from_the_configured_url(browser_page, tmp_path):
    server = _TileServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
        page = _open(browser_page, _write_map(tmp_path, basemap_url=url))
        page.wait_for_selector("img.leaflet-tile-loaded")
        assert server.paths and all(re.fullmatch(r"/\d+/\d+/\d+\.png", p) for p in server.paths)
        assert page.locator(".leaflet-control-layers-overlays", has_text="Basemap").count() == 1
        assert browser_page.outside_requests == [] and browser_page.errors == []
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / MAP_FILE).exists()


def _indicator_map(folder: Path) -> tuple[Path, dict, Path]:
    """Four districts with every indicator of the latest layer (one without values), written as the pipeline
    does: the GeoJSON layer, breaks.json's ``indicators`` (classify per field) and the web map."""
    from ingestion.config import AreaConfig
    from ingestion.export.breaks import classify
    from ingestion.export.geojson import write_stats_geojson
    from ingestion.pipeline import indicator_breaks

    # districts rank differently under each indicator, so a map colouring by the wrong one shows
    values = {
        "mean_ndvi": [0.21, 0.43, 0.67, None], "median_ndvi": [0.7, 0.2, 0.45, None],
        "green_share_vegetated": [0.83, 0.97, 0.51, None], "green_share_dense_vegetation": [0.4, 0.1, 0.8, None],
        "mean_ndvi_change_baseline": [0.05, -0.06, 0.0, None],
        "green_share_vegetated_change_baseline": [0.02, 0.1, -0.12, None],
        "mean_ndvi_trend": [0.003, 0.021, -0.012, None], "green_share_vegetated_trend": [0.0, -0.02, 0.015, None],
    }
    latest = gpd.GeoDataFrame(
        {"district_code": ["A", "B", "C", "D"], "district_name": ["Aa", "Bb", "Cc", "Dd"],
         "source_year": [2024, 2024, 2024, None], "pixel_count": [10, 10, 10, None],
         "valid_fraction": [1.0, 1.0, 1.0, None], "min_ndvi": [0.0, 0.1, 0.2, None],
         "max_ndvi": [0.9, 0.9, 0.9, None], "stddev_ndvi": [0.1, 0.1, 0.1, None],
         **{k: pd.array(v, dtype="Float64") for k, v in values.items()}},
        geometry=[box(257000 + 1000 * i, 471000, 258000 + 1000 * i, 472000) for i in range(4)], crs="EPSG:28992")
    area = AreaConfig(area="t", districts={"path": "x.gpkg"}, years=[2019, 2024],
                      statistics={"green_thresholds": [{"name": "vegetated", "ndvi": 0.2},
                                                       {"name": "dense_vegetation", "label": "dense", "ndvi": 0.5}]})
    breaks = classify(latest["mean_ndvi"].astype(float).to_numpy(), k=3)
    breaks["indicators"] = indicator_breaks(latest, area)
    geojson = write_stats_geojson(latest, folder / "latest.geojson", 2)
    yearly = [{"district_code": "A", "year": y, "pixel_count": 10, "valid_fraction": 1.0, "mean_ndvi": m,
               "median_ndvi": m - 0.01, "green_share_vegetated": g, "green_share_dense_vegetation": g / 2,
               "mean_ndvi_change_baseline": c} for y, m, g, c in ((2019, 0.27, 0.63, 0.0), (2024, 0.21, 0.51, -0.06))]
    path = write_web_map(folder, latest, yearly, [], breaks, title="Indicators", decimals=2,
                         labels={"vegetated": "vegetated", "dense_vegetation": "dense"})
    return path, breaks, geojson


def test_indicator_selector_colours_and_values_follow_the_geojson_and_breaks(browser_page, tmp_path):
    path, breaks, geojson = _indicator_map(tmp_path)
    features = {f["properties"]["district_code"]: f["properties"]
                for f in json.loads(geojson.read_text())["features"]}
    indicators = breaks["indicators"]
    assert {"mean_ndvi", "median_ndvi", "green_share_vegetated", "green_share_dense_vegetation",
            "mean_ndvi_change_baseline", "mean_ndvi_trend", "green_share_vegetated_trend"} <= set(indicators)
    page = _open(browser_page, path)
    options = page.eval_on_selector_all("#indicator-select option", "els => els.map(e => e.value)")
    assert options == ["", *indicators]
    def signed(value: float, spec: str) -> str:  # the page signs positive values only
        return ("+" if value > 0 else "") + format(value, spec)

    formats = {"mean_ndvi": lambda v: f"{v:.2f}", "median_ndvi": lambda v: f"{v:.2f}",
               "green_share_vegetated": lambda v: f"{v * 100:.2f} %",
               "mean_ndvi_change_baseline": lambda v: signed(v, ".2f"),
               "mean_ndvi_trend": lambda v: signed(v, ".4f") + "/yr",
               "green_share_vegetated_trend": lambda v: signed(v * 100, ".2f") + " pp/yr"}
    for field, scale in indicators.items():
        page.select_option("#indicator-select", field)
        assert page.locator("#map").get_attribute("data-view") == f"indicator-{field}"
        fills = dict(page.eval_on_selector_all(
            "#map path.leaflet-interactive", "els => els.map(e => [e.dataset.districtCode, e.getAttribute('fill')])"))
        for code, props in features.items():
            value = props.get(field)
            # the class of the published (rounded) value: these values are not within rounding of a break
            want = "#cccccc" if value is None else scale["colors"][class_index(value, scale["bins"],
                                                                                len(scale["colors"]))]
            assert fills[code] == want, (field, code, value)
        legend = page.locator(".legend .legend-item")
        assert legend.count() == len(scale["colors"]) + 1
        assert page.locator(".legend strong").inner_text().startswith(
            {"mean_ndvi": "Mean NDVI", "median_ndvi": "Median NDVI"}.get(field.split("_change")[0].split("_trend")[0],
                                                                           "Green share"))
        if field in formats:  # the popup shows the selected indicator's value as the GeoJSON holds it
            popup = _click_district(page, 0)
            shown = popup.locator("dd.indicator-value").inner_text()
            expected = formats[field](features["A"][field])
            assert shown == expected, (field, shown, expected)
            page.locator(".leaflet-popup-close-button").click()
            page.locator(".leaflet-popup").wait_for(state="detached")
    # the popup's series over the years: median, green shares and change against the baseline per year
    popup = _click_district(page, 0)
    assert popup.locator("tr[data-year='2019'] td.median_ndvi").inner_text() == "0.26"
    assert popup.locator("tr[data-year='2024'] td.green_share_vegetated").inner_text() == "51.00 %"
    assert popup.locator("tr[data-year='2024'] td.mean_ndvi_change_baseline").inner_text() == "-0.06"
    assert browser_page.errors == [] and browser_page.outside_requests == []


def test_district_shapes_are_the_districts_in_wgs84_rounded_to_six_decimals():
    """Holes and parts kept, every coordinate the pyproj transform of the district's rounded to 1e-6 degrees."""
    from pyproj import Transformer
    from shapely.geometry import MultiPolygon, Polygon

    from ingestion.export.webmap_data import map_payload

    with_hole = Polygon([(257000, 471000), (258000, 471000), (258000, 472000), (257000, 472000)],
                        [[(257200, 471200), (257400, 471200), (257400, 471400), (257200, 471400)]])
    two_parts = MultiPolygon([box(258100.123, 471000.456, 258900.789, 471500), box(258100, 471600, 258500, 472000)])
    latest = gpd.GeoDataFrame({"district_code": ["H", "M"], "district_name": ["hole", "parts"],
                               "source_year": [2024, 2024], "pixel_count": [10, 20], "valid_fraction": [1.0, 1.0],
                               "min_ndvi": [0.1, 0.2], "max_ndvi": [0.5, 0.6], "mean_ndvi": [0.3, 0.4],
                               "stddev_ndvi": [0.1, 0.1]}, geometry=[with_hole, two_parts], crs="EPSG:28992")
    payload = map_payload(latest, [], [], BREAKS, title="t")
    to_wgs84 = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True)

    def expected(ring) -> list[list[float]]:
        return [[round(v, 6) for v in to_wgs84.transform(x, y)] for x, y in ring.coords]

    hole, parts = (f["geometry"] for f in payload["districts"]["features"])
    assert hole == {"type": "Polygon", "coordinates": [expected(with_hole.exterior), expected(with_hole.interiors[0])]}
    assert parts == {"type": "MultiPolygon",
                     "coordinates": [[expected(p.exterior)] for p in two_parts.geoms]}
