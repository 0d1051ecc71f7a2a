"""The yearly loop: wall time of one demo year through ``ndvi-pipeline run`` next to the sum of its steps.

Generates the demo sample area once (cached in ``--cache``), then runs ``ndvi-pipeline run --year Y`` ``--repeat``
times in fresh processes against the test database (``ndvi_test`` of the embedded cluster, or ``DATABASE_URL``)
with a scratch Dagster instance. For each run it prints the wall time of the whole command (process start, code
location, Dagster, dbt), the sum of the step times the command reports, and for the dbt steps their time next to
dbt's own node time (from ``run_results.json``), and whether dbt re-parsed the project. Run:
``.venv/bin/python benchmarks/yearly_loop.py`` (``make benchmark-loop``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.db.connection import embedded_dsn, uses_embedded  # noqa: E402
from ingestion.sample.generator import generate  # noqa: E402

STEP = re.compile(r"^ok\s+(\S+)\s+.*?\s([\d.]+) s")


def _dbt_invocations_since(started: float) -> list[Path]:
    target = ROOT / "dbt_project" / "target" / "dagster"
    return [d for d in target.glob("dbt_*_models-*") if d.is_dir() and d.stat().st_mtime >= started]


def _dbt_figures(invocation: Path) -> tuple[float, bool]:
    """Sum of node execution times (s) and whether dbt parsed the project fully."""
    results = json.loads((invocation / "run_results.json").read_text())
    nodes = sum(r["execution_time"] for r in results["results"])
    log = (invocation / "dbt.log").read_text() if (invocation / "dbt.log").exists() else ""
    return nodes, "Unable to do partial parsing" in log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "benchmark-loop")
    args = parser.parse_args()

    sample = args.cache / "sample"
    if not (sample / "catalog" / "catalog.json").exists():
        generate(sample, [2019, 2024])
    config = args.cache / "loop.yaml"
    config.write_text(yaml.safe_dump({
        "area": "loop", "districts": {"path": str(sample / "districts.gpkg")}, "years": [2019, 2024],
        "imagery": {"source": "local-stac", "options": {"catalog_path": str(sample / "catalog" / "catalog.json")}},
        "output_dir": str(args.cache / "out")}))
    env = {**os.environ, "DAGSTER_HOME": tempfile.mkdtemp(prefix="loop-dagster-")}
    if uses_embedded():
        env["DATABASE_URL"] = embedded_dsn("ndvi_test")
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text((ROOT / "dagster_project" / "dagster.yaml").read_text())
    command = [str(Path(sys.executable).with_name("ndvi-pipeline")), "run", "--config", str(config),
               "--year", str(args.year)]
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm-up: tables, inputs, caches

    walls, step_sums, dbt_ratios = [], [], []
    print(f"one year ({args.year}) of the demo area through `ndvi-pipeline run`, {args.repeat} runs")
    print(f"{'run':>4} {'wall s':>8} {'steps s':>8} {'other s':>8}  dbt steps: step s / node s, full parse?")
    for i in range(args.repeat):
        started = time.time()
        t0 = time.perf_counter()
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t0
        steps = {m.group(1) + str(n): float(m.group(2)) for n, line in enumerate(out.splitlines())
                 if (m := STEP.match(line))}
        dbt_steps = [v for k, v in steps.items() if k.startswith("dbt_")]
        invocations = sorted(_dbt_invocations_since(started), key=lambda d: d.stat().st_mtime)
        figures = [_dbt_figures(d) for d in invocations]
        pairs = [f"{s:.1f}/{n:.1f}{' FULL' if full else ''}" for s, (n, full) in zip(dbt_steps, figures,
                                                                                     strict=False)]
        dbt_ratios += [s / n for s, (n, _) in zip(dbt_steps, figures, strict=False) if n > 0]
        walls.append(wall)
        step_sums.append(sum(steps.values()))
        print(f"{i + 1:>4} {wall:8.1f} {sum(steps.values()):8.1f} {wall - sum(steps.values()):8.1f}  "
              f"{', '.join(pairs)}")
    print(f"median wall {statistics.median(walls):.1f} s, median sum of steps {statistics.median(step_sums):.1f} s, "
          f"median dbt step / node time {statistics.median(dbt_ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
