"""``ndvi-demo``: generate the synthetic area (once), run every area and year of the demo config, and say
where the outputs are."""

from __future__ import annotations

import json
import sys

from dagster_project.cli import Interrupted, run
from ingestion.config import load_config
from ingestion.paths import data_dir
from ingestion.sample.generator import generate


def _fmt(value: object, unit: str = "", percent: bool = False, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "–"
    number = value * 100 if percent else value
    return f"{number:{'+' if signed else ''}.2f}{unit}"


def district_figures(latest: dict) -> list[str]:
    """The new statistics of one district of the latest layer (the first with valid pixels), as text lines:
    percentiles, green shares, change against the baseline year and trends (GeoJSON field names)."""
    rows = [f["properties"] for f in latest.get("features", []) if f["properties"].get("source_year") is not None]
    if not rows:
        return ["No district has valid pixels yet."]
    p = sorted(rows, key=lambda r: str(r["district_code"]))[0]
    shares = [k.removeprefix("green_share_") for k in p if k.startswith("green_share_")
              and not k.endswith(("_change_baseline", "_trend"))]
    lines = [f"District {p['district_code']} ({p.get('district_name')}), {p['source_year']}:",
             "  NDVI p10 / p25 / median / p75 / p90: " + " / ".join(
                 _fmt(p.get(k)) for k in ("p10_ndvi", "p25_ndvi", "median_ndvi", "p75_ndvi", "p90_ndvi")),
             "  green share: " + ", ".join(f"{n} {_fmt(p.get('green_share_' + n), ' %', percent=True)}"
                                           for n in shares)]
    if p.get("change_null_reason"):
        lines.append(f"  change against {p.get('baseline_year')}: none ({p['change_null_reason']})")
    else:
        lines.append(f"  change against {p.get('baseline_year')}: mean "
                     f"{_fmt(p.get('mean_ndvi_change_baseline'), signed=True)}, median "
                     f"{_fmt(p.get('median_ndvi_change_baseline'), signed=True)}, " + ", ".join(
                         f"{n} {_fmt(p.get(f'green_share_{n}_change_baseline'), ' pp', percent=True, signed=True)}"
                         for n in shares))
    if p.get("trend_null_reason"):
        lines.append(f"  trend: none ({p['trend_null_reason']}; {p.get('trend_years')} years)")
    else:
        lines.append(f"  trend {p.get('trend_first_year')}-{p.get('trend_last_year')} (Theil-Sen, per year): mean "
                     f"{_fmt(p.get('mean_ndvi_trend'), signed=True)}, " + ", ".join(
                         f"{n} {_fmt(p.get(f'green_share_{n}_trend'), ' pp', percent=True, signed=True)}"
                         for n in shares))
    return lines


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
        latest_file = out / "latest" / "ndvi_stats_latest.geojson"
        if latest_file.exists():
            print("\n".join(district_figures(json.loads(latest_file.read_text()))))
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
