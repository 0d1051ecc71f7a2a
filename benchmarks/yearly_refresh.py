"""What the latest export pays to check one year's GeoJSON that has not changed: the inputs digest against
rendering the file again and comparing it (as before the digest).

Every latest export brings every year's file to the current districts (``pipeline.refresh_yearly_exports``),
so an area with 9 years checks 9 files at every new year. For each size (``--districts``, Voronoi districts in
a square of 1 km per 100 districts, every statistic random), one frame is written once; then, alternated
``--repeat`` times: **digest** (``write_stats_geojson`` with the file's sidecar in place) and **render** (the same
call after deleting the sidecar: reprojection, rounding, GDAL's write and the byte comparison). Both leave the
file as it was; the script checks that. Prints the best and median of each, per year's file, and the ratio.

    .venv/bin/python benchmarks/yearly_refresh.py [--districts 12 1000 14000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.export import inputs_digest  # noqa: E402
from ingestion.export.geojson import write_stats_geojson  # noqa: E402
from ingestion.export.stats import PERCENTILE_FIELDS, YEARLY_COLUMNS  # noqa: E402
from ingestion.sample.generator import synthetic_districts  # noqa: E402


def year_frame(districts: int, seed: int = 3):
    """A yearly layer of ``districts`` Voronoi districts (EPSG:32632, the generator's) with random statistics."""
    side = 1000.0 * max(1.0, (districts / 100) ** 0.5)
    frame = synthetic_districts(seed, n=districts, size_m=(side, side))[["district_code", "district_name", "geometry"]]
    rng = np.random.default_rng(seed)
    frame["year"] = 2024
    for column in (*YEARLY_COLUMNS, *PERCENTILE_FIELDS, "green_share_vegetated"):
        frame[column] = rng.integers(0, 5000, len(frame)) if column == "pixel_count" else rng.random(len(frame))
    return frame


def timed_write(frame, path: Path) -> float:
    """Seconds of one ``write_stats_geojson(frame, path, 2)``."""
    started = time.perf_counter()
    write_stats_geojson(frame, path, 2)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--districts", type=int, nargs="+", default=[12, 1000, 14000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| districts | digest: best / median ms | render and compare: best / median ms | render / digest |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for districts in args.districts:
            frame = year_frame(districts)
            path = Path(tmp) / f"zonal_stats_{districts}.geojson"
            write_stats_geojson(frame, path, 2)
            written = path.read_bytes(), path.stat().st_mtime_ns
            times: dict[str, list[float]] = {"digest": [], "render": []}
            for _ in range(args.repeat):
                times["digest"].append(timed_write(frame, path))
                inputs_digest.sidecar(path).unlink()
                times["render"].append(timed_write(frame, path))
            if (path.read_bytes(), path.stat().st_mtime_ns) != written:
                raise SystemExit(f"{path} changed: an unchanged year must be left as it is")
            best = {name: min(values) * 1000 for name, values in times.items()}
            median = {name: statistics.median(values) * 1000 for name, values in times.items()}
            print(f"| {districts} | {best['digest']:.1f} / {median['digest']:.1f} | {best['render']:.1f} / "
                  f"{median['render']:.1f} | {median['render'] / median['digest']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
