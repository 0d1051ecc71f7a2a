"""In a real browser, on real pipeline output: the web map, the dbt docs, and the Dagster UI launching a year.

One module-scoped build (2019, all-cloud 2021, 2024) against the test PostGIS, recorded in a Dagster instance of
its own, so the Dagster UI test can launch a partition whose upstream is already materialised.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import dagster as dg
import geopandas as gpd
import psycopg
import pytest

from dagster_project.cli import run
from ingestion.cli.dbt import DBT_PROJECT_DIR
from ingestion.config import load_config
from ingestion.export.webmap_data import change_scale
from tests.browser import ARTIFACTS, serve_directory
from tests.conftest import PROJECT_ROOT
from tests.helpers import free_port
from tests.pipeline_env import AREA, reset_database, write_area_config

YEARS = [2019, 2021, 2024]  # 2021 is all cloud in the sample area
YEAR = 2024  # the partition the Dagster UI test launches
CODE_LOCATION = "ndvi_pipeline"  # workspace.yaml
NO_DATA = "#cccccc"
MODEL_ID = "model.ndvi_pipeline.ndvi_stats_yearly"


@pytest.fixture(scope="module")
def built(sample_area, database_url, tmp_path_factory) -> Iterator[dict]:
    environ = dict(os.environ)  # the code location and in-process dbt runs set NDVI_CONFIG and PG*: undo after
    root = tmp_path_factory.mktemp("browser_e2e")
    out = root / "data"
    config = write_area_config(sample_area, out, YEARS)
    reset_database(database_url, out)
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster_project" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        results = run(load_config(config), years=YEARS, instance=instance, echo=lambda line: None)
    assert all(r.success for r in results)
    try:
        yield {"out": out / AREA, "config": config, "home": home, "url": database_url, "sample": sample_area}
    finally:
        os.environ.clear()
        os.environ.update(environ)


def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _expected_class(value: float, bins: list[float]) -> int:
    """mapclassify's rule: the first class whose upper bound is >= value; above the last bound, the last class."""
    for i, upper in enumerate(bins):
        if value <= upper:
            return i
    return len(bins) - 1


def _open_map(browser_page, out: Path):
    page = browser_page.page
    page.goto((out / "latest" / "ndvi_map.html").as_uri())
    page.wait_for_selector("#map path.leaflet-interactive")
    return page


def _fills(page) -> list[tuple[str, str]]:
    return [tuple(x) for x in page.eval_on_selector_all(
        "#map path.leaflet-interactive", "els => els.map(e => [e.dataset.districtCode, e.getAttribute('fill')])")]


def _choose_view(page, label: str) -> None:
    page.locator(".leaflet-control-layers-base label", has_text=label).click()
    page.locator(".legend strong", has_text=label).wait_for()


def test_map_draws_one_polygon_per_district_in_the_colour_of_its_class(built, browser_page):
    codes = sorted(gpd.read_file(built["sample"]["districts"])["district_code"])
    breaks = json.loads((built["out"] / "latest" / "breaks.json").read_text())
    page = _open_map(browser_page, built["out"])

    def expected(values: dict[str, float | None], bins: list[float], colors: list[str]) -> list[tuple[str, str]]:
        return sorted((code, NO_DATA if values.get(code) is None else colors[_expected_class(values[code], bins)])
                      for code in codes)

    fills = _fills(page)
    assert len(fills) == len(codes) and sorted(c for c, _ in fills) == codes
    latest = dict(_query(built["url"], "select district_code, mean_ndvi from analytics.ndvi_stats_latest"))
    assert sorted(fills) == expected(latest, breaks["bins"], breaks["colors"])
    assert len({fill for _, fill in fills}) >= 3  # the classes really differ across districts

    for year in (2019, 2021):
        _choose_view(page, f"Mean NDVI {year}")
        means = dict(_query(built["url"], "select district_code, mean_ndvi from analytics.ndvi_stats_yearly"
                                          " where year = %s", (year,)))
        assert len(_fills(page)) == len(codes)
        assert sorted(_fills(page)) == expected(means, breaks["bins"], breaks["colors"])
    assert {fill for _, fill in _fills(page)} == {NO_DATA}  # 2021: all cloud

    _choose_view(page, "Change in mean NDVI to 2024")
    change = dict(_query(built["url"], "select district_code, mean_ndvi_change from analytics.ndvi_change"
                                       " where year = 2024 and previous_year = 2019"))
    assert len(change) == len(codes)
    scale = change_scale()
    assert sorted(_fills(page)) == expected(change, [*scale["bins"], math.inf], scale["colors"])
    assert browser_page.outside_requests == [] and browser_page.errors == []


def _ndvi(value) -> str:
    return "–" if value is None or value != value else f"{value:.2f}"


def _row_text(props: dict) -> dict[str, str]:
    """What the popup shows for one GeoJSON feature's statistics."""
    fraction = props.get("valid_fraction")
    count = props.get("pixel_count")
    return {"mean_ndvi": _ndvi(props.get("mean_ndvi")), "min_ndvi": _ndvi(props.get("min_ndvi")),
            "max_ndvi": _ndvi(props.get("max_ndvi")),
            "valid_fraction": "–" if fraction is None else f"{fraction * 100:.2f} %",
            "pixel_count": "–" if count is None else str(int(count))}


def test_clicking_a_district_shows_its_geojson_values(built, browser_page):
    out = built["out"]
    latest = json.loads((out / "latest" / "ndvi_stats_latest.geojson").read_text())["features"]
    yearly = {year: {f["properties"]["district_code"]: f["properties"] for f in json.loads(
        (out / str(year) / "stats" / f"zonal_stats_{year}.geojson").read_text())["features"]} for year in YEARS}
    points = gpd.read_file(out / "latest" / "ndvi_stats_latest.geojson").geometry.representative_point()
    page = _open_map(browser_page, out)

    for feature, point in zip(latest, points, strict=True):
        props = feature["properties"]
        xy = page.evaluate("""([lat, lon]) => {
            const p = window.ndviMap.map.latLngToContainerPoint([lat, lon]);
            const r = window.ndviMap.map.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""", [point.y, point.x])
        page.mouse.click(*xy)
        popup = page.locator(".leaflet-popup .ndvi-popup")
        popup.wait_for()
        assert popup.locator("h3").inner_text() == props["district_name"]
        assert popup.locator("dd.code").inner_text() == props["district_code"]
        assert popup.locator("dd.source-year").inner_text() == str(props["source_year"])
        for year in YEARS:
            row = popup.locator(f"tr[data-year='{year}']")
            shown = {key: row.locator(f"td.{key}").inner_text() for key in _row_text({})}
            assert shown == _row_text(yearly[year][props["district_code"]]), (props["district_code"], year)
        assert {key: popup.locator(f"tr.source-year td.{key}").inner_text() for key in _row_text({})} == \
            _row_text(props)  # the latest layer's values are those of source_year
        assert popup.locator("tr[data-year='2024'] td.mean_ndvi_change").inner_text() != "–"
        page.locator(".leaflet-popup-close-button").click()
        page.locator(".leaflet-popup").wait_for(state="detached")
    assert browser_page.outside_requests == [] and browser_page.errors == []


def test_dbt_docs_show_the_contract_columns_and_tests_of_ndvi_stats_yearly(built, browser_page, tmp_path):
    target = tmp_path / "dbt_docs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    proc = subprocess.run([str(Path(sys.executable).with_name("ndvi-dbt")), "docs", "generate", "--target-path",
                           str(target)], env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    assert proc.returncode == 0, proc.stdout[-3000:]
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    columns = list(manifest["nodes"][MODEL_ID]["columns"])
    types = {name: col["type"] for name, col in catalog["nodes"][MODEL_ID]["columns"].items()}
    tests = [n for n in manifest["nodes"].values()
             if n["resource_type"] == "test" and n.get("attached_node") == MODEL_ID]
    assert len(columns) >= 10 and len(tests) >= 10 and set(types) == set(columns)

    page = browser_page.page
    with serve_directory(target) as url:
        page.goto(f"{url}/#!/model/{MODEL_ID}")
        rows = page.locator("tr.column-row")
        rows.first.wait_for()
        shown = [rows.nth(i).locator("td").nth(0).inner_text().strip() for i in range(rows.count())]
        assert shown == columns
        for i, name in enumerate(columns):  # types come from the database (catalog), so the models really exist
            assert rows.nth(i).locator("td").nth(1).inner_text().strip().lower() == types[name].lower()

        rows.filter(has_text=re.compile(r"^\s*min_ndvi\s")).first.click()
        details = page.locator("tr.column-row-selected + tr")
        details.get_by_text("Generic Data Tests").wait_for()
        generic = {t["test_metadata"]["name"] for t in tests if t.get("column_name") == "min_ndvi"}
        assert generic and all(details.get_by_text(re.compile(rf"^{name}\(")).count() == 1 for name in generic)

        referenced = page.locator("#referenced_by + *")
        referenced.get_by_text("Data Tests", exact=True).click()
        listed = set(referenced.locator("li a").all_inner_texts())
        assert {t["name"] for t in tests} <= listed
        referenced.get_by_text("Exposures", exact=True).click()
        assert "ndvi_web_map" in referenced.locator("li a").all_inner_texts()

        page.goto(f"{url}/#!/overview")
        page.get_by_text("NDVI per district: the data contract").first.wait_for()
        body = page.locator("body").inner_text()
        for heading in ("Models, grain and keys", "When statistics are NULL", "chooses its year",
                        "What survives a re-run or a re-districting"):
            assert heading in body

        page.goto(f"{url}/#!/macro/macro.ndvi_pipeline.test_accepted_range")
        page.get_by_text("Every non-NULL value of the column lies in").first.wait_for()
        assert "Highest accepted value" in page.locator("body").inner_text()
    assert browser_page.outside_requests == []


PARTITION_PLACEHOLDER = "Select a partition or create one"


def launch_partition_from_ui(page, base_url: str, job: str, partition: Mapping[str, str]) -> float:
    """Launch one partition of ``job`` with the UI's own clicks; returns the time (epoch seconds) of the launch
    click. The run's page is open when it returns (its id is the last part of ``page.url``).

    Job page → "Materialize all…" → in the launch dialog, per dimension of ``partition`` (for an area × year
    job ``{"area": ..., "year": ...}``), pick its key in that dimension's partition selector → "Launch 1 run"
    → the toast's "View" link to the run. Every partition-specific click is here.
    """
    from playwright.sync_api import expect

    page.goto(f"{base_url}/locations/{CODE_LOCATION}/jobs/{job}")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.locator(".dagster-dialog")
    for dimension, key in partition.items():
        # the selector under the dimension's heading (each dimension has its own)
        section = dialog.get_by_text(dimension, exact=True).locator(
            f"xpath=ancestor::*[contains(., '{PARTITION_PLACEHOLDER}')][1]")
        section.get_by_text(PARTITION_PLACEHOLDER).click()
        page.get_by_placeholder("Filter partitions").fill(key)
        page.get_by_role("menuitem").filter(has_text=key).filter(has_not_text="Select all").click()
        page.keyboard.press("Escape")  # closes the partition list, not the dialog
        # the list closes with an animation: wait, or the next dimension's list would open beside it
        expect(page.get_by_placeholder("Filter partitions")).to_have_count(0)
    dialog.get_by_text("1 partition", exact=True).wait_for()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    launch.wait_for()
    clicked = time.time()
    launch.click()
    page.get_by_text("View", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    return clicked


def run_id_of(page) -> str:
    return page.url.rsplit("/", 1)[-1].split("?")[0]


def show_asset_graph(page, base_url: str, assets: Iterable[str], screenshot: Path) -> None:
    """The global asset lineage with every group expanded; ``assets`` must be drawn in the viewport."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/asset-groups")
    page.get_by_role("button", name="panel_show_right", exact=True).click()  # the asset list beside the graph
    page.locator("#zoom-slider-container").get_by_role("button", name="settings").click()
    page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    page.keyboard.press("Escape")
    for asset in assets:
        expect(page.get_by_text(asset, exact=True)).to_be_in_viewport()
    screenshot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(screenshot))


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]


def _wait_for_dagster(url: str, proc: subprocess.Popen, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _graphql(url, "{ assetNodes { id } }")["assetNodes"]:
                return
        except (OSError, KeyError, TypeError, ValueError):
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "dagster dev did not come up"
        time.sleep(1)


@pytest.mark.slow
def test_dagster_ui_launches_a_year_partition_that_succeeds(built, browser_page):
    """Issue 9's loop from the UI: one area × year partition of ``yearly_ndvi``, launched with clicks, recomputes
    the year (its GeoJSON is written again) and succeeds; prints start → success and click → success."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(built["home"]), "NDVI_CONFIG": str(built["config"]),
           "DATABASE_URL": built["url"]}
    yearly_geojson = built["out"] / str(YEAR) / "stats" / f"zonal_stats_{YEAR}.geojson"
    yearly_geojson.unlink()  # the run launched from the UI must write it again
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_dagster(url, proc)
        _graphql(url, "mutation { setNuxSeen }")  # what "Skip" on the one-off "Join the community" modal records
        page = browser_page.page
        page.set_viewport_size({"width": 1600, "height": 900})
        show_asset_graph(page, url, ["ndvi_composite", "ndvi_stats_yearly", "latest_exports"],
                         ARTIFACTS / "dagster_asset_graph.png")

        clicked = launch_partition_from_ui(page, url, "yearly_ndvi", {"area": AREA, "year": str(YEAR)})
        run_id = run_id_of(page)
        deadline = time.monotonic() + 240
        query = ("query($id: ID!) { runOrError(runId: $id) { ... on Run { jobName status startTime endTime "
                 "tags { key value } stepStats { stepKey startTime endTime } } } }")
        while (run := _graphql(url, query, {"id": run_id})["runOrError"])["status"] not in ("SUCCESS", "FAILURE",
                                                                                            "CANCELED"):
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
            time.sleep(0.5)
        succeeded = time.time()
        print(f"\nyearly_ndvi {AREA}|{YEAR} from the UI: run start → success "
              f"{run['endTime'] - run['startTime']:.1f} s, launch click → success {succeeded - clicked:.1f} s")
        steps = {s["stepKey"]: s["endTime"] - s["startTime"] for s in run["stepStats"] if s["endTime"]}
        invocations = sorted((PROJECT_ROOT / "dbt_project" / "target" / "dagster").glob("dbt_yearly_models-*"),
                             key=lambda p: p.stat().st_mtime)
        nodes = sum(r["execution_time"] for r in json.loads((invocations[-1] / "run_results.json").read_text())[
            "results"])
        print(f"steps (s): {', '.join(f'{k} {v:.1f}' for k, v in steps.items())}; "
              f"dbt_yearly_models node time {nodes:.1f} s")
        assert run["status"] == "SUCCESS" and run["jobName"] == "yearly_ndvi"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/partition/area"] == AREA and tags["dagster/partition/year"] == str(YEAR)
        assert tags["dagster/partition"] == f"{AREA}|{YEAR}"  # dimensions in name order
        page.reload()
        page.get_by_text("Success", exact=True).first.wait_for()
        assert yearly_geojson.exists()
        assert {f["properties"]["district_code"] for f in json.loads(yearly_geojson.read_text())["features"]} == \
            set(gpd.read_file(built["sample"]["districts"])["district_code"])

        web_map = built["out"] / "latest" / "ndvi_map.html"  # by the build; its link is in the asset's metadata
        page.goto(f"{url}/assets/latest_exports")
        link = page.get_by_role("link", name=web_map.as_uri())
        link.first.wait_for()
        assert link.first.get_attribute("href") == web_map.as_uri()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
