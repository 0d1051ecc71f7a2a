"""Zonal-statistics speed: the dbt model's query shape against the notebook's LATERAL pattern and numpy.

Builds a synthetic NDVI raster (``--size`` px square, 10 m) and ``--districts`` Voronoi polygons in a scratch
schema ``bench`` of the pipeline database, then times each method (best of ``--repeat``) and prints figures and
ratios against the notebook baseline measured in the same run. Run: ``make benchmark`` or
``.venv/bin/python benchmarks/zonal_stats.py --size 4000 --districts 1000``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from odc.geo.geobox import GeoBox
from rasterio.features import rasterize
from rasterio.transform import from_origin
from shapely import MultiPoint, MultiPolygon, box, to_wkb, voronoi_polygons

from ingestion.db import connect
from ingestion.imagery.cog import write_composite_cog
from ingestion.imagery.composite import Composite
from ingestion.load.raster_wkb import raster_wkb

NOTEBOOK = """
    select d.district_code, (s).count, (s).min, (s).max, (s).mean
    from bench.districts d
    cross join lateral (
        select st_summarystatsagg(st_clip(t.rast, d.geometry, true), 1, true, 1) as s
        from bench.tiles t where st_intersects(t.rast, d.geometry) offset 0
    ) x"""
MODEL = """
    with clipped as (
        select d.district_code, st_clip(t.rast, d.geometry, true) as rast
        from bench.tiles t join bench.districts d on st_intersects(st_convexhull(t.rast), d.geometry)
    ), agg as materialized (
        select district_code, st_summarystatsagg(rast, 1, true, 1) as s from clipped group by district_code
    )
    select district_code, (s).count, (s).min, (s).max, (s).mean from agg"""


def _setup(conn, size: int, n: int, tile: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    ndvi = rng.uniform(-0.2, 0.9, (size, size)).astype(np.float32)
    ndvi[rng.random((size, size)) < 0.05] = -9999
    x0, y0 = 300_000.0, 5_800_000.0
    frame = box(x0, y0 - size * 10, x0 + size * 10, y0)
    pts = MultiPoint(rng.uniform((frame.bounds[0], frame.bounds[1]), (frame.bounds[2], frame.bounds[3]), (n, 2)))
    polys = [p.intersection(frame) for p in voronoi_polygons(pts, extend_to=frame).geoms]
    conn.execute("set client_min_messages = warning")
    conn.execute("drop schema if exists bench cascade")
    conn.execute("create schema bench")
    conn.execute("create table bench.districts"
                 " (district_code text primary key, geometry geometry(MultiPolygon, 32632))")
    with conn.cursor() as cur:
        cur.executemany("insert into bench.districts values (%s, st_multi(st_geomfromwkb(%s, 32632)))",
                        [(f"D{i:04d}", to_wkb(MultiPolygon([p]) if p.geom_type == "Polygon" else p))
                         for i, p in enumerate(polys)])
    conn.execute("create table bench.tiles (rid serial, rast raster)")
    with conn.cursor().copy("copy bench.tiles (rast) from stdin") as copy:
        for r in range(0, size, tile):
            for c in range(0, size, tile):
                block = ndvi[r:r + tile, c:c + tile]
                copy.write_row((raster_wkb([block], -9999, (x0 + c * 10, y0 - r * 10, 10, 10), 32632).hex(),))
    conn.execute("create index on bench.tiles using gist (st_convexhull(rast))")
    conn.execute("analyze bench.tiles")
    conn.execute("analyze bench.districts")
    conn.commit()
    return ndvi, polys, from_origin(x0, y0, 10, 10)


def _numpy(ndvi, polys, transform):
    zones = rasterize([(p, i + 1) for i, p in enumerate(polys)], out_shape=ndvi.shape, transform=transform,
                      all_touched=False, dtype="int32")
    valid = ndvi != -9999
    counts = np.bincount(zones[valid], minlength=len(polys) + 1)
    sums = np.bincount(zones[valid], weights=ndvi[valid], minlength=len(polys) + 1)
    return counts[1:], sums[1:] / np.maximum(counts[1:], 1)


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--districts", type=int, default=1000)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with connect() as conn:
        ndvi, polys, transform = _setup(conn, args.size, args.districts, args.tile)
        conn.execute("set parallel_setup_cost = 0; set parallel_tuple_cost = 0; set min_parallel_table_scan_size = 0")

        def run(sql):
            return sorted(conn.execute(sql).fetchall())

        t_notebook, notebook = _best(lambda: run(NOTEBOOK), args.repeat)
        t_model, model = _best(lambda: run(MODEL), args.repeat)
        t_numpy, (counts, means) = _best(lambda: _numpy(ndvi, polys, transform), args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            comp = Composite(ndvi=np.where(ndvi == -9999, np.nan, ndvi), count=np.ones(ndvi.shape, np.uint16),
                             geobox=GeoBox(ndvi.shape, transform, "EPSG:32632"), days=[], radiometry={})
            t_cog, _ = _best(lambda: write_composite_cog(comp, Path(tmp) / "c.tif"), 1)
        conn.execute("drop schema bench cascade")
        conn.commit()
    model_counts = np.array([r[1] or 0 for r in model])
    assert (model_counts == counts).all(), "the model's pixel counts differ from numpy"
    assert np.allclose([r[4] or 0 for r in model], means, atol=1e-6)
    mpx = args.size * args.size / 1e6
    print(f"raster {args.size}x{args.size} ({mpx:.1f} Mpx), {len(polys)} districts, tiles {args.tile} px, best of "
          f"{args.repeat}")
    print(f"  notebook LATERAL (baseline) {t_notebook:7.2f} s   speed-up 1.00x")
    print(f"  dbt model join + parallel   {t_model:7.2f} s   speed-up {t_notebook / t_model:.2f}x")
    print(f"  numpy pixel-centre          {t_numpy:7.2f} s   speed-up {t_notebook / t_numpy:.2f}x (reference)")
    print(f"  COG write of the composite  {t_cog:7.2f} s")
    print(f"  results: counts identical to numpy for all {len(polys)} districts, means within 1e-6; "
          f"notebook rows {len(notebook)}")


if __name__ == "__main__":
    main()
