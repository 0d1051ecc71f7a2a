"""``ndvi-demo``: generate the synthetic area (once), run every area and year of the demo config, and say
where the outputs are."""

from __future__ import annotations

import json
import sys

from dagster_project.cli import Interrupted, run
from ingestion.config import load_config
from ingestion.paths import data_dir
from ingestion.sample.generator import generate


def main(argv: list[str] | None = None) -> int:
    verbose = "-v" in (sys.argv[1:] if argv is None else argv)
    sample = data_dir() / "sample"
    if not (sample / "catalog" / "catalog.json").exists():
        print(f"generating the synthetic sample area in {sample}")
        generate(sample, [2019, 2024])
    config = load_config()
    try:
        results = run(config, verbose=verbose)
    except Interrupted:
        return 130
    for area in config.areas:
        out = area.area_dir
        print(f"\nOutputs of area {area.code} in {out}:")
        for path in sorted(out.glob("*/composite/*.tif")) + sorted(out.glob("*/stats/*.geojson")) + \
                sorted((out / "latest").glob("*")):
            print(f"  {path.relative_to(out)}")
        breaks_file = out / "latest" / "breaks.json"
        if breaks_file.exists():
            breaks = json.loads(breaks_file.read_text())
            print(f"Breaks ({breaks['scheme']}, k={breaks['k']}) of latest mean NDVI: "
                  f"{', '.join(f'{b:.3f}' for b in breaks['bins'])} (min {breaks['min']:.3f}, max {breaks['max']:.3f})")
    print("\nOpen the Dagster UI with `make dev` to see the runs, lineage, checks and previews.")
    for area in config.areas:
        web_map = area.area_dir / "latest" / "ndvi_map.html"
        if web_map.exists():
            print(f"Web map of {area.code} (open it in a browser, no network needed): {web_map}")
    return 0 if all(r.success for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
