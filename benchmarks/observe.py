"""Observation against compositing (issue 20): how much an observation of many area-years costs next to the work
it can save.

A synthetic province of ``--areas`` municipalities (``benchmarks/areas.py``'s generator, cached in ``--cache``)
over the sample generator's catalog (``local-stac``), each municipality an area (``districts.area_column``), for
``--years``. In one process, with every AOI written first (not timed):

- ``observe``: :func:`ingestion.observe.observe` of every area-year (one catalog walk, searches in a thread
  pool), best of ``--repeat``;
- ``per area-year``: the composite's own :func:`ingestion.scenes.select_scenes` once per area-year (one walk
  each), what an observation without the shared walk would cost;
- ``composite``: :func:`ingestion.pipeline.composite_year` of every area-year (``force``: offset check and
  composite, COG written), once.

Prints the seconds of each and observe / composite (target <= 10 %). The default is small (24 areas of 2 x 2 km)
so that it runs in a minute or two; ``--km 8`` is the size of ``benchmarks/areas.py``:

    .venv/bin/python benchmarks/observe.py [--areas 24] [--km 2] [--districts 6] [--years 2021 2022] [--repeat 3]
                                           [--province DIR]  # a province benchmarks/areas.py generated
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.areas import load_config_reading_areas  # noqa: E402
from ingestion.observe import observe  # noqa: E402
from ingestion.pipeline import build_aoi, composite_year, prepare_districts, read_aoi  # noqa: E402
from ingestion.scenes import select_scenes  # noqa: E402


def _areas_benchmark():
    spec = importlib.util.spec_from_file_location("areas_benchmark", ROOT / "benchmarks" / "areas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", type=int, default=24, help="municipalities (areas)")
    parser.add_argument("--districts", type=int, default=6, help="districts per municipality")
    parser.add_argument("--km", type=float, default=2.0, help="side of a municipality, km (areas.py uses 8)")
    parser.add_argument("--years", type=int, nargs="+", default=[2021, 2022])
    parser.add_argument("--repeat", type=int, default=3, help="observations timed (best is printed)")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "benchmarks" / "areas")
    parser.add_argument("--province", type=Path,
                        help="an already generated province folder of benchmarks/areas.py (read only)")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "benchmarks" / "observe",
                        help="output folder (AOIs, composites)")
    args = parser.parse_args()

    province = args.province or _areas_benchmark().generate_province(args.cache, args.areas, args.districts,
                                                                      args.km, args.years)
    work = args.work / province.name
    config_path = work / "observe.yaml"
    work.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump({
        "years": args.years, "output_dir": str(work / "data"),
        "districts": {"path": str(province / "districts.gpkg"), "area_column": "gm_code"},
        "imagery": {"source": "local-stac", "options": {"catalog_path": str(province / "catalog" / "catalog.json")}},
    }))
    config = load_config_reading_areas(config_path)
    for area in config.areas:
        build_aoi(area, prepare_districts(area))
    area_years = [(a, y) for a in config.areas for y in a.years]

    observations = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        observed = observe(config.areas)
        observations.append(time.perf_counter() - t0)
    assert all(o.version for o in observed), [o for o in observed if o.error][:3]

    t0 = time.perf_counter()
    for area, year in area_years:
        aoi, crs = read_aoi(area)
        select_scenes(area, year, aoi, crs)
    per_area_year = time.perf_counter() - t0

    t0 = time.perf_counter()
    for area, year in area_years:
        composite_year(area, year, force=True)
    composite = time.perf_counter() - t0

    best = min(observations)
    print(f"{len(config.areas)} areas x {len(args.years)} years ({args.km:g} x {args.km:g} km each, "
          f"{sum(o.items for o in observed)} kept items in all)")
    print(f"observe (one walk, thread pool):     {best:7.2f} s  (best of {args.repeat}: "
          f"{', '.join(f'{s:.2f}' for s in observations)})")
    print(f"select_scenes once per area-year:    {per_area_year:7.2f} s")
    print(f"composite every area-year (forced):  {composite:7.2f} s")
    print(f"observe / composite: {100 * best / composite:.1f} % (target <= 10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
