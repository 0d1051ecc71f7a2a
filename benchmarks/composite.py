"""Composite speed and memory: this project's streamed composite against the plain odc-stac baseline.

For each size (Mpx of the 10 m grid) a synthetic catalog is generated once with the project's sample generator
(a square of Voronoi districts, year 2024, 7 items kept) into a cache folder and reused afterwards. Each
measurement runs in a fresh subprocess, so its peak RSS is its own. Printed per size: seconds (best and
median of ``--repeat``), Mpx·items/s, peak RSS (max over repeats) and the throughput ratio to the baseline.

- ``project``: ``stream_composite`` (blocks on local threads, COG written as blocks complete, overviews),
  after the per-item offset check (``ingestion.imagery.offset_check``), timed on its own: its share of the
  project's time is printed (``check``).
- ``baseline``: one ``odc.stac.load(items, bands=[red, nir, scl], geobox=..., chunks=2048,
  groupby="solar_day")``, SCL mask, NDVI, dask median and count computed into memory (no COG written; it
  fuses a day's items before masking, so it is wrong on clouds, but it is the speed to reach).

``--remote --latency-ms N`` serves the cached catalogs' COGs from a range-serving HTTP server on 127.0.0.1
that adds N ms to every request (a distant bucket), and reads them from there; requests and bytes are counted.

    .venv/bin/python benchmarks/composite.py [--sizes 4 25 100] [--repeat 3] [--cache DIR]
                                             [--remote --latency-ms 150]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CACHE = Path(os.environ.get("NDVI_BENCH_CACHE", ROOT / "data" / "benchmarks" / "composite"))
YEAR = 2024


REMOTE_CRS = "EPSG:28992"  # the remote case composites onto RD New, shifted and rotated against the UTM COGs


def area_folder(cache: Path, mpx: int, remote: bool) -> Path:
    """Local runs read the sample layout (256 px tiles); remote runs Earth Search's (1024 px, PREDICTOR=2)."""
    return cache / (f"{mpx}mpx-earth-search" if remote else f"{mpx}mpx")


def generate_catalog(cache: Path, mpx: int, remote: bool = False) -> Path:
    """The cached sample area of about ``mpx`` megapixels (generated on first use); returns its folder."""
    from ingestion.sample.generator import MARGIN, generate, synthetic_districts

    out = area_folder(cache, mpx, remote)
    if (out / "truth" / "truth.json").exists():
        return out
    side = (mpx * 1e6) ** 0.5 * 10 - 2 * MARGIN  # metres, so the imagery grid is about mpx megapixels
    out.mkdir(parents=True, exist_ok=True)
    districts = synthetic_districts(7, n=max(8, mpx * 2), size_m=(side, side))
    districts.to_file(out / "districts_in.gpkg", driver="GPKG")
    generate(out, [YEAR], seed=7, districts_path=out / "districts_in.gpkg",
             cog_layout="earth-search" if remote else "sample")
    return out


def _items_and_grid(area: Path, url: str | None = None, remote: bool | None = None):
    """The area's kept items and its 10 m grid: in the districts' CRS, or in RD New when ``remote`` (default:
    when ``url`` is given, where the cache folder is served and the assets' hrefs then point)."""
    import geopandas as gpd

    from ingestion.imagery.grid import target_geobox
    from ingestion.sources.base import SceneQuery
    from ingestion.sources.local_stac import LocalStacSource
    from ingestion.vector_utils import to_wgs84

    districts = gpd.read_file(area / "districts_in.gpkg")
    if remote or (remote is None and url):
        districts = districts.to_crs(REMOTE_CRS)
    aoi = districts.union_all()
    query = SceneQuery.for_year(to_wgs84(aoi, districts.crs), YEAR)
    items = LocalStacSource(area / "catalog" / "catalog.json").select(query).items
    if url:  # the cache folder is served at ``url``
        for item in items:
            for asset in item.assets.values():
                asset.href = f"{url}/{Path(asset.href).resolve().relative_to(area.parent.resolve())}"
    return items, target_geobox(aoi, districts.crs.to_string(), 10)


def floor(area: Path) -> tuple[int, int, dict]:
    """Requests and bytes any reader needs for the AOI (every kept item's red, nir and scl), from the tile
    tables; and the tile table of each file, by its path relative to the cache folder."""
    from tests.cog_tiles import TileTable

    items, geobox = _items_and_grid(area, remote=True)
    requests = size = 0
    tables = {}
    for item in items:
        for asset in item.assets.values():
            path = Path(asset.href)
            rel = str(path.resolve().relative_to(area.parent.resolve()))
            tables[rel] = TileTable.read(path)
            n, b = tables[rel].floor(path, geobox)
            requests, size = requests + n, size + b
    return requests, size, tables


def run_project(area: Path, chunk: int, url: str | None = None) -> None:
    from ingestion.imagery.composite import stream_composite
    from ingestion.imagery.gdal_env import configure_client, gdal_options
    from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES
    from ingestion.imagery.offset_check import check_offsets

    items, geobox = _items_and_grid(area, url)
    configure_client(gdal_options())
    with tempfile.TemporaryDirectory(dir=area) as tmp:
        started = time.perf_counter()
        check = check_offsets(items, geobox, DEFAULT_MASKED_CLASSES, gdal_options())
        checked = time.perf_counter()
        stream_composite(items, geobox, Path(tmp) / "composite.tif", chunk=chunk, offsets=check.decisions)
        seconds = time.perf_counter() - started
    _report(seconds, geobox, items, check_seconds=checked - started)


def run_baseline(area: Path, chunk: int, url: str | None = None) -> None:
    import dask
    import odc.stac

    from ingestion.imagery.gdal_env import configure_client, gdal_options
    from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES

    items, geobox = _items_and_grid(area, url)
    configure_client(gdal_options())
    started = time.perf_counter()
    ds = odc.stac.load(items, bands=["red", "nir", "scl"], geobox=geobox, chunks={"x": 2048, "y": 2048},
                       groupby="solar_day", resampling="nearest", dtype="uint16", nodata=0)
    red, nir = ds.red.astype("float32") * 1e-4, ds.nir.astype("float32") * 1e-4
    clear = ~ds.scl.isin(sorted(DEFAULT_MASKED_CLASSES)) & (ds.red > 0)
    ndvi = ((nir - red) / (nir + red)).where(clear)
    dask.compute(ndvi.median("time"), ndvi.count("time"))
    _report(time.perf_counter() - started, geobox, items)


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM (reset by exec, unlike ru_maxrss, which a forked child inherits
    from its parent, e.g. one that just generated a 100 Mpx catalog)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report(seconds: float, geobox, items, check_seconds: float = 0.0) -> None:
    rss_mb = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "mpx": geobox.width * geobox.height / 1e6,
                      "items": len(items), "check_seconds": check_seconds}))


def tile_fetches(log: list[tuple[str, int, int]], tables: dict) -> tuple[int, int, float]:
    """From a request log: full-resolution tiles fetched (counting repeats), distinct tiles, the most times one
    tile was fetched."""
    by_file: dict[str, list[tuple[int, int]]] = {}
    for rel, first, last in log:
        by_file.setdefault(rel, []).append((first, last))
    total = distinct = 0
    most = 0.0
    for rel, ranges in by_file.items():
        if rel not in tables:
            continue
        counts = {t: c for t, c in tables[rel].fetched(ranges).items() if t[0] == 0 and c >= 0.5}
        total += round(sum(counts.values()))
        distinct += len(counts)
        most = max(most, *counts.values(), 0.0)
    return total, distinct, most


def measure(method: str, area: Path, chunk: int, url: str | None = None) -> dict:
    """One run in a fresh interpreter; its JSON line."""
    remote = ["--url", url] if url else []
    proc = subprocess.run([sys.executable, __file__, "--child", method, str(area), "--chunk", str(chunk), *remote],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{method} on {area} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 25, 100], help="grid sizes, Mpx")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method and size (best and median)")
    parser.add_argument("--chunk", type=int, default=1024, help="block size of the project's composite, px")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="folder of generated catalogs (env NDVI_BENCH_CACHE; default data/benchmarks/composite)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "AREA"), help=argparse.SUPPRESS)
    parser.add_argument("--remote", action="store_true", help="read the COGs over HTTP from a local range server")
    parser.add_argument("--latency-ms", type=float, default=150.0, help="with --remote: added to every request")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate_catalog(args.cache, args.generate, args.remote)
        return 0
    if args.child:
        method, area = args.child
        {"project": run_project, "baseline": run_baseline}[method](Path(area), args.chunk, args.url)
        return 0
    if args.remote:
        from tests.range_server import RangeServer

        args.cache.mkdir(parents=True, exist_ok=True)
        with RangeServer(args.cache, latency=args.latency_ms / 1000) as server:
            return _compare(args, server)
    return _compare(args, None)


def _compare(args: argparse.Namespace, server) -> int:
    """Both methods on every size, interleaved; prints the table."""
    rows = []
    floors: dict[int, tuple[int, int, dict]] = {}
    for mpx in args.sizes:
        # generated in a child too, so this process stays small
        remote = ["--remote"] if server else []
        subprocess.run([sys.executable, __file__, "--generate", str(mpx), "--cache", str(args.cache), *remote],
                       check=True)
        area = area_folder(args.cache, mpx, bool(server))
        runs: dict[str, list[dict]] = {"project": [], "baseline": []}
        traffic: dict[str, list[tuple[int, int]]] = {"project": [], "baseline": []}
        fetches: dict[str, list[tuple[int, int, float]]] = {"project": [], "baseline": []}
        if server:
            floors[mpx] = floor(area)
        for _ in range(args.repeat):  # interleaved, so load changes on the shared machine hit both alike
            for method in runs:
                before = (server.requests, server.bytes_sent, len(server.log)) if server else (0, 0, 0)
                runs[method].append(measure(method, area, args.chunk, server.url if server else None))
                if server:
                    traffic[method].append((server.requests - before[0], server.bytes_sent - before[1]))
                    fetches[method].append(tile_fetches(server.log[before[2]:], floors[mpx][2]))
        for method, results in runs.items():
            secs = [r["seconds"] for r in results]
            first = results[0]
            rows.append({"size": mpx, "method": method, "mpx": first["mpx"], "items": first["items"],
                         "best": min(secs), "median": statistics.median(secs),
                         "rss": max(r["rss_mb"] for r in results),
                         "check": statistics.median(r["check_seconds"] / r["seconds"] for r in results),
                         "requests": statistics.median(t[0] for t in traffic[method]) if server else None,
                         "mb": statistics.median(t[1] for t in traffic[method]) / 1e6 if server else None,
                         "fetches": fetches[method][0] if server else None})
        print(f"done {mpx} Mpx", file=sys.stderr, flush=True)

    where = f"remote, {args.latency_ms:g} ms per request" if server else "local files"
    print(f"\n{where}; chunk {args.chunk} px, best of {args.repeat} (median in brackets), {os.cpu_count()} cores\n")
    print("| grid | items | method | seconds | Mpx·items/s | peak RSS MB | throughput vs baseline | offset check "
          "share | requests | MB read |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(r for r in rows if r["size"] == row["size"] and r["method"] == "baseline")
        rate = row["mpx"] * row["items"] / row["best"]
        ratio = base["best"] / row["best"]
        check = f"{100 * row['check']:.1f} %" if row["method"] == "project" else "–"
        traffic = f"{row['requests']:.0f} | {row['mb']:.1f}" if server else "– | –"
        print(f"| {row['mpx']:.1f} Mpx | {row['items']} | {row['method']} | {row['best']:.2f} ({row['median']:.2f}) "
              f"| {rate:.1f} | {row['rss']:.0f} | {ratio:.2f}x | {check} | {traffic} |")
    if server:
        print("\n| grid | method | requests / floor | bytes / floor | tile fetches / distinct tiles (most of one) |")
        print("|---|---|---|---|---|")
        for row in rows:
            n_floor, b_floor, _ = floors[row["size"]]
            total, distinct, most = row["fetches"]
            print(f"| {row['mpx']:.1f} Mpx | {row['method']} | {row['requests']:.0f} / {n_floor} = "
                  f"{row['requests'] / n_floor:.2f} | {row['mb']:.1f} MB / {b_floor / 1e6:.1f} MB = "
                  f"{row['mb'] * 1e6 / b_floor:.2f} | {total} / {distinct} ({most:.1f}) |")
    by = {(r["size"], r["method"]): r for r in rows}
    sizes = sorted(args.sizes)
    if len(sizes) > 1:
        small, mid = sizes[0], sizes[1]
        print(f"\nRSS({mid} Mpx) / RSS({small} Mpx), project: "
              f"{by[(mid, 'project')]['rss'] / by[(small, 'project')]['rss']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
