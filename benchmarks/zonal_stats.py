"""Zonal-statistics speed and correctness: the real ``ndvi_stats_yearly`` model against exactextract and numpy.

For each case the script writes a synthetic 2-band composite COG (band 1 NDVI with 5 % cloud holes, band 2
clear-day count; nodata -9999, 10 m) and its districts, loads both with the pipeline's own loaders into a
scratch database (the embedded cluster's ``ndvi_bench``, or ``--database-url``), builds the dbt models up to
``ndvi_stats_yearly`` with ``dbt run``, then times, best of ``--repeat``:

- the models: the selects dbt compiled for ``ndvi_stats_yearly`` and its companion
  ``ndvi_stats_yearly_distribution`` (percentiles, green-share counts) (``target/compiled/...``, each run after
  its own pre-hooks), i.e. exactly what ``dbt run`` executes, one after the other; the time is their sum;
- exactextract on the COG: count, min, max, mean, stdev of both bands, and quantiles 0.1/0.25/0.5/0.75/0.9 of
  band 1 (NDVI);
- numpy pixel-centre statistics on the arrays in memory (the reference).

It checks that the models' pixel counts equal numpy's, min/max/mean/stddev are within 1e-6, the percentiles
within 1e-3 of ``np.percentile(values, q)`` (they come out exact) and the green-share pixel counts (NDVI >= 0.2
and >= 0.5) equal numpy's, for every district, and prints seconds and the models/exactextract ratio.
Cases: ``enschede`` (the 10 real districts of ``shared/data/enschede`` on a 2.1 Mpx raster over their
extent), ``L`` (25 Mpx, 2,000 Voronoi districts), ``national`` (36 Mpx, 60 x 60 km, 14,000 Voronoi districts: the
Netherlands' buurten at the size of one area; its ``district_tile_masks`` build is the figure to watch), ``tiny``
(the pytest case).
Run: ``make benchmark`` (``CASES="enschede L"``) or ``.venv/bin/python benchmarks/zonal_stats.py enschede L``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.features import rasterize
from shapely import MultiPoint, Point, box, voronoi_polygons

from ingestion.config import DEFAULT_GREEN_THRESHOLDS
from ingestion.db.connection import embedded_dsn, uses_embedded
from ingestion.imagery.cog import write_composite_cog
from ingestion.imagery.composite import Composite
from ingestion.load.postgis import load_composite, publish_districts, stage_districts
from ingestion.load.settings import write_statistics_settings
from ingestion.paths import PROJECT_ROOT

ENSCHEDE_DISTRICTS = PROJECT_ROOT.parent / "shared" / "data" / "enschede" / "enschede_districts.gpkg"
YEAR = 2024
AREA = "bench"  # the area code the benchmark loads its case under
NODATA = -9999.0
TOLERANCE = 1e-6
PERCENTILE_TOLERANCE = 1e-3  # the bound; the model's percentiles come out exact
STATS = ("min", "max", "mean", "stddev")
PERCENTILES = {"p10": 10, "p25": 25, "median": 50, "p75": 75, "p90": 90}  # column prefix -> q (percent)
GREEN_THRESHOLDS = (0.2, 0.5)  # the config defaults (vegetated, dense_vegetation)


@dataclass
class Case:
    """A composite on a 10 m grid (``ndvi`` NaN where no clear day, ``count`` clear days) and its districts."""

    name: str
    ndvi: np.ndarray
    count: np.ndarray
    transform: Affine
    crs: str
    districts: gpd.GeoDataFrame


def _paint(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """NDVI in -0.2..0.9 with 5 % of pixels never clear (NaN, count 0), clear-day counts 1..30 elsewhere."""
    ndvi = rng.uniform(-0.2, 0.9, shape).astype(np.float32)
    count = rng.integers(1, 31, shape).astype(np.uint16)
    cloudy = rng.random(shape) < 0.05
    ndvi[cloudy] = np.nan
    count[cloudy] = 0
    return ndvi, count


def _voronoi_case(name: str, size: int, n: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    x0, y0 = 200_000.0, 500_000.0
    frame = box(x0, y0 - size * 10, x0 + size * 10, y0)
    points = MultiPoint(rng.uniform((frame.bounds[0], frame.bounds[1]), (frame.bounds[2], frame.bounds[3]), (n, 2)))
    polygons = [cell.intersection(frame) for cell in voronoi_polygons(points, extend_to=frame).geoms]
    districts = gpd.GeoDataFrame({"district_code": [f"D{i:05d}" for i in range(len(polygons))],
                                  "district_name": [f"District {i}" for i in range(len(polygons))]},
                                 geometry=polygons, crs="EPSG:28992")
    ndvi, count = _paint((size, size), rng)
    return Case(name, ndvi, count, Affine(10, 0, x0, 0, -10, y0), "EPSG:28992", districts)


def tiny_case(seed: int = 3) -> Case:
    """120 x 90 px, 7 Voronoi districts, one of them all cloud (NULL stats), one with a hole, one off the raster."""
    case = _voronoi_case("tiny", 120, 6, seed)
    case.ndvi, case.count = case.ndvi[:90], case.count[:90]
    x0, y0 = case.transform.c, case.transform.f
    first = case.districts.geometry.iloc[0]
    case.districts.loc[0, "geometry"] = first.difference(first.centroid.buffer(80))
    cloudy = case.districts.geometry.iloc[1]
    zones = rasterize([(cloudy, 1)], out_shape=case.ndvi.shape, transform=case.transform, dtype="uint8")
    case.ndvi[zones == 1] = np.nan
    case.count[zones == 1] = 0
    outside = Point(x0 + 1500, y0 - 1000).buffer(150)
    case.districts.loc[len(case.districts)] = ["D-OUT", "Off the raster", outside]
    return case


def enschede_case(seed: int = 11) -> Case:
    """The 10 real Enschede districts (EPSG:28992) on a 10 m raster over their extent (about 2.1 Mpx)."""
    districts = gpd.read_file(ENSCHEDE_DISTRICTS)[["district_code", "district_name", "geometry"]]
    minx, miny, maxx, maxy = districts.total_bounds
    x0, y0 = np.floor(minx / 10) * 10, np.ceil(maxy / 10) * 10
    width, height = int(np.ceil((maxx - x0) / 10)), int(np.ceil((y0 - miny) / 10))
    ndvi, count = _paint((height, width), np.random.default_rng(seed))
    return Case("enschede", ndvi, count, Affine(10, 0, x0, 0, -10, y0), str(districts.crs), districts)


CASES: dict[str, Callable[[], Case]] = {
    "tiny": tiny_case,
    "enschede": enschede_case,
    "L": lambda: _voronoi_case("L", 5000, 2000, 5),
    "national": lambda: _voronoi_case("national", 6000, 14000, 5),
}


# -- references ---------------------------------------------------------------------------------------------

def numpy_stats(case: Case) -> dict[str, dict[str, Any]]:
    """Pixel-centre statistics per district code, as the models define them (population stddev,
    ``np.percentile`` linear percentiles, pixel counts with NDVI >= each green threshold compared in float64)."""
    n = len(case.districts)
    zones = rasterize([(geom, i + 1) for i, geom in enumerate(case.districts.geometry)], out_shape=case.ndvi.shape,
                      transform=case.transform, all_touched=False, fill=0, dtype="int32").ravel()
    ndvi = case.ndvi.ravel()
    inside = zones > 0
    valid = inside & ~np.isnan(ndvi)
    z, v = zones[valid], ndvi[valid].astype(np.float64)
    count = np.bincount(z, minlength=n + 1)
    district_count = np.bincount(zones[inside], minlength=n + 1)
    clear_days = np.bincount(zones[inside], weights=case.count.ravel()[inside].astype(np.float64), minlength=n + 1)
    mean = np.bincount(z, weights=v, minlength=n + 1) / np.maximum(count, 1)
    var = np.bincount(z, weights=(v - mean[z]) ** 2, minlength=n + 1) / np.maximum(count, 1)
    low, high = np.full(n + 1, np.inf), np.full(n + 1, -np.inf)
    np.minimum.at(low, z, v)
    np.maximum.at(high, z, v)
    order = np.lexsort((v, z))
    starts = np.searchsorted(z[order], np.arange(n + 1))
    values = v[order]
    out = {}
    for i, code in enumerate(case.districts["district_code"], start=1):
        has = count[i] > 0
        out[code] = {
            "pixel_count": int(count[i]), "district_pixel_count": int(district_count[i]),
            "min": float(low[i]) if has else None, "max": float(high[i]) if has else None,
            "mean": float(mean[i]) if has else None, "stddev": float(np.sqrt(var[i])) if has else None,
            "mean_clear_observations": float(clear_days[i] / district_count[i]) if district_count[i] else None,
        }
        pixels = values[starts[i]:starts[i] + count[i]]
        for name, q in PERCENTILES.items():
            out[code][name] = float(np.percentile(pixels, q)) if has else None
        out[code]["green_pixel_counts"] = [int((pixels >= t).sum()) for t in GREEN_THRESHOLDS]
    return out


def exactextract_stats(cog: Path, districts: gpd.GeoDataFrame):
    """exactextract's coverage-weighted statistics (the speed competitor, not the reference): count, min, max,
    mean, stdev of both bands and the quantiles 0.1/0.25/0.5/0.75/0.9 of band 1."""
    import rasterio
    from exactextract import exact_extract
    from exactextract.operation import Operation
    from exactextract.raster import RasterioRasterSource

    with rasterio.open(cog) as dataset:
        # one source per band, kept referenced for the whole call (exactextract does not own them)
        bands = [RasterioRasterSource(dataset, band, name=f"band_{band}") for band in (1, 2)]
        ops = [Operation(stat, f"{band.name()}_{stat}", band)
               for band in bands for stat in ("count", "min", "max", "mean", "stdev")]
        ops += [Operation("quantile", f"band_1_quantile_{q}", bands[0], options={"q": q / 100})
                for q in PERCENTILES.values()]
        # exactextract puts the GeoDataFrame index in a column named `id`: keep the codes in their own column
        return exact_extract(bands, districts.reset_index(drop=True), ops, include_cols=["district_code"],
                             output="pandas")


# -- the model ----------------------------------------------------------------------------------------------

def bench_dsn(database_url: str | None) -> str:
    if database_url:
        return database_url
    if not uses_embedded():
        sys.exit("set --database-url to a scratch PostGIS database: the benchmark replaces its raw.* tables")
    return embedded_dsn("ndvi_bench")


def _dbt(args: list[str], dsn: str, target: Path) -> str:
    env = {**os.environ, "DATABASE_URL": dsn}
    for var in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE"):
        env.pop(var, None)
    cmd = [str(Path(sys.executable).with_name("ndvi-dbt")), *args, "--target-path", str(target)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def load_case(case: Case, dsn: str, workdir: Path) -> Path:
    """Write the case's COG and load it and the districts with the pipeline's loaders; returns the COG path."""
    height, width = case.ndvi.shape
    composite = Composite(ndvi=case.ndvi, count=case.count, days=[], offsets={},
                          geobox=GeoBox((height, width), case.transform, case.crs))
    cog = write_composite_cog(composite, workdir / f"{case.name}.tif")
    with psycopg.connect(dsn) as conn:
        clear_database(conn)
        replace_districts(conn, case.districts)
        load_composite(conn, AREA, YEAR, cog)
        write_statistics_settings(conn, AREA, DEFAULT_GREEN_THRESHOLDS, YEAR)
    return cog


def clear_database(conn: psycopg.Connection) -> None:
    """Drop every dbt model (a fresh build follows) and empty the raw tables of every area; commits."""
    conn.execute("set client_min_messages = warning")
    conn.execute("drop schema if exists analytics cascade")
    for table in ("ndvi_composites", "districts", "districts_staged"):
        if conn.execute("select to_regclass(%s)", (f"raw.{table}",)).fetchone()[0] is not None:
            conn.execute(f"delete from raw.{table}")  # noqa: S608 - a fixed table name
    conn.commit()


def replace_districts(conn: psycopg.Connection, districts: gpd.GeoDataFrame) -> None:
    """Stage and publish the case's districts as the pipeline does (publishing normally rides on a year load)."""
    stage_districts(conn, AREA, districts)
    with conn.transaction():
        publish_districts(conn, AREA)


MODELS = ("ndvi_stats_yearly", "ndvi_stats_yearly_distribution")


@dataclass
class CompiledModel:
    pre_hooks: list[str]
    select: str


@dataclass
class CompiledModels:
    """The compiled selects of the yearly model and its distribution companion, and dbt's build times."""

    models: dict[str, CompiledModel]
    build_seconds: dict[str, float]


def build_model(dsn: str, target: Path, tile_size: str = "auto") -> CompiledModels:
    """``dbt run`` the models and their parents, then read back the selects and pre-hooks dbt compiled."""
    dbt_vars = json.dumps({"tile_size": tile_size})
    _dbt(["run", "--select", *(f"+{m}" for m in MODELS), "--vars", dbt_vars], dsn, target)
    results = json.loads((target / "run_results.json").read_text())["results"]
    build = {r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"] for r in results}
    manifest = json.loads((target / "manifest.json").read_text())
    compiled = {}
    for name in MODELS:
        node = manifest["nodes"][f"model.ndvi_pipeline.{name}"]
        hooks = [hook["sql"] for hook in node["config"]["pre-hook"]]
        compiled[name] = CompiledModel(hooks, next(target.glob(f"compiled/**/{name}.sql")).read_text())
    return CompiledModels(compiled, build)


def _run_select(conn: psycopg.Connection, model: CompiledModel) -> dict[str, dict[str, Any]]:
    """Rows of one compiled select (after its pre-hooks), by district code."""
    with conn.transaction():
        for hook in model.pre_hooks:
            conn.execute(hook)
        cur = conn.execute(model.select)  # noqa: S608 - dbt's compiled model SQL
        names = [c.name for c in cur.description]
        return {r["district_code"]: r for r in (dict(zip(names, row, strict=True)) for row in cur.fetchall())}


def _as_stats(yearly: dict[str, Any], distribution: dict[str, Any] | None) -> dict[str, Any]:
    out = {"pixel_count": yearly["pixel_count"], "district_pixel_count": yearly["district_pixel_count"],
           **{stat: yearly[f"{stat}_ndvi"] for stat in STATS},
           "mean_clear_observations": yearly["mean_clear_observations"]}
    if distribution is not None:
        out["distribution_pixel_count"] = distribution["pixel_count"]
        out.update({name: distribution[f"{name}_ndvi"] for name in PERCENTILES})
        out["green_pixel_counts"] = list(distribution["green_pixel_counts"])
    return out


def model_stats(conn: psycopg.Connection, models: CompiledModels,
                timings: dict[str, list[float]] | None = None) -> dict[str, dict]:
    """Both compiled selects, one after the other (each one's seconds appended to ``timings``), merged."""
    rows = {}
    for name in MODELS:
        start = time.perf_counter()
        rows[name] = _run_select(conn, models.models[name])
        if timings is not None:
            timings.setdefault(name, []).append(time.perf_counter() - start)
    distribution = rows["ndvi_stats_yearly_distribution"]
    return {code: _as_stats(row, distribution.get(code)) for code, row in rows["ndvi_stats_yearly"].items()}


def table_stats(conn: psycopg.Connection, year: int = YEAR) -> dict[str, dict]:
    """The statistics of ``year`` stored in both tables (what an incremental run left there)."""
    tables = {}
    for name in MODELS:
        cur = conn.execute(f"select * from analytics.{name} where area_code = %s and year = %s",  # noqa: S608
                           (AREA, year))
        names = [c.name for c in cur.description]
        tables[name] = {r["district_code"]: r for r in (dict(zip(names, row, strict=True)) for row in cur)}
    distribution = tables["ndvi_stats_yearly_distribution"]
    return {code: _as_stats(row, distribution.get(code)) for code, row in tables["ndvi_stats_yearly"].items()}


def compare(model: dict[str, dict], reference: dict[str, dict], percentiles: bool = True) -> list[str]:
    """Differences between the model's and numpy's statistics (empty when they agree); ``percentiles=False``
    checks ``ndvi_stats_yearly``'s own statistics only."""
    problems = []
    if set(model) != set(reference):
        problems.append(f"district sets differ: {sorted(set(model) ^ set(reference))[:5]}")
    for code in sorted(set(model) & set(reference)):
        got, want = model[code], reference[code]
        for key in ("pixel_count", "district_pixel_count"):
            if got[key] != want[key]:
                problems.append(f"{code} {key}: model {got[key]} numpy {want[key]}")
        if got.get("distribution_pixel_count", want["pixel_count"]) != want["pixel_count"]:
            problems.append(f"{code} distribution pixel_count: model {got['distribution_pixel_count']} "
                            f"numpy {want['pixel_count']}")
        if got.get("green_pixel_counts", want["green_pixel_counts"]) != want["green_pixel_counts"]:
            problems.append(f"{code} green_pixel_counts: model {got['green_pixel_counts']} "
                            f"numpy {want['green_pixel_counts']}")
        checks = [(key, TOLERANCE) for key in (*STATS, "mean_clear_observations")]
        checks += [(key, PERCENTILE_TOLERANCE) for key in PERCENTILES] if percentiles else []
        for key, tolerance in checks:
            if key not in got:
                problems.append(f"{code} {key}: missing from the model")
                continue
            a, b = got[key], want[key]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > tolerance):
                problems.append(f"{code} {key}: model {a} numpy {b}")
    return problems


def max_percentile_error(model: dict[str, dict], reference: dict[str, dict]) -> float:
    """Largest |model - numpy| over every district's percentiles."""
    errors = [abs(model[code][key] - want[key]) for code, want in reference.items() for key in PERCENTILES
              if code in model and want[key] is not None and model[code].get(key) is not None]
    return max(errors, default=0.0)


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def run_case(name: str, dsn: str, repeat: int, tile_size: str = "auto") -> dict[str, float]:
    case = CASES[name]()
    with tempfile.TemporaryDirectory(prefix="zonal-bench-") as tmp:
        workdir = Path(tmp)
        cog = load_case(case, dsn, workdir)
        model = build_model(dsn, workdir / "target", tile_size)
        timings: dict[str, list[float]] = {}
        with psycopg.connect(dsn) as conn:
            tile = conn.execute("select max(st_width(rast)) from analytics.stg_ndvi_tiles").fetchone()[0]
            t_model, got = best_of(lambda: model_stats(conn, model, timings), repeat)
        t_exact, _ = best_of(lambda: exactextract_stats(cog, case.districts), repeat)
        t_numpy, want = best_of(lambda: numpy_stats(case), repeat)
    problems = compare(got, want)
    if problems:
        raise AssertionError(f"{name}: the model differs from numpy:\n  " + "\n  ".join(problems[:20]))
    height, width = case.ndvi.shape
    print(f"{name}: {width}x{height} px ({width * height / 1e6:.1f} Mpx), {len(case.districts)} districts, "
          f"{tile} px tiles, best of {repeat}")
    t_yearly, t_distribution = (min(timings[m]) for m in MODELS)
    print(f"  models, every statistic (sum)       {t_model:7.3f} s   models/exactextract {t_model / t_exact:5.2f}")
    print(f"    ndvi_stats_yearly                 {t_yearly:7.3f} s")
    print(f"    ndvi_stats_yearly_distribution    {t_distribution:7.3f} s")
    print(f"  exactextract (+ band-1 quantiles)   {t_exact:7.3f} s")
    print(f"  numpy pixel-centre (reference)      {t_numpy:7.3f} s   models/numpy {t_model / t_numpy:5.2f}")
    print("  one-off dbt run per model: " + ", ".join(f"{k} {v:.2f} s" for k, v in model.build_seconds.items()))
    print(f"  check: pixel and green-share counts identical to numpy for all {len(want)} districts, "
          f"statistics within {TOLERANCE:g}, percentiles max error {max_percentile_error(got, want):.1e} "
          f"(bound {PERCENTILE_TOLERANCE:g})")
    return {"model": t_model, "exactextract": t_exact, "numpy": t_numpy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", default=["enschede", "L"], choices=sorted(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tile-size", default="auto", help="dbt var tile_size: pixels, or auto (default)")
    parser.add_argument("--database-url", help="scratch PostGIS database (default: embedded ndvi_bench)")
    args = parser.parse_args(argv)
    dsn = bench_dsn(args.database_url)
    for name in args.cases:
        run_case(name, dsn, args.repeat, tile_size=args.tile_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
