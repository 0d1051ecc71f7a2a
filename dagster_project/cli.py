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
from dagster_project.event_log import enable_event_batches
from dagster_project.failures import FAILURE_TAG, MAX_TAG_CHARS, failure_lines
from dagster_project.observe_cli import observe_command
from dagster_project.partitions import Batch, area_batches, area_year_boxes, label, parse_key, split_key
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


def _step_lines(job: str, batch: Batch, result: dg.ExecuteInProcessResult) -> list[StepLine]:
    """One line per step; its figures are those of the batch's partitions (a dbt step also records the other
    partitions its build rewrote: they are not this run's), counts summed over them, fractions their minimum,
    flags (``skipped``) true only when true for all."""
    keys = set(batch.keys)
    lines: dict[str, StepLine] = {}
    for event in result.all_events:
        if event.step_key is None:
            continue
        line = lines.setdefault(event.step_key, StepLine(job, event.step_key, batch.label, 0.0, True))
        if event.is_step_success or event.is_step_failure:
            line.seconds = event.event_specific_data.duration_ms / 1000 if event.is_step_success else 0.0
            line.ok = event.is_step_success
        elif event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            if materialization.partition is not None and str(materialization.partition) not in keys:
                continue
            for name, value in materialization.metadata.items():
                if name in dict(FIGURES):
                    figure, before = value.value, line.figures.get(name)
                    if before is not None and isinstance(figure, bool):  # skipped: all of them
                        figure = before and figure
                    elif before is not None:
                        figure = min(before, figure) if isinstance(figure, float) else before + figure
                    line.figures[name] = figure
    return list(lines.values())


def _materialized(result: dg.ExecuteInProcessResult) -> dict[str, set[str]]:
    """Partition key -> the assets the run materialised for it."""
    done: dict[str, set[str]] = {}
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            if materialization.partition is not None:
                done.setdefault(str(materialization.partition), set()).add(materialization.asset_key.to_user_string())
    return done


def _failed_partitions(result: dg.ExecuteInProcessResult) -> set[str] | None:
    """The partitions a step failed for (labels, ``"AREA YEAR"``), when it failed for some of its batch only
    (:class:`~dagster_project.partitions.PartitionFailure`); None when a step failed for the whole batch."""
    for event in result.all_events:
        if event.is_step_failure:
            failure = event.step_failure_data.user_failure_data
            if failure is not None and "failed_partitions" in failure.metadata:
                return set(failure.metadata["failed_partitions"].value.split(", "))
    return None


def run(config: PipelineConfig, areas: Iterable[str] | None = None, years: Iterable[int] | None = None,
        instance: dg.DagsterInstance | None = None, verbose: bool = False, inputs: bool = True,
        latest: bool = True, echo: Callable[[str], None] | None = None,
        force: bool = False) -> list[dg.ExecuteInProcessResult]:
    """``area_inputs`` for the areas (unless not ``inputs``), then ``yearly_ndvi`` for their years, then
    ``latest_ndvi`` for the areas with a new year (unless not ``latest``), each job as few runs as possible:
    one run per batch of partitions (:mod:`dagster_project.partitions`; usually one), so a province pays a
    run's fixed costs once, not once per area-year.

    ``areas`` and ``years`` default to every configured one (a year is run only for areas that list it;
    ``years=[]`` runs none). A failing area or year does not stop the others: the rest of its batch goes on in
    a follow-up run from the step that failed, and the latest layer is refreshed from what succeeded. Returns
    every run's result. ``echo`` (default: print to this moment's stdout, flushed) receives the lines; raises
    :class:`Interrupted` after a run stopped by SIGINT or SIGTERM. An area-year whose inputs did not change is
    skipped (composite, load, dbt: :mod:`ingestion.updates`); ``force`` (run tag ``FORCE_TAG``) redoes it.
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

    def execute(job: str, batch: Batch, selection: list[str] | None = None) -> dg.ExecuteInProcessResult:
        for line in release_dead_runs(instance):
            echo(f"       {line}")
        run_id = make_new_run_id()
        captured = io.StringIO()
        with RunWatch(instance, run_id, echo) as watch, \
                contextlib.redirect_stdout(sys.stdout if verbose else captured):
            result = jobs[job].execute_in_process(
                instance=instance, run_config=run_config, raise_on_error=False, run_id=run_id,
                tags={**owner_tags(), **batch.tags, **({FORCE_TAG: "true"} if force else {})},
                asset_selection=[dg.AssetKey(name) for name in selection] if selection else None)
        results.append(result)
        for line in _step_lines(job, batch, result):
            echo(str(line))
        if watch.interrupted:
            for unfinished_run in unfinished(instance, [run_id]):
                instance.report_run_failed(unfinished_run, "Interrupted by SIGINT or SIGTERM.")
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            instance.add_run_tags(run_id, {FAILURE_TAG: "interrupted by SIGINT or SIGTERM"})
            echo(f"       {job} {batch.label} interrupted (SIGINT or SIGTERM): run {run_id} marked failed, its "
                 "slots freed")
            raise Interrupted(run_id)
        if not result.success:
            causes = failure_lines(result)
            for step, cause, details in causes:
                echo(f"       {job} {batch.label} failed in {step}: {cause}")
                for detail in details:
                    echo(f"           {detail}")
            first = f"{causes[0][0]}: {causes[0][1]}"
            instance.add_run_tags(run_id, {FAILURE_TAG: first[:MAX_TAG_CHARS]})
        return result

    def execute_all(job: str, batches: list[Batch]) -> set[str]:
        """Run ``job`` for each batch; where a step failed for some partitions only, the others go on from
        there in follow-up runs. Returns the keys every asset of the job was materialised for."""
        assets = {key.to_user_string() for key in jobs[job].asset_layer.executable_asset_keys}
        complete: set[str] = set()
        pending = [(batch, None) for batch in batches]
        while pending:
            batch, selection = pending.pop(0)
            result = execute(job, batch, selection)
            wanted = set(selection or assets)
            done = _materialized(result)
            complete |= {key for key in batch.keys if wanted <= done.get(key, set())}
            failed = _failed_partitions(result)
            if result.success or failed is None:
                continue  # a step that failed for the whole batch is not tried again
            rest: dict[frozenset[str], list[str]] = {}
            for key in batch.keys:
                remaining = wanted - done.get(key, set())
                if remaining and remaining != wanted and label(parse_key(key)) not in failed:
                    rest.setdefault(frozenset(remaining), []).append(key)
            for remaining, keys in rest.items():
                pending.extend((follow_up, sorted(remaining)) for follow_up in _batches_of(config, keys))
        return complete

    selected = [config.area(a) for a in areas] if areas else list(config.areas)
    codes = [area.code for area in selected]
    if inputs:
        ready = execute_all("area_inputs", area_batches(config, codes))
        codes = [c for c in codes if c in ready]
    wanted: dict[str, list[int]] = {}
    for code in codes:
        area = config.area(code)
        wanted_years = sorted(set(years)) if years is not None else list(area.years)
        if skipped := [y for y in wanted_years if y not in area.years]:
            echo(f"       {code}: skipping {skipped}, not among its years {list(area.years)}")
        wanted[code] = [y for y in wanted_years if y in area.years]
    yearly_done = execute_all("yearly_ndvi", area_year_boxes(config, wanted))
    with_new_year = [code for code in codes if code in {split_key(parse_key(k))[0] for k in yearly_done}]
    if latest and with_new_year:
        execute_all("latest_ndvi", area_batches(config, with_new_year))
    return results


def _batches_of(config: PipelineConfig, keys: list[str]) -> list[Batch]:
    """Batches covering exactly ``keys`` (all area keys, or all area × year keys)."""
    if all("|" not in key for key in keys):
        return area_batches(config, keys)
    wanted: dict[str, list[int]] = {}
    for key in keys:
        area, year = key.split("|")
        wanted.setdefault(area, []).append(int(year))
    return area_year_boxes(config, wanted)


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
    enable_event_batches()  # first: no other thread runs yet
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
