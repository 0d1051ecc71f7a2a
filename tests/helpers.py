"""Test helpers: a real STAC API on 127.0.0.1, free ports, truth windows."""

from __future__ import annotations

import importlib.util
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import rasterio
import rasterio.windows
from odc.geo.geobox import GeoBox
from rasterio.features import rasterize

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 that answers 500 (or stalls ``delay`` seconds) for the first ``fail_first``
    requests, then forwards to ``upstream``. ``requests`` counts what it received."""

    def __init__(self, upstream: str, fail_first: int = 0, delay: float = 0.0) -> None:
        import http.server
        import threading

        self.upstream, self.fail_first, self.delay, self.requests = upstream, fail_first, delay, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                proxy.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                if proxy.requests <= proxy.fail_first:
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"code": "InternalError", "description": "injected failure"}')
                    return
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command,
                                             headers={"Content-Type": self.headers.get("Content-Type", "")})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    payload = resp.read().replace(proxy.upstream.encode(), proxy.url.encode())
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            do_GET = do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def numpy_zonal(cog, districts) -> dict:
    """Pixel-centre zonal statistics with numpy on the exported COG."""
    with rasterio.open(cog) as src:
        ndvi = src.read(1)
        zones = rasterize([(g, i + 1) for i, g in enumerate(districts.geometry)], out_shape=ndvi.shape,
                          transform=src.transform, fill=0, all_touched=False, dtype="int32")
        nodata = src.nodata
    out = {}
    for i, code in enumerate(districts["district_code"]):
        inside = zones == i + 1
        values = ndvi[inside & (ndvi != nodata)].astype(np.float64)
        out[code] = (int(inside.sum()), values)
    return out


def zonal_benchmark() -> ModuleType:
    """``benchmarks/zonal_stats.py`` as a module (its case builders, loaders and numpy reference)."""
    if "zonal_stats" in sys.modules:
        return sys.modules["zonal_stats"]
    spec = importlib.util.spec_from_file_location("zonal_stats", PROJECT_ROOT / "benchmarks" / "zonal_stats.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["zonal_stats"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def count_renders(monkeypatch) -> list[Path]:
    """Wrap ``GeoDataFrame.to_file`` (it still writes) so that each call appends its target path to the
    returned list: how many files a piece of code actually rendered."""
    import geopandas as gpd

    renders: list[Path] = []
    to_file = gpd.GeoDataFrame.to_file

    def counted(self, *args, **kwargs):
        renders.append(args[0])
        return to_file(self, *args, **kwargs)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", counted)
    return renders


#: Columns the database fills with the time of the write, not from the event.
WRITE_TIME_COLUMNS = {"create_timestamp", "migration_completed"}


def sqlite_tables(folder: Path) -> dict[str, dict[str, list[tuple]]]:
    """Every row of every table of every SQLite file in ``folder``, by file and table, in rowid order, without
    :data:`WRITE_TIME_COLUMNS`."""
    out = {}
    for path in sorted(folder.glob("*.db")):
        with sqlite3.connect(path) as conn:
            tables = {}
            for (name,) in conn.execute("select name from sqlite_master where type = 'table'").fetchall():
                columns = [r[1] for r in conn.execute(f'pragma table_info("{name}")')
                           if r[1] not in WRITE_TIME_COLUMNS]
                listed = ", ".join(f'"{c}"' for c in columns)
                # names from the file's own catalogue
                tables[name] = conn.execute(f'select {listed} from "{name}" order by rowid').fetchall()  # noqa: S608
            out[path.name] = tables
    return out
