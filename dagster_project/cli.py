"""``ndvi-pipeline run``: materialise areas and years headless (cron, CI, ``make demo``); ``ndvi-pipeline areas``:
read the areas of a districts file split by ``districts.area_column``.

It runs the same jobs as the Dagster UI, on the same instance (``DAGSTER_HOME``), so its runs show under
``area_inputs``, ``yearly_ndvi`` and ``latest_ndvi`` in the UI: per area the inputs, then each year, then the
latest layer. It prints one line per step; Dagster's own event log goes to the instance (``-v`` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.utils import make_new_run_id

from dagster_project.definitions import build_definitions
from dagster_project.failures import FAILURE_TAG, MAX_TAG_CHARS, failure_lines
from dagster_project.observe_cli import observe_command
from dagster_project.partitions import area_year_key
from dagster_project.refresh import FORCE_TAG
from dagster_project.run_health import owner_tags, release_dead_runs, unfinished
from dagster_project.run_watch import RunWatch
from ingestion.areas import load_config_reading_areas
from ingestion.config import ConfigError, PipelineConfig
from ingestion.retire import retire_area
from ingestion.vector import VectorInputError

#: Without -v: Dagster's console logger off (events still go to the instance) and dbt's log lines, which
#: dagster-dbt writes to stdout, kept back unless the run fails.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: Metadata shown on a step's progress line, in this order, with a label.
FIGURES = (("scenes_used", "scenes kept"), ("scenes_dropped", "dropped"),
           ("offsets_contradicted", "offset metadata contradicted by pixels"), ("valid_fraction", "valid"),
           ("dagster/row_count", "rows"), ("districts", "districts"), ("skipped", "skipped"))


class Interrupted(Exception):
    """A run was stopped by SIGINT or SIGTERM; no further run starts."""


@dataclass
class StepLine:
    """One step of one run: what it materialised, for which partition, how long, and its key figures."""

    job: str
    step: str
    partition: str
    seconds: float
    ok: bool
    figures: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        figures = ", ".join(f"{label} {self.figures[key]}" for key, label in FIGURES if key in self.figures)
        status = "ok    " if self.ok else "FAILED"
        return f"{status} {self.step:<24} {self.partition:<18} {self.seconds:6.1f} s  {figures}".rstrip()


def _step_lines(job: str, partition: str, result: dg.ExecuteInProcessResult,
                key: str | None = None) -> list[StepLine]:
    """One line per step; its figures are those of the run's partition ``key`` (a dbt step also records the
    other partitions its build rewrote: they are not this run's)."""
    lines: dict[str, StepLine] = {}
    for event in result.all_events:
        if event.step_key is None:
            continue
        line = lines.setdefault(event.step_key, StepLine(job, event.step_key, partition, 0.0, True))
        if event.is_step_success or event.is_step_failure:
            line.seconds = event.event_specific_data.duration_ms / 1000 if event.is_step_success else 0.0
            line.ok = event.is_step_success
        elif event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            if key is not None and materialization.partition not in (None, key):
                continue
            for name, value in materialization.metadata.items():
                if name in dict(FIGURES):
                    figure = value.value
                    if name == "dagster/row_count":  # summed over the assets of a dbt step
                        figure = (line.figures.get(name) or 0) + figure
                    line.figures[name] = figure
    return list(lines.values())


def run(config: PipelineConfig, areas: Iterable[str] | None = None, years: Iterable[int] | None = None,
        instance: dg.DagsterInstance | None = None, verbose: bool = False, inputs: bool = True,
        latest: bool = True, echo: Callable[[str], None] | None = None,
        force: bool = False) -> list[dg.ExecuteInProcessResult]:
    """Per area: ``area_inputs`` (unless not ``inputs``), then ``yearly_ndvi`` for each year, then
    ``latest_ndvi`` (unless not ``latest``).

    ``areas`` and ``years`` default to every configured one (a year is run only for areas that list it;
    ``years=[]`` runs none). A failing year does not stop the others; the latest layer is refreshed from
    what succeeded. Returns every run's result. ``echo`` (default: print to this moment's stdout, flushed)
    receives the lines; raises :class:`Interrupted` after a run stopped by SIGINT or SIGTERM. ``force``
    (issue 20): recompute and reload composites whose inputs did not change (run tag ``FORCE_TAG``).
    """
    if echo is None:
        stdout = sys.stdout  # not the capture that hides dbt's own output while a run executes

        def echo(line: str) -> None:
            print(line, file=stdout, flush=True)
    defs = build_definitions(config)
    defs.resources["dbt"].manifest_future()  # parse the dbt project while the first steps run
    jobs = {name: defs.resolve_job_def(name) for name in ("area_inputs", "yearly_ndvi", "latest_ndvi")}
    instance = instance or dg.DagsterInstance.get()
    run_config = {} if verbose else QUIET
    results = []

    def execute(job: str, key: str | dg.MultiPartitionKey, label: str) -> bool:
        for line in release_dead_runs(instance):
            echo(f"       {line}")
        run_id = make_new_run_id()
        captured = io.StringIO()
        with RunWatch(instance, run_id, echo) as watch, \
                contextlib.redirect_stdout(sys.stdout if verbose else captured):
            result = jobs[job].execute_in_process(partition_key=key, instance=instance, run_config=run_config,
                                                  raise_on_error=False, run_id=run_id,
                                                  tags={**owner_tags(), **({FORCE_TAG: "true"} if force else {})})
        results.append(result)
        for line in _step_lines(job, label, result, key):
            echo(str(line))
        if watch.interrupted:
            for run in unfinished(instance, [run_id]):
                instance.report_run_failed(run, "Interrupted by SIGINT or SIGTERM.")
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            instance.add_run_tags(run_id, {FAILURE_TAG: "interrupted by SIGINT or SIGTERM"})
            echo(f"       {job} {label} interrupted (SIGINT or SIGTERM): run {run_id} marked failed, its slots freed")
            raise Interrupted(run_id)
        if not result.success:
            causes = failure_lines(result)
            for step, cause, details in causes:
                echo(f"       {job} {label} failed in {step}: {cause}")
                for detail in details:
                    echo(f"           {detail}")
            first = f"{causes[0][0]}: {causes[0][1]}"
            instance.add_run_tags(run_id, {FAILURE_TAG: first[:MAX_TAG_CHARS]})
        return result.success

    selected_areas = [config.area(a) for a in areas] if areas else list(config.areas)
    for area in selected_areas:
        if inputs and not execute("area_inputs", area.code, area.code):
            continue
        wanted = sorted(set(years)) if years is not None else list(area.years)
        if skipped := [y for y in wanted if y not in area.years]:
            echo(f"       {area.code}: skipping {skipped}, not among its years {list(area.years)}")
        ran = [execute("yearly_ndvi", area_year_key(area.code, y), f"{area.code} {y}")
               for y in wanted if y in area.years]
        if latest and any(ran):
            execute("latest_ndvi", area.code, area.code)
    return results


def retire(config: PipelineConfig, area: str, output_dir: Path | None = None,
           echo: Callable[[str], None] = print) -> int:
    """``ndvi-pipeline retire AREA``: remove a no-longer-configured area's rows and move its files aside.

    Refuses (exit 2) while ``area`` is still in ``config``, so a typo cannot wipe a served area. ``output_dir``
    defaults to the configured areas' output folder. Returns the exit code."""
    if area in config.codes:
        echo(f"error: area {area!r} is still configured in {config.source_file}; remove it from the config "
             "first, then retire it")
        return 2
    if output_dir is None:
        folders = sorted({a.output_dir for a in config.areas})
        if len(folders) > 1:
            echo(f"error: the configured areas write to {len(folders)} output folders "
                 f"({', '.join(map(str, folders))}); say which held {area!r} with --output-dir")
            return 2
        output_dir = folders[0]
    report = retire_area(area, output_dir)
    if not report.found:
        echo(f"nothing to retire: no rows of area {area!r} in raw.* or analytics.*, and no folder "
             f"{output_dir / area}")
        return 0
    tables = ", ".join(f"{table} {rows}" for table, rows in report.rows.items()) or "none"
    echo(f"retired {area}: {report.total_rows} rows deleted in one transaction ({tables})")
    if report.moved_to:
        echo(f"retired {area}: {output_dir / area} moved to {report.moved_to}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ndvi-pipeline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialise areas and years, then their latest layer")
    run_parser.add_argument("--config", help="config file (default $NDVI_CONFIG, else the demo config)")
    run_parser.add_argument("--area", action="append", help="an area code (repeatable; default every area)")
    run_parser.add_argument("--year", action="append", type=int, help="a year (repeatable; default the area's)")
    run_parser.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    run_parser.add_argument("--force", action="store_true",
                            help="recompute and reload composites even when their inputs did not change")
    observe_parser = sub.add_parser("observe", help="observe the scenes of areas and years (no pixels): one line "
                                                    "per area-year with its scenes version and whether it changed")
    observe_parser.add_argument("--config", help="config file (default $NDVI_CONFIG, else the demo config)")
    observe_parser.add_argument("--area", action="append", help="an area code (repeatable; default every area)")
    observe_parser.add_argument("--year", action="append", type=int, help="a year (repeatable; default the area's)")
    areas_parser = sub.add_parser("areas", help="read the areas of a districts file split by districts.area_column "
                                                "(the Dagster code location uses what this records)")
    areas_parser.add_argument("--config", help="config file (default $NDVI_CONFIG, else the demo config)")
    retire_parser = sub.add_parser("retire", help="remove an area that is no longer configured: its rows in "
                                                  "every table, and its output folder (moved aside)")
    retire_parser.add_argument("area", help="the area code to retire (must not be in the config any more)")
    retire_parser.add_argument("--config", help="config file (default $NDVI_CONFIG, else the demo config)")
    retire_parser.add_argument("--output-dir", type=Path,
                               help="the folder holding the area's folder (default the configured areas')")
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    if not verbose:
        for name in ("dagster", "dagster.builtin"):  # dagster-dbt logs its dbt selection at info
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        # a bad config, an unreadable districts file or a missing area column: one line, no traceback
        config = load_config_reading_areas(args.config)
        for code in (args.area or []) if args.command in ("run", "observe") else []:
            config.area(code)
    except (ConfigError, VectorInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "areas":
        print("\n".join(config.codes))
        return 0
    if args.command == "retire":
        return retire(config, args.area, args.output_dir)
    if args.command == "observe":
        return observe_command(config, args.area, args.year)
    try:
        results = run(config, args.area, args.year, verbose=verbose, force=args.force)
    except Interrupted:
        return 130
    return 0 if results and all(r.success for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
