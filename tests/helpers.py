"""Test helpers: a real STAC API on 127.0.0.1, free ports, truth windows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
from odc.geo.geobox import GeoBox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def stac_api(catalog: Path) -> Iterator[str]:
    """Serve a static catalog as a STAC API (stac-fastapi-static) on 127.0.0.1; yields its URL."""
    port = free_port()
    env = {**os.environ, "CATALOG_HREF": str(catalog), "APP_HOST": "127.0.0.1", "APP_PORT": str(port),
           "RELOAD": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "stac_fastapi.static.app"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"STAC API did not start: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def read_on_geobox(path: Path, geobox: GeoBox, band: int = 1) -> np.ndarray:
    """Read the window of ``path`` that ``geobox`` covers (same CRS and pixel alignment assumed)."""
    with rasterio.open(path) as src:
        window = rasterio.windows.from_bounds(*geobox.boundingbox, transform=src.transform)
        return src.read(band, window=window.round_offsets().round_lengths())
