"""Files kept open across a batch's reads: reused within the batch, reopened when rewritten, closed after."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ingestion.imagery import datasets
from ingestion.imagery.datasets import keeping_open, opened


def _write(path, value: int, size: int = 16) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16",
                       crs="EPSG:32631", transform=from_origin(600000, 5800000, 10, 10)) as dst:
        dst.write(np.full((1, size, size), value, dtype="uint16"))


def test_a_batch_reuses_a_file_reopens_it_when_rewritten_and_closes_it_at_the_end(tmp_path):
    path = str(tmp_path / "red.tif")
    _write(path, 100)
    with keeping_open():
        with opened(path) as first:
            assert first.read(1)[0, 0] == 100
        with opened(path) as again:
            assert again is first  # the header was not parsed again
        with opened(path, {"GDAL_HTTP_MULTIRANGE": "YES"}) as other_options:
            assert other_options is not first  # a file kept open is reused only with the same GDAL options
        _write(path, 200, size=20)  # rewritten in place
        with opened(path) as rewritten:
            assert rewritten is not first and rewritten.read(1)[0, 0] == 200
    assert first.closed and rewritten.closed and not datasets._open


def test_outside_a_batch_each_use_opens_and_closes(tmp_path):
    path = str(tmp_path / "red.tif")
    _write(path, 7)
    with opened(path) as src:
        assert src.read(1)[3, 3] == 7
    assert src.closed and not datasets._open
