"""A statistics GeoJSON is rendered again only when its inputs changed or the file is not the one written.

Real files; GeoDataFrame.to_file is wrapped (and still called) to count the renders."""

from __future__ import annotations

import json
import os

import geopandas as gpd
import pytest
from shapely.geometry import box

from ingestion.export import geojson, inputs_digest
from ingestion.export.geojson import write_stats_geojson
from tests.helpers import count_renders


@pytest.fixture
def renders(monkeypatch):
    return count_renders(monkeypatch)


def _frame(mean=0.4567):
    return gpd.GeoDataFrame({"district_code": ["A", "B"], "district_name": ["a", None], "year": [2024, 2024],
                             "mean_ndvi": [mean, None], "pixel_count": [10, 0]},
                            geometry=[box(252000, 471000, 252100, 471100), box(252100, 471000, 252200, 471100)],
                            crs="EPSG:28992")


def _means(path):
    return gpd.read_file(path)["mean_ndvi"].tolist()[:1]


def test_the_same_frame_is_not_rendered_again_and_the_file_is_untouched(tmp_path, renders):
    path = tmp_path / "stats" / "zonal_stats_2024.geojson"
    write_stats_geojson(_frame(), path, 2)
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
    sidecar_before = inputs_digest.sidecar(path).stat().st_mtime_ns
    write_stats_geojson(_frame(), path, 2)
    assert len(renders) == 1
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert inputs_digest.sidecar(path).stat().st_mtime_ns == sidecar_before
    assert sorted(p.name for p in path.parent.iterdir()) == [".zonal_stats_2024.geojson.inputs.json",
                                                              "zonal_stats_2024.geojson"]


@pytest.mark.parametrize("change", ["value", "geometry", "decimals", "crs", "column", "writer"])
def test_any_change_to_the_inputs_renders_again(tmp_path, renders, monkeypatch, change):
    path = tmp_path / "latest.geojson"
    write_stats_geojson(_frame(), path, 2)
    frame, decimals = _frame(), 2
    if change == "value":
        frame = _frame(mean=0.4667)
    elif change == "geometry":
        frame.geometry = frame.geometry.translate(xoff=0.5)
    elif change == "decimals":
        decimals = 3
    elif change == "crs":  # the same coordinates in another CRS: a different place
        frame = frame.set_crs("EPSG:32631", allow_override=True)
    elif change == "column":
        frame = frame.rename(columns={"pixel_count": "pixels"})
    else:  # the rendering itself changed: files written before are rendered again
        monkeypatch.setattr(geojson, "WRITER_VERSION", geojson.WRITER_VERSION + 1)
    write_stats_geojson(frame, path, decimals)
    assert len(renders) == 2
    expected = {"value": [0.47], "decimals": [0.457]}.get(change, [0.46])
    assert _means(path) == expected


@pytest.mark.parametrize("how", ["edited", "deleted", "replaced", "sidecar_broken", "sidecar_deleted"])
def test_a_file_not_as_written_is_rendered_again(tmp_path, renders, how):
    path = tmp_path / "zonal_stats_2024.geojson"
    write_stats_geojson(_frame(), path, 2)
    good = path.read_bytes()
    side = inputs_digest.sidecar(path)
    if how == "edited":
        stat = path.stat()
        with path.open("r+b") as file:  # same size, same inode: only the modification time tells
            file.write(b" ")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))  # as an edit 10 ms later
    elif how == "deleted":
        path.unlink()
    elif how == "replaced":
        other = tmp_path / "other.geojson"
        other.write_bytes(good)
        other.replace(path)
    elif how == "sidecar_broken":
        side.write_text("{not json")
    else:
        side.unlink()
    write_stats_geojson(_frame(), path, 2)
    assert len(renders) == 2
    assert path.read_bytes() == good
    assert json.loads(side.read_text())["digest"] == inputs_digest.frame_digest(_frame(), geojson.WRITER_VERSION, 2)


def test_digest_tells_null_from_nan_and_row_order(tmp_path):
    frame = _frame()
    digest = inputs_digest.frame_digest(frame, 1)
    assert inputs_digest.frame_digest(_frame(), 1) == digest
    assert inputs_digest.frame_digest(frame.iloc[::-1], 1) != digest
    assert inputs_digest.frame_digest(frame.assign(district_name=["a", ""]), 1) != digest
    assert inputs_digest.frame_digest(frame, 2) != digest


def _typed_frame() -> gpd.GeoDataFrame:
    """One column of each kind the statistics frames hold."""
    import pandas as pd

    return gpd.GeoDataFrame({
        "code": ["A", "B", "C"],
        "name": ["a", None, "None"],
        "count": [10, 0, 3],
        "mean": [0.5, float("nan"), 0.25],
        "nullable_int": pd.array([1, None, 0], dtype="Int64"),
        "nullable_float": pd.array([0.5, None, 0.0], dtype="Float64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
        "text": pd.array(["x", None, "z"], dtype="string"),
        "updated_at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        "names": [["dense"], ["dense", "sparse"], []],
        "label": pd.Series(["a", None, "c"], dtype=object),
    }, geometry=[box(0, 0, 1, 1), None, box(1, 0, 2, 1)], crs="EPSG:28992")


@pytest.mark.parametrize("column, value", [
    ("code", "D"), ("name", "None"), ("name", "b"), ("count", 11), ("mean", 0.0), ("nullable_int", 0),
    ("nullable_int", 2), ("nullable_float", 0.0), ("flag", False), ("text", "None"), ("names", ["sparse"]),
    ("label", "None"), ("updated_at", "2024-01-02T00:00:00.000001Z"), ("geometry", box(0, 0, 1, 2))])
def test_digest_sees_one_value_change_in_a_column_of_any_kind(column, value):
    """The second row's value changed (most are missing there: NA, None or NaN against a value, or 0): the
    digest differs; an equal frame built again digests alike."""
    import pandas as pd

    frame = _typed_frame()
    digest = inputs_digest.frame_digest(frame)
    assert inputs_digest.frame_digest(_typed_frame()) == digest
    changed = frame.copy()
    if column == "updated_at":
        value = pd.Timestamp(value)
    changed[column] = [*frame[column].iloc[:1], value, *frame[column].iloc[2:]]
    if column != "geometry":
        changed[column] = changed[column].astype(frame[column].dtype)
    assert [str(t) for t in changed.dtypes] == [str(t) for t in frame.dtypes]
    assert inputs_digest.frame_digest(changed) != digest
