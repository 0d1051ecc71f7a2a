"""``ndvi-sample-data OUT_DIR``: write the deterministic synthetic demo area (STAC catalog, districts, truth)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ingestion.sample.generator import generate
from ingestion.sample.scenes import MISFLAGS


def _reference_means(paths: list[Path]) -> dict[int, dict[str, float]]:
    """``zonal_stats_{year}.geojson`` files (district_code, mean_ndvi) -> {year: {code: mean}}."""
    out: dict[int, dict[str, float]] = {}
    for path in paths:
        year = int(path.stem.rsplit("_", 1)[-1])
        features = json.loads(path.read_text())["features"]
        out[year] = {f["properties"]["district_code"]: f["properties"]["mean_ndvi"] for f in features}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ndvi-sample-data", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--years", type=int, nargs="+", default=[2019, 2024])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--districts", type=Path, help="use this districts file instead of synthetic ones")
    parser.add_argument("--reference-stats", type=Path, nargs="*", default=[],
                        help="zonal_stats_{year}.geojson files whose mean_ndvi the districts are painted with")
    parser.add_argument("--all-cloud-years", type=int, nargs="*", default=[])
    parser.add_argument("--misflag", choices=MISFLAGS,
                        help="every item from baseline 04.00 carries this wrong earthsearch:boa_offset_applied flag "
                             "(default: one item of each kind)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = generate(args.out_dir, args.years, seed=args.seed, districts_path=args.districts,
                        reference_means=_reference_means(args.reference_stats),
                        all_cloud_years=tuple(args.all_cloud_years), misflag=args.misflag)
    print(manifest["catalog"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
