"""``ndvi-demo``: generate the synthetic area (once) and materialise every asset for the demo years."""

import json
import logging
import sys

import dagster as dg

from ingestion.paths import data_dir
from ingestion.sample.generator import generate


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sample = data_dir() / "sample"
    if not (sample / "catalog" / "catalog.json").exists():
        print(f"generating the synthetic sample area in {sample}")
        generate(sample, [2019, 2024])
    # import after the sample exists: the code location reads the demo config at import
    from dagster_project.runner import materialize_area
    from dagster_project.settings import AREA

    instance = dg.DagsterInstance.get()
    materialize_area(AREA.years, instance=instance)
    out = AREA.output_dir
    print("\nOutputs:")
    for path in sorted(out.glob("*/composite/*.tif")) + sorted(out.glob("*/stats/*.geojson")) + \
            sorted((out / "latest").glob("*")):
        print(f"  {path}")
    breaks = json.loads((out / "latest" / "breaks.json").read_text())
    print(f"\nBreaks ({breaks['scheme']}, k={breaks['k']}) of latest mean NDVI: "
          f"{', '.join(f'{b:.3f}' for b in breaks['bins'])} (min {breaks['min']:.3f}, max {breaks['max']:.3f})")
    print("Open the Dagster UI with `make dev` to see the runs, lineage, checks and previews.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
