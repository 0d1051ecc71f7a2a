"""COG temp files: unique names, removed on failure and after a kill -9; concurrent runs publish one whole COG."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin

from ingestion.imagery.cog import StreamedCogWriter, clean_stale_temp_files, temp_prefix, write_array_cog

WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin
from ingestion.imagery.cog import StreamedCogWriter

size, seed, pause = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
geobox = GeoBox((size, size), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
rng = np.random.default_rng(seed)
with StreamedCogWriter(Path(sys.argv[1]), geobox) as writer:
    for row in range(0, size, 256):
        roi = (slice(row, min(row + 256, size)), slice(0, size))
        h = roi[0].stop - roi[0].start
        ndvi = rng.uniform(-0.2, 0.9, (h, size)).astype(np.float32)
        ndvi[:, ::7] = np.nan
        writer.write(roi, np.stack([ndvi, np.full((h, size), 3, np.float32)]))
        print("block", flush=True)
        time.sleep(pause)
"""


def _writer(path: Path, size: int = 1024, seed: int = 1, pause: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(size), str(seed), str(pause)],
                            stdout=subprocess.PIPE, text=True)


def _levels(path: Path) -> list[np.ndarray]:
    """Full resolution and every overview level of both bands."""
    out = []
    with rasterio.open(path) as src:
        levels = [0, *range(len(src.overviews(1)))]
        for i, _ in enumerate(levels):
            kwargs = {} if i == 0 else {"overview_level": i - 1}
            with rasterio.open(path, **kwargs) as level:
                out.append(level.read())
    return out


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_three_concurrent_runs_publish_one_whole_cog(tmp_path):
    """Three writers with different data race on one target: the published COG is one writer's, whole (every
    level of both bands), never a mix of blocks from several."""
    seeds = (1, 2, 3)
    singles = [tmp_path / f"single-{seed}" / "ndvi_composite_2024.tif" for seed in seeds]
    alone = [_writer(path, seed=seed) for path, seed in zip(singles, seeds, strict=True)]
    assert [p.wait(timeout=120) for p in alone] == [0, 0, 0]
    expected = {seed: _levels(path) for seed, path in zip(seeds, singles, strict=True)}
    assert len(expected[1]) >= 3  # full resolution and at least two overviews
    for a, b in zip(expected[1], expected[2], strict=True):
        assert not np.array_equal(a[0], b[0])  # each level tells the writers apart

    target = tmp_path / "year" / "ndvi_composite_2024.tif"
    runs = [_writer(target, seed=seed) for seed in seeds]
    assert [p.wait(timeout=120) for p in runs] == [0, 0, 0]
    got = _levels(target)
    whole = [seed for seed, levels in expected.items() if len(levels) == len(got)
             and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, levels, strict=True))]
    assert len(whole) == 1, "the published COG is not exactly one writer's"
    assert not _temp_files(target.parent)


def test_failed_write_removes_its_temp_files(tmp_path):
    geobox = GeoBox((300, 300), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
    path = tmp_path / "ndvi_composite_2019.tif"
    with pytest.raises(RuntimeError, match="boom"):
        with StreamedCogWriter(path, geobox) as writer:
            writer.write((slice(0, 300), slice(0, 300)), np.zeros((2, 300, 300), np.float32))
            raise RuntimeError("boom")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_kill_during_write_leaves_nothing_after_the_next_run(tmp_path):
    path = tmp_path / "ndvi_composite_2024.tif"
    proc = _writer(path, size=2048, pause=0.5)
    assert proc.stdout.readline().strip() == "block"  # it is writing
    assert _temp_files(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _temp_files(tmp_path)  # what a kill leaves behind

    ndvi = np.zeros((256, 256), np.float32)
    geobox = GeoBox((256, 256), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
    write_array_cog(ndvi, np.ones((256, 256)), geobox, path)
    assert not _temp_files(tmp_path)
    with rasterio.open(path) as src:
        assert src.read(2).min() == 1


def test_day_old_leftovers_of_other_hosts_are_cleaned(tmp_path):
    path = tmp_path / "ndvi_composite_2024.tif"
    fresh = tmp_path / f"{path.name}.tmp-otherhost-1-abcd1234.part.tif"
    old = tmp_path / f"{path.name}.tmp-otherhost-2-abcd1234.cog.tif.ovr.tmp"
    mine = tmp_path / f"{temp_prefix(path)}.part.tif"
    for p in (fresh, old, mine):
        p.write_bytes(b"x")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    assert clean_stale_temp_files(path) == [old]
    assert fresh.exists() and mine.exists()


def test_streamed_overviews_equal_gdal_nearest_whatever_the_blocks(tmp_path):
    """Overviews decimated block by block equal GDAL's nearest overviews of the whole image (a size that
    every factor divides), and do not depend on how the grid is cut into blocks."""
    import rasterio.shutil

    size = 1536
    geobox = GeoBox((size, size), from_origin(300_000, 5_800_000, 10, 10), "EPSG:32632")
    rng = np.random.default_rng(3)
    ndvi = rng.uniform(-0.2, 0.9, (size, size)).astype(np.float32)
    ndvi[::5, ::3] = np.nan
    count = rng.integers(0, 7, (size, size)).astype(np.float32)

    by_rows = tmp_path / "rows.tif"
    write_array_cog(ndvi, count, geobox, by_rows, rows=1024)
    odd = tmp_path / "odd.tif"
    with StreamedCogWriter(odd, geobox) as writer:  # blocks not aligned on any overview factor
        for row in range(0, size, 300):
            for col in range(0, size, 700):
                roi = (slice(row, min(row + 300, size)), slice(col, min(col + 700, size)))
                writer.write(roi, np.stack([ndvi[roi], count[roi]]))

    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", dtype="float32", count=2, width=size, height=size,
                       crs="EPSG:32632", transform=geobox.transform, nodata=-9999.0) as dst:
        dst.write(np.stack([np.where(np.isnan(ndvi), np.float32(-9999.0), ndvi), count]))
    gdal = tmp_path / "gdal.tif"
    rasterio.shutil.copy(plain, gdal, driver="COG", BLOCKSIZE="256", OVERVIEW_RESAMPLING="NEAREST")

    expected = _levels(gdal)
    assert len(expected) == 4  # 768, 384, 192
    for path in (by_rows, odd):
        got = _levels(path)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.descriptions == ("ndvi_median", "valid_observations") and src.nodata == -9999.0
