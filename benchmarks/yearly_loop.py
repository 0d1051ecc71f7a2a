"""The yearly loop: wall time of one demo year through ``ndvi-pipeline run`` next to the sum of its steps.

Generates the demo sample area once (cached in ``--cache``), then runs ``ndvi-pipeline run --year Y`` ``--repeat``
times in fresh processes against the test database (``ndvi_test`` of the embedded cluster, or ``DATABASE_URL``)
with a scratch Dagster instance. For each run it prints the wall time of the whole command (process start, code
location, Dagster, dbt), the sum of the step times the command reports, and for the dbt steps their time next to
dbt's own node time (from ``run_results.json``), and how the process parsed the dbt project (once, partially or
fully). Run:
``.venv/bin/python benchmarks/yearly_loop.py`` (``make benchmark-loop``).

The no-op case (issue 20, ``--noop``): in ONE process (interpreter start and imports excluded), a year through
``dagster_project.cli.run`` twice on a fresh output folder, the second with nothing changed (its composite and
load are skipped: same inputs version), for the demo area and for an area of ``--noop-mpx`` megapixels (default
25, the composite benchmark's size, generated once into its cache). Printed per area: both wall times, the
ratio second/first (target <= 0.1x) and the step times of both runs. ``--noop-only`` skips the subprocess loop:
``.venv/bin/python benchmarks/yearly_loop.py --noop-only [--noop-mpx 25]``.
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
#: The dbt steps of one `ndvi-pipeline run --year Y`, in order: area inputs, the year, the latest layer.
DBT_STEPS = ("stg_districts", "yearly", "latest")


def _dbt_invocations_since(started: float, prefix: str = "dbt_*_models") -> list[Path]:
    """dbt's invocation folders (``target/dagster/``, see dagster_project/dbt_core.py) made since ``started``."""
    target = ROOT / "dbt_project" / "target" / "dagster"
    folders = [d for d in target.glob(f"{prefix}-*") if d.is_dir() and d.stat().st_mtime >= started]
    return sorted(folders, key=lambda d: d.stat().st_mtime)


def _node_seconds(invocation: Path) -> float:
    """Sum of dbt's node execution times (s) of one invocation."""
    results = json.loads((invocation / "run_results.json").read_text())
    return sum(r["execution_time"] for r in results["results"])


def _parsed_fully(invocation: Path) -> bool:
    log = (invocation / "dbt.log").read_text() if (invocation / "dbt.log").exists() else ""
    return "Unable to do partial parsing" in log


def _noop_case(label: str, districts: Path, catalog: Path, out: Path, year: int) -> None:
    """Run ``year`` twice in this process through ``cli.run`` and print both times and their ratio."""
    import shutil

    import dagster as dg

    from dagster_project.cli import run
    from ingestion.config import load_config
    from ingestion.retire import retire_area

    retire_area(f"noop-{label}", out / "data")  # a real first run: no rows (nor inputs record) of the area left
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config_path = out / "noop.yaml"
    config_path.write_text(yaml.safe_dump({
        "area": f"noop-{label}", "districts": {"path": str(districts)}, "years": [year],
        "imagery": {"source": "local-stac", "options": {"catalog_path": str(catalog)}},
        "output_dir": str(out / "data")}))
    config = load_config(config_path)
    instance = dg.DagsterInstance.ephemeral()
    walls, lines, dbts = [], [], []
    for attempt in ("first", "no-op"):
        step_lines: list[str] = []
        t0 = time.perf_counter()
        results = run(config, years=[year], instance=instance, echo=step_lines.append)
        walls.append(time.perf_counter() - t0)
        if not all(r.success for r in results):
            raise SystemExit(f"{label}: the {attempt} run failed:\n" + "\n".join(step_lines))
        steps: dict[str, float] = {}
        for line in step_lines:
            if m := STEP.match(line):
                steps[m.group(1)] = steps.get(m.group(1), 0.0) + float(m.group(2))
        dbt = sum(v for k, v in steps.items() if k.startswith("dbt_"))
        dbts.append(dbt)
        lines.append(f"  {attempt:>6}: {walls[-1]:6.1f} s (dbt steps {dbt:.1f} s); "
                     + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    print(f"{label}: first {walls[0]:.1f} s, no-op {walls[1]:.1f} s, ratio {walls[1] / walls[0]:.3f}x "
          f"(target <= 0.1x); without the dbt steps {(walls[1] - dbts[1]) / walls[0]:.3f}x")
    print("\n".join(lines))


def noop(args: argparse.Namespace, env: dict) -> None:
    """The no-op case for the demo area and a ``--noop-mpx`` area (same process, see the module doc)."""
    import importlib.util

    if env.get("DATABASE_URL"):  # the test database, as the subprocess loop uses
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
    sample = args.cache / "sample"
    print(f"no-op re-run of {args.year} in one process (cli.run twice; the second with nothing changed)")
    _noop_case("demo", sample / "districts.gpkg", sample / "catalog" / "catalog.json", args.cache / "noop-demo",
               args.year)
    if args.noop_mpx:
        spec = importlib.util.spec_from_file_location("composite_benchmark", ROOT / "benchmarks" / "composite.py")
        composite = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(composite)
        area = composite.generate_catalog(args.composite_cache, args.noop_mpx)
        _noop_case(f"{args.noop_mpx}mpx", area / "districts_in.gpkg", area / "catalog" / "catalog.json",
                   args.cache / f"noop-{args.noop_mpx}mpx", composite.YEAR)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "benchmark-loop")
    parser.add_argument("--noop", action="store_true", help="also the no-op re-run case (issue 20)")
    parser.add_argument("--noop-only", action="store_true", help="only the no-op re-run case")
    parser.add_argument("--noop-mpx", type=int, default=25, help="size of the large no-op area, Mpx (0: none)")
    parser.add_argument("--composite-cache", type=Path, default=ROOT / "data" / "benchmarks" / "composite",
                        help="where benchmarks/composite.py keeps (or generates) its sample areas")
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
    if args.noop or args.noop_only:
        noop(args, env)
        if args.noop_only:
            return 0
    command = [str(Path(sys.executable).with_name("ndvi-pipeline")), "run", "--config", str(config),
               "--year", str(args.year)]
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm-up: tables, inputs, caches

    walls, step_sums = [], []
    ratios: dict[str, list[float]] = {label: [] for label in DBT_STEPS}
    print(f"one year ({args.year}) of the demo area through `ndvi-pipeline run`, {args.repeat} runs")
    print(f"{'run':>4} {'wall s':>8} {'steps s':>8} {'other s':>8}  dbt step s / node s: "
          f"{', '.join(DBT_STEPS)}; dbt parse")
    for i in range(args.repeat):
        started = time.time()
        t0 = time.perf_counter()
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t0
        steps = [(m.group(1), float(m.group(2))) for line in out.splitlines() if (m := STEP.match(line))]
        dbt_steps = [seconds for name, seconds in steps if name.startswith("dbt_")]
        nodes = [_node_seconds(d) for d in _dbt_invocations_since(started)]
        parses = _dbt_invocations_since(started, "parse")
        parse = f"{len(parses)}x{' FULL' if any(map(_parsed_fully, parses)) else ' partial'}"
        for label, step, node in zip(DBT_STEPS, dbt_steps, nodes, strict=True):
            ratios[label].append(step / node)
        walls.append(wall)
        step_sums.append(sum(seconds for _, seconds in steps))
        pairs = ", ".join(f"{s:.1f}/{n:.1f}" for s, n in zip(dbt_steps, nodes, strict=True))
        print(f"{i + 1:>4} {wall:8.1f} {step_sums[-1]:8.1f} {wall - step_sums[-1]:8.1f}  {pairs}; {parse}")
    print(f"median wall {statistics.median(walls):.1f} s, median sum of steps {statistics.median(step_sums):.1f} s")
    print("median dbt step / node time: " + ", ".join(f"{label} {statistics.median(r):.2f}x"
                                                       for label, r in ratios.items()))
    print("(the first dbt step of a process also waits for what is left of the process's one dbt parse)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
