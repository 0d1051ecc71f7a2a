"""Published files are written under a unique temporary name and renamed; a full disk names the file and the
free space, keeps the previous file and leaves no temporary file (a real tmpfs, as root)."""

from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin
from shapely.geometry import box

from ingestion.area_outputs import aoi_path, read_aoi
from ingestion.atomic import OutputWriteError, published, temp_name, write_text
from ingestion.export.breaks import write_breaks
from ingestion.export.geojson import write_stats_geojson
from ingestion.imagery.cog import write_array_cog
from ingestion.pipeline import build_aoi

BREAKS = {"scheme": "FisherJenks", "k": 2, "bins": [0.2, 0.6], "min": 0.1, "max": 0.6, "colors": ["#a", "#b"]}


def test_temp_names_are_unique_beside_the_target_and_keep_the_suffix(tmp_path):
    target = tmp_path / "latest" / "aoi_boundary.gpkg"
    names = {temp_name(target) for _ in range(50)}
    assert len(names) == 50
    assert all(n.parent == target.parent and n.suffix == ".gpkg" and n.name.startswith(".aoi_boundary.tmp-")
               for n in names)
    fixed = tmp_path / "latest" / "breaks.json.tmp"  # the fixed name the old writer used is left alone
    fixed.parent.mkdir()
    fixed.write_text("another writer's")
    write_breaks(BREAKS, tmp_path / "latest" / "breaks.json")
    assert fixed.read_text() == "another writer's"
    assert sorted(p.name for p in fixed.parent.iterdir()) == ["breaks.json", "breaks.json.tmp"]


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 1 MB tmpfs, filled up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "latest").mkdir()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(folder) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


def test_full_disk_names_the_file_and_free_space_and_keeps_the_previous_file(full_tmpfs):
    breaks = full_tmpfs / "latest" / "breaks.json"
    write_breaks(BREAKS, breaks)
    before = breaks.read_text()
    _fill(full_tmpfs)
    with pytest.raises(OutputWriteError) as raised:
        write_text(full_tmpfs / "latest" / "ndvi_map.html", "<html>" + "x" * 200_000)
    message = str(raised.value)
    assert message.startswith(f"writing {full_tmpfs / 'latest' / 'ndvi_map.html'} failed: No space left on device")
    assert f"free in {full_tmpfs / 'latest'})" in message and "(0 bytes free" in message
    with pytest.raises(OutputWriteError, match=f"writing {breaks} failed: No space left on device"):
        write_breaks({**BREAKS, "bins": [0.1] * 100_000}, breaks)
    assert breaks.read_text() == before
    assert sorted(p.name for p in (full_tmpfs / "latest").iterdir()) == ["breaks.json"]  # no temporary file


def test_full_disk_during_a_cog_write_names_the_cog_and_free_space_and_keeps_the_previous_cog(full_tmpfs):
    folder = full_tmpfs / "2024" / "composite"
    cog = folder / "ndvi_composite_2024.tif"
    small = GeoBox((32, 32), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
    write_array_cog(np.full((32, 32), 0.5, np.float32), np.ones((32, 32)), small, cog)
    before = cog.read_bytes()
    _fill(full_tmpfs)
    rng = np.random.default_rng(3)  # noise: DEFLATE cannot squeeze it into the last free blocks
    size = 512
    big = GeoBox((size, size), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
    with pytest.raises(OutputWriteError) as raised:
        write_array_cog(rng.random((size, size), np.float32), np.ones((size, size)), big, cog)
    message = str(raised.value)
    assert message.startswith(f"writing {cog} failed: No space left on device"), message
    assert f"free in {folder})" in message
    assert cog.read_bytes() == before  # the previous COG, whole
    with rasterio.open(cog) as src:
        assert src.read(1)[0, 0] == pytest.approx(0.5)
    assert sorted(p.name for p in folder.iterdir()) == [cog.name]  # no temporary file


def test_a_rewritten_aoi_is_read_again_not_served_from_the_cache(tmp_path):
    """read_aoi keeps each AOI file's last read (a batch reads it once per year); the next read after
    aoi_boundary rewrote it (same size: one square moved) returns the new geometry, and a deleted one fails."""
    area = SimpleNamespace(area_dir=tmp_path / "west", boundary=None, name="west")

    def write(x0: float) -> None:
        districts = gpd.GeoDataFrame({"district_code": ["a"]}, geometry=[box(x0, 0, x0 + 1000, 1000)],
                                     crs="EPSG:28992")
        build_aoi(area, districts)

    write(0)
    size = aoi_path(area).stat().st_size
    assert read_aoi(area)[0].bounds == (0, 0, 1000, 1000) and read_aoi(area)[1] == "EPSG:28992"
    write(500)
    assert aoi_path(area).stat().st_size == size
    assert read_aoi(area)[0].bounds == (500, 0, 1500, 1000)
    aoi_path(area).unlink()
    with pytest.raises(FileNotFoundError, match="materialise the aoi_boundary asset first"):
        read_aoi(area)


def test_keep_if_equal_leaves_an_equal_file_untouched_and_replaces_another(tmp_path):
    path = tmp_path / "out" / "layer.geojson"
    write_text(path, "one")
    before = (path.stat().st_ino, path.stat().st_mtime_ns)
    with published(path, keep_if_equal=True) as tmp:
        tmp.write_text("one")
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == before
    with published(path, keep_if_equal=True) as tmp:
        tmp.write_text("two")
    assert path.read_text() == "two" and path.stat().st_ino != before[0]
    assert [p.name for p in path.parent.iterdir()] == ["layer.geojson"]  # no temporary file either time


def test_full_disk_during_a_statistics_geojson_names_it_and_keeps_the_previous_one(full_tmpfs):
    path = full_tmpfs / "2024" / "stats" / "zonal_stats_2024.geojson"
    frame = gpd.GeoDataFrame({"district_code": ["A"], "mean_ndvi": [0.5]}, geometry=[box(0, 0, 100, 100)],
                             crs="EPSG:28992")
    write_stats_geojson(frame, path)
    before = path.read_bytes()
    _fill(full_tmpfs)
    many = gpd.GeoDataFrame({"district_code": [f"D{i}" for i in range(20_000)], "mean_ndvi": 0.25},
                            geometry=[box(i, 0, i + 1, 1) for i in range(20_000)], crs="EPSG:28992")
    with pytest.raises(OutputWriteError, match=f"writing {path} failed: No space left on device"):
        write_stats_geojson(many, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [".zonal_stats_2024.geojson.inputs.json",
                                                              "zonal_stats_2024.geojson"]
