"""Many areas against one: a synthetic province run as K areas (A) and as one area of the same districts (B).

The province is K municipalities of ``--km`` × ``--km`` km side by side (rows of ``ceil(sqrt(K))``), each split
into ``--districts`` Voronoi districts. One districts file holds them all (``gm_code`` names the municipality,
district codes are unique across it), and the sample generator paints imagery for ``--years`` over the whole
province once (cached in ``--cache``). Then, alternated ``--repeat`` times, each in a fresh database
(``ndvi_bench`` of the embedded cluster, or ``--database-url``) and a fresh Dagster home:

- **A**: ``ndvi-pipeline run`` with ``districts.area_column: gm_code`` (one area per municipality);
- **B**: ``ndvi-pipeline run`` with one area holding every district.

Printed per method: wall time, CPU (user + system, of the command and its children), peak RSS of the command
(its own VmHWM), the sum of its step times by step, and the ratio A / B. The pixels and districts are the same,
so the statistics must be too: after each pair it checks that A's and B's ``ndvi_stats_yearly`` rows are equal
(counts exact, floating statistics within 1e-9).

    .venv/bin/python benchmarks/areas.py [--areas 24] [--districts 12] [--km 8] [--years 2021 2022] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import dagster as dg
import geopandas as gpd
import pandas as pd
import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_project.event_log import EVENT_BATCH_SIZE  # noqa: E402
from ingestion.db.connection import embedded_dsn  # noqa: E402
from ingestion.sample.generator import MARGIN, generate, synthetic_districts  # noqa: E402

STEP = re.compile(r"^ok\s+(\S+)\s+.*?\s([\d.]+) s")
CLI = str(Path(sys.executable).with_name("ndvi-pipeline"))
STATS = ("pixel_count", "district_pixel_count", "valid_fraction", "min_ndvi", "max_ndvi", "mean_ndvi",
         "stddev_ndvi", "mean_clear_observations")


def province_districts(areas: int, districts: int, km: float, seed: int = 5) -> gpd.GeoDataFrame:
    """K municipalities of ``km`` × ``km`` km in rows of ceil(sqrt(K)), each of ``districts`` Voronoi districts;
    columns ``district_code`` (``WK`` + municipality + district number), ``district_name``, ``gm_code``."""
    per_row = math.ceil(math.sqrt(areas))
    size = km * 1000
    parts = []
    for index in range(areas):
        municipality = synthetic_districts(seed + index, n=districts, size_m=(size, size))
        dx, dy = (index % per_row) * size, -(index // per_row) * size
        municipality["geometry"] = municipality.geometry.translate(dx, dy)
        code = f"GM{index + 1:04d}"
        municipality["gm_code"] = code
        municipality["district_code"] = [f"WK{index + 1:04d}{i + 1:02d}" for i in range(len(municipality))]
        municipality["district_name"] = [f"{code} district {i + 1}" for i in range(len(municipality))]
        parts.append(municipality)
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)


def generate_province(cache: Path, areas: int, districts: int, km: float, years: list[int]) -> Path:
    """The cached province folder (districts file, catalog, truth), generated on first use."""
    folder = cache / f"province-{areas}x{districts}-{km:g}km-{'-'.join(map(str, years))}"
    if (folder / "truth" / "truth.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    frame = province_districts(areas, districts, km)
    frame.to_file(folder / "districts.gpkg", driver="GPKG")
    print(f"generating {areas} municipalities x {districts} districts ({km:g} km) for {years} into {folder} "
          f"(margin {MARGIN} m)", file=sys.stderr, flush=True)
    generate(folder, years, seed=7, districts_path=folder / "districts.gpkg")
    return folder


def write_config(path: Path, province: Path, years: list[int], out: Path, split: bool) -> Path:
    districts = {"path": str(province / "districts.gpkg")}
    config = {"years": years, "output_dir": str(out),
              "imagery": {"source": "local-stac", "options": {"catalog_path": str(province / "catalog" /
                                                                                  "catalog.json")}}}
    if split:
        config["districts"] = {**districts, "area_column": "gm_code"}
    else:
        config.update(area="province", districts=districts)
    path.write_text(yaml.safe_dump(config))
    return path


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("drop schema if exists analytics cascade")
        conn.execute("drop schema if exists raw cascade")


def fresh_outputs(config: Path) -> None:
    """Empty the config's ``output_dir``: a run over the last run's composites would skip them (inputs
    unchanged) and time the no-op path, not a first build."""
    shutil.rmtree(yaml.safe_load(config.read_text())["output_dir"], ignore_errors=True)


class PeakRss:
    """The peak resident memory of process ``pid`` (``VmHWM`` in ``/proc/<pid>/status``), read every
    ``interval`` s until the block ends (the process's output closed, so it is ending).

    Why not ``ru_maxrss`` from ``wait4``: Linux carries a process's peak across ``exec``, so a child started from
    this script reports at least this script's own peak (generating a province's imagery took 1.8 GB here, and
    both A and B then reported 1837 MB). ``VmHWM`` belongs to the child's own address space.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.path, self.interval, self.kb = Path(f"/proc/{pid}/status"), interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _read(self) -> None:
        try:
            for line in self.path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.kb = max(self.kb, int(line.split()[1]))
        except (OSError, ValueError, IndexError):  # gone, or a zombie without memory figures
            pass

    def _poll(self) -> None:
        while not self._done.wait(self.interval):
            self._read()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._read()  # last, before the caller reaps the process
        self._done.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.kb / 1024


def run_once(config: Path, url: str, work: Path, again_in: Path | None = None, source: Path | None = None) -> dict:
    """``ndvi-pipeline run --config`` in a fresh Dagster home, database and output folder: wall, CPU and peak
    RSS of its own process (:class:`PeakRss`), the step seconds it printed, summed by step, and its Dagster
    home. ``again_in``: instead, ``ndvi-pipeline run --force`` on what the run with that Dagster home left (the
    database, outputs and home kept): every year computed again, on districts already masked. ``source``: run
    the project's code from that checkout instead (``PYTHONPATH``, ahead of this venv's editable install)."""
    if again_in is None:
        reset(url)
        fresh_outputs(config)
        home = work / f"home-{time.monotonic_ns()}"
        home.mkdir()
        (home / "dagster.yaml").write_text((ROOT / "dagster_project" / "dagster.yaml").read_text())
    else:
        home = again_in
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": url}
    env.pop("NDVI_CONFIG", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    started = time.perf_counter()
    command = [CLI, "run", "--config", str(config), *(["--force"] if again_in is not None else [])]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=source)
    with PeakRss(proc.pid) as peak:
        output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"ndvi-pipeline run --config {config} failed:\n{output[-4000:]}")
    steps: dict[str, float] = defaultdict(float)
    for line in output.splitlines():
        if match := STEP.match(line):
            steps[match[1]] += float(match[2])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # includes dbt's and GDAL's subprocesses, if any
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": peak.mb,
            "steps": dict(steps), "children_cpu": children.ru_utime + children.ru_stime, "home": home}


BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
ASSET_STATS = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  partitionStats { numMaterialized numPartitions } } } }"""
RUNS = ("{ runsOrError { ... on Runs { results { runId jobName status startTime endTime "
        "tags { key value } } } } }")
#: What a user materialises in the UI for a first build, as the README says: the area inputs (job area_inputs),
#: then every yearly asset (job yearly_ndvi), all partitions; the latest layers follow by the automation
#: (sensor latest_after_any_year). One backfill of both would wait a daemon tick (30 s) at every step where a
#: parent has other partitions (an area asset feeding an area x year one), so a user runs them in turn.
UI_STAGES = (("districts", "aoi_boundary", "stg_districts", "stg_green_share_thresholds", "stg_change_baselines"),
             ("ndvi_composite", "raw_ndvi_composites", "stg_ndvi_tiles", "district_tile_masks", "ndvi_stats_yearly",
              "ndvi_stats_yearly_distribution", "yearly_exports"))


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def all_materialised(url: str, assets: tuple[str, ...]) -> bool:
    """Every partition of every one of ``assets`` materialised."""
    for name in assets:
        stats = graphql(url, ASSET_STATS, {"path": [name]})["assetNodeOrError"]["partitionStats"]
        if stats["numMaterialized"] < stats["numPartitions"]:
            return False
    return True


def latest_done(url: str, areas: int) -> bool:
    """Every area's latest_exports materialised, and no run queued or in progress."""
    runs = graphql(url, RUNS)["runsOrError"]["results"]
    if any(r["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED") for r in runs):
        return False
    found = graphql(url, '{ assetNodeOrError(assetKey: {path: ["latest_exports"]}) { ... on AssetNode { '
                         'partitionStats { numMaterialized } } } }')["assetNodeOrError"]
    return found["partitionStats"]["numMaterialized"] >= areas


def step_failures(home: Path, run_id: str) -> str:
    """The first lines of every step failure of a run, or of the run's failure, from the instance's event log."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        lines = []
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is not None and event.is_step_failure:
                error = event.step_failure_data.error
                while error.cause is not None:
                    error = error.cause
                lines.append(f"{event.step_key}: {error.message.strip().splitlines()[0]}")
            elif event is not None and event.event_type_value == "PIPELINE_FAILURE":
                lines.append(record.message)
        return "; ".join(lines) or "no failure event"


def run_ui(config: Path, url_db: str, work: Path, areas: int) -> dict:
    """The UI path: ``dagster dev`` on a fresh Dagster home, backfills of :data:`UI_STAGES` over all partitions
    launched through GraphQL one after the other (as the UI's Materialize button does), and the latest
    automation, in a fresh database and output folder. Wall time from the launch until the last run (every
    area's latest layer written) ended; also the runs it took."""
    reset(url_db)
    fresh_outputs(config)
    home = work / f"home-ui-{time.monotonic_ns()}"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster_project" / "dagster.yaml").read_text())
    # DAGSTER_EVENT_BATCH_SIZE as `make dev` sets it (dagster_project/event_log.py)
    env = {"DAGSTER_EVENT_BATCH_SIZE": str(EVENT_BATCH_SIZE), **os.environ, "DAGSTER_HOME": str(home),
           "DATABASE_URL": url_db, "NDVI_CONFIG": str(config)}
    # the areas of an area_column config are recorded in the (emptied) output folder: the code location needs
    # them, and the CLI says so; a user runs this once
    subprocess.run([CLI, "areas", "--config", str(config)], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "dagster-dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p",
                                 str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if graphql(url, "{ assetNodes { id } }")["assetNodes"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"dagster dev did not serve the asset graph; the end of {log}:\n"
                                   + "\n".join(log.read_text().splitlines()[-30:]))
            time.sleep(1)
        started = time.time()
        for stage, assets in enumerate(UI_STAGES):
            params = {"assetSelection": [{"path": [name]} for name in assets], "allPartitions": True}
            launched = graphql(url, BACKFILL, {"params": params})["launchPartitionBackfill"]
            if launched["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"backfill not launched: {launched}")
            # the next stage starts when this one's partitions are all materialised (what the user sees), not
            # when the daemon marks the backfill complete at its next tick
            done = (lambda: latest_done(url, areas)) if stage == len(UI_STAGES) - 1 else (
                lambda assets=assets: all_materialised(url, assets))
            while not done():
                backfill = graphql(url, BACKFILL_STATUS, {"id": launched["backfillId"]})[
                    "partitionBackfillOrError"]["status"]
                if backfill in ("FAILED", "COMPLETED_FAILED", "CANCELED"):
                    failures = [f"{r['jobName']} {r['runId'][:8]}: {step_failures(home, r['runId'])}"
                                for r in graphql(url, RUNS)["runsOrError"]["results"] if r["status"] == "FAILURE"]
                    raise RuntimeError(f"backfill {launched['backfillId']} ended {backfill}: " + "; ".join(failures))
                time.sleep(1)
        runs = graphql(url, RUNS)["runsOrError"]["results"]
        # until the last run ended (the backfill itself is marked complete at the daemon's next tick, later)
        wall = max(r["endTime"] for r in runs) - started
        by_job: dict[str, int] = defaultdict(int)
        for r in runs:
            by_job[r["jobName"]] += 1
        return {"wall": wall, "runs": dict(by_job), "failed": sum(r["status"] == "FAILURE" for r in runs),
                "in_runs": busy_seconds([(r["startTime"], r["endTime"]) for r in runs if r["startTime"]], started)}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def busy_seconds(intervals: list[tuple[float, float]], since: float) -> float:
    """Seconds after ``since`` during which at least one run was executing (overlapping runs counted once):
    the rest of the UI path's wall time is spent waiting for the daemons (backfill ticks, sensor intervals)
    and starting run processes."""
    busy, end = 0.0, since
    for start, stop in sorted(intervals):
        start, stop = max(start, end), max(stop, end)
        busy, end = busy + stop - start, stop
    return busy


def yearly_rows(url: str) -> dict[tuple[str, int], tuple]:
    with psycopg.connect(url) as conn:
        return {(r[0], r[1]): r[2:] for r in conn.execute(
            f"select district_code, year, {', '.join(STATS)} from analytics.ndvi_stats_yearly")}  # noqa: S608


def same_rows(a: dict, b: dict) -> str:
    """'' when every district-year of ``a`` equals ``b``'s (counts exact, floats within 1e-9), else why not."""
    if a.keys() != b.keys():
        return f"different district-years: {len(a.keys() - b.keys())} only in A, {len(b.keys() - a.keys())} only in B"
    for key, row in a.items():
        for name, x, y in zip(STATS, row, b[key], strict=True):
            if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-9):
                return f"{key} {name}: A {x} B {y}"
    return ""


def dbt_model_seconds(since: float, root: Path = ROOT) -> dict[str, float]:
    """Execution seconds of each dbt model in the dbt invocations (of the checkout ``root``) that started after
    ``since`` (epoch s)."""
    seconds: dict[str, float] = defaultdict(float)
    for folder in (root / "dbt_project" / "target" / "dagster").iterdir():
        results = folder / "run_results.json"
        if folder.stat().st_mtime >= since and results.exists():
            for result in json.loads(results.read_text())["results"]:
                if result["unique_id"].startswith("model."):
                    seconds[result["unique_id"].split(".")[-1]] += result["execution_time"]
    return dict(seconds)


def _national_figures(result: dict, since: float, root: Path = ROOT) -> dict:
    """A national run's figures: wall, CPU, RSS, steps, dbt models (those run since ``since``), the masks,
    the latest export and its composite + load (``base``)."""
    models = dbt_model_seconds(since, root)
    steps = result["steps"]
    return {"wall": result["wall"], "cpu": result["cpu"], "rss_mb": result["rss_mb"], "steps": steps,
            "models": models, "masks": models.get("district_tile_masks", 0), "latest": steps.get("latest_exports", 0),
            "base": steps.get("ndvi_composite", 0) + steps.get("raw_ndvi_composites", 0)}


def _print_national(title: str, runs: list[dict]) -> None:
    print(f"{title}:")
    for number, run in enumerate(runs, 1):
        print(f"run {number}: whole run {run['wall']:.1f} s (CPU {run['cpu']:.1f} s, peak RSS {run['rss_mb']:.0f} MB)")
        print("  steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(run["steps"].items(), key=lambda kv: -kv[1])))
        print("  dbt models: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(run["models"].items(),
                                                                                key=lambda kv: -kv[1]) if v >= 0.5))
    median = {k: statistics.median(r[k] for r in runs) for k in ("wall", "base", "masks", "latest")}
    ratios = ", ".join(f"{r['wall'] / r['base']:.2f}" for r in runs)
    print(f"median: whole run {median['wall']:.1f} s, composite + load {median['base']:.1f} s; whole run / "
          f"(composite + load) = {median['wall'] / median['base']:.2f} (runs: {ratios}; target <= 4); "
          f"district_tile_masks {median['masks']:.1f} s (target <= 40); latest_exports {median['latest']:.1f} s "
          "(target <= 15)\n")


def national(args: argparse.Namespace, url: str) -> int:
    """One national-size area, one year, ``--repeat`` runs: the steps against the composite and the load, per
    run and as the median (the first run after a pause may read its COGs from disk: compare the runs).
    ``--again``: after each run, the same year again with ``--force`` on what it left, as a later year of the
    same districts costs (their tile masks are reused: built once per districts version)."""
    year = args.years[0]
    folder = generate_province(args.cache, 1, args.national, args.km, [year])
    runs, agains, baseline = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = write_config(work / "national.yaml", folder, [year], work / "out-national", split=False)
        for repeat in range(args.repeat):
            if args.baseline:  # alternated: the baseline first in odd repeats, second in even ones
                for source in ((args.baseline, None) if repeat % 2 == 0 else (None, args.baseline)):
                    since = time.time()
                    figures = _national_figures(run_once(config, url, work, source=source), since, source or ROOT)
                    (baseline if source else runs).append(figures)
                    print(f"run {repeat + 1} {'baseline' if source else 'this checkout'}: whole run "
                          f"{figures['wall']:.1f} s, ratio {figures['wall'] / figures['base']:.2f}",
                          file=sys.stderr, flush=True)
                continue
            since = time.time()
            result = run_once(config, url, work)
            runs.append(_national_figures(result, since))
            print(f"run {repeat + 1}: whole run {runs[-1]['wall']:.1f} s, composite + load {runs[-1]['base']:.1f} s, "
                  f"ratio {runs[-1]['wall'] / runs[-1]['base']:.2f}", file=sys.stderr, flush=True)
            if args.again:
                since = time.time()
                agains.append(_national_figures(run_once(config, url, work, again_in=result["home"]), since))
                print(f"  again: whole run {agains[-1]['wall']:.1f} s, ratio "
                      f"{agains[-1]['wall'] / agains[-1]['base']:.2f}", file=sys.stderr, flush=True)
    print(f"\none area of {args.national} districts over {args.km:g} x {args.km:g} km, year {year}, "
          f"{os.cpu_count()} cores, {args.repeat} run(s)\n")
    _print_national("a first year (fresh database: the districts' tile masks are built)", runs)
    if agains:
        _print_national("the same year again with --force (as a later year: the masks are reused)", agains)
    if baseline:
        _print_national(f"the baseline checkout {args.baseline}, alternated with the runs above", baseline)
        ours, theirs = (statistics.median(r["wall"] / r["base"] for r in rs) for rs in (runs, baseline))
        walls = statistics.median(r["wall"] for r in runs) / statistics.median(r["wall"] for r in baseline)
        print(f"whole run / (composite + load), this checkout against the baseline: {ours:.2f} against "
              f"{theirs:.2f} (medians), {ours / theirs:.3f}; whole run {walls:.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", type=int, default=24, help="municipalities (areas of A)")
    parser.add_argument("--districts", type=int, default=12, help="districts per municipality")
    parser.add_argument("--km", type=float, default=8.0, help="side of a municipality, km")
    parser.add_argument("--years", type=int, nargs="+", default=[2021, 2022])
    parser.add_argument("--repeat", type=int, default=2, help="runs per method, alternated")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "benchmarks" / "areas")
    parser.add_argument("--database-url", help="scratch PostGIS database (default: embedded ndvi_bench)")
    parser.add_argument("--work", type=Path, help="keep configs, outputs and Dagster homes here (default: a "
                                                   "temporary folder, removed at the end)")
    parser.add_argument("--ui", action="store_true",
                        help="also time A through the UI path: dagster dev, a backfill launched through GraphQL "
                             "and the latest automation, against ndvi-pipeline run")
    parser.add_argument("--national", type=int, metavar="DISTRICTS",
                        help="instead: one area of this many Voronoi districts over --km x --km km (e.g. 14000 over "
                             "60 km, the Netherlands' buurten), --repeat runs of the first year; prints the time of "
                             "the composite, the load, district_tile_masks, latest_exports and the whole run")
    parser.add_argument("--again", action="store_true",
                        help="with --national: after each run, run the year again with --force on what it left "
                             "(a later year of the same districts: their tile masks are reused)")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="alternate the runs with those of another checkout of this project (e.g. "
                             "`git worktree add /tmp/base <commit>`, with `.venv` linked to this one and its dbt "
                             "manifest prepared), run from that folder with PYTHONPATH on it: with --national each "
                             "run, else A (as 'A baseline', its rows checked against B's too); prints both and "
                             "the ratios. Not with --again")
    args = parser.parse_args()
    if args.baseline and args.again:
        parser.error("--baseline and --again cannot be combined")
    url = args.database_url or embedded_dsn("ndvi_bench")
    if args.national:
        return national(args, url)
    province = generate_province(args.cache, args.areas, args.districts, args.km, args.years)
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        configs = {name: write_config(work / f"{name}.yaml", province, args.years, work / f"out-{name}", split)
                   for name, split in (("A", True), ("B", False))}
        methods = [("A", "A", None), ("B", "B", None)]
        if args.baseline:
            runs["A baseline"] = []
            methods.append(("A baseline", "A", args.baseline))
        for repeat in range(args.repeat):
            rows = {}
            for name, config, source in methods if repeat % 2 == 0 else methods[::-1]:
                runs[name].append(run_once(configs[config], url, work, source=source))
                rows[name] = yearly_rows(url)
                print(f"run {repeat + 1} {name}: {runs[name][-1]['wall']:.1f} s", file=sys.stderr, flush=True)
            for name in rows.keys() - {"B"}:
                if problem := same_rows(rows[name], rows["B"]):
                    print(f"{name} and B differ: {problem}")
                    return 1
            if args.ui:
                runs.setdefault("UI", []).append(run_ui(configs["A"], url, work, args.areas))
                print(f"run {repeat + 1} UI: {runs['UI'][-1]['wall']:.1f} s, runs {runs['UI'][-1]['runs']}",
                      file=sys.stderr, flush=True)
                if problem := same_rows(yearly_rows(url), rows["B"]):
                    print(f"the UI path and B differ: {problem}")
                    return 1
    print(f"\n{args.areas} areas x {args.districts} districts of {args.km:g} x {args.km:g} km, years {args.years}, "
          f"{os.cpu_count()} cores; median of {args.repeat} (alternated); every method's rows identical to B's\n")
    print("| method | wall s | CPU s | peak RSS MB | step seconds (summed by step) |")
    print("|---|---|---|---|---|")
    medians = {}
    ui = runs.pop("UI", [])
    for name, results in runs.items():
        medians[name] = {k: statistics.median(r[k] for r in results) for k in ("wall", "cpu", "rss_mb")}
        steps = defaultdict(list)
        for result in results:
            for step, seconds in result["steps"].items():
                steps[step].append(seconds)
        slowest_first = sorted(steps.items(), key=lambda item: -max(item[1]))
        by_step = ", ".join(f"{step} {statistics.median(seconds):.1f}" for step, seconds in slowest_first)
        label = f"{name}: {1 if name == 'B' else args.areas} area(s)"
        walls = ", ".join(f"{r['wall']:.1f}" for r in results)
        print(f"| {label} | {medians[name]['wall']:.1f} ({walls}) | {medians[name]['cpu']:.1f} | "
              f"{medians[name]['rss_mb']:.0f} | {by_step} |")
    for name in [n for n in medians if n != "B"]:
        print(f"\nwall({name}) / wall(B) = {medians[name]['wall'] / medians['B']['wall']:.2f}, CPU({name}) / CPU(B) = "
              f"{medians[name]['cpu'] / medians['B']['cpu']:.2f}, peak RSS({name}) / RSS(B) = "
              f"{medians[name]['rss_mb'] / medians['B']['rss_mb']:.2f}")
    if "A baseline" in medians:
        print(f"wall(A) / wall(A baseline) = {medians['A']['wall'] / medians['A baseline']['wall']:.2f}, CPU = "
              f"{medians['A']['cpu'] / medians['A baseline']['cpu']:.2f}")
    if ui:
        wall = statistics.median(r["wall"] for r in ui)
        walls = ", ".join(f"{r['wall']:.1f}" for r in ui)
        print(f"UI path (backfill + latest automation): {wall:.1f} s ({walls}), "
              f"runs {ui[-1]['runs']}, failed runs {ui[-1]['failed']}; UI / ndvi-pipeline run (A) = "
              f"{wall / medians['A']['wall']:.2f}")
        in_runs = statistics.median(r["in_runs"] for r in ui)
        print(f"  of which some run was executing {in_runs:.1f} s ({in_runs / medians['A']['wall']:.2f} x the "
              f"ndvi-pipeline run), and {wall - in_runs:.1f} s went to daemon ticks, sensor intervals and run "
              "process starts between runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
