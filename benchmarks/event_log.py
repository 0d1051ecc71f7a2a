"""Storing a batch run's events: the project's bulk writes against one event at a time, on the same events.

A batch run of many area-years records, per asset and partition, a planned materialisation and a
materialisation (the 96-area province of ``benchmarks/areas.py`` writes about 5,200 asset events). This script
records the events of one run of ``--assets`` assets × ``--partitions`` partitions (each materialisation with
a little metadata, as the pipeline's steps record), then replays them into fresh SQLite event logs:

- ``stock`` (with ``--stock``; about a minute per replay): Dagster's ``SqliteEventLogStorage``, ``store_event``
  for each event (what Dagster does without ``DAGSTER_EVENT_BATCH_SIZE``);
- ``per_event``: ``PooledSqliteEventLogStorage.store_event_batch`` storing each event as the stock class does,
  in one transaction per file (the project before the bulk writes);
- ``bulk``: ``PooledSqliteEventLogStorage.store_event_batch`` as it is (``_store_asset_events``).

Each replay sends the events in batches of ``DAGSTER_EVENT_BATCH_SIZE`` (1000), as Dagster does, and must leave
the same rows as the others. Prints the median of ``--repeat`` replays per variant (alternated), per event, and
the ratios.

    .venv/bin/python benchmarks/event_log.py [--assets 9] [--partitions 192] [--repeat 5] [--stock]
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster_project.event_log import EVENT_BATCH_SIZE, PooledSqliteEventLogStorage  # noqa: E402
from tests.helpers import sqlite_tables  # noqa: E402


class PerEvent(PooledSqliteEventLogStorage):
    """The batch's asset events stored one by one, as before the bulk writes."""

    def _store_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        for event in events:
            self.store_event(event)


def record(assets: int, partitions: int) -> list[EventLogEntry]:
    """Every event of one single-run batch of ``assets`` chained assets over ``partitions`` partitions."""
    parts = dg.StaticPartitionsDefinition([f"GM{i:04d}" for i in range(1, partitions + 1)])

    def make(index: int) -> dg.AssetsDefinition:
        @dg.asset(name=f"asset_{index}", partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run(),
                  deps=[f"asset_{index - 1}"] if index else [])
        def step(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            for key in context.partition_keys:
                context.add_asset_metadata({"dagster/row_count": 12, "path": f"/out/{key}.tif"}, partition_key=key)
            return dg.MaterializeResult()
        return step

    with dg.DagsterInstance.ephemeral() as instance:
        keys = parts.get_partition_keys()
        dg.materialize([make(i) for i in range(assets)], instance=instance, raise_on_error=True,
                       run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                       tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]})
        run = instance.get_runs(limit=1)[0]
        return list(instance.all_logs(run.run_id))


def replay(make: Callable[[str], SqliteEventLogStorage], events: list[EventLogEntry], folder: Path) -> float:
    """Seconds to store ``events`` into a fresh storage in ``folder`` (its files made first, not timed)."""
    storage = make(str(folder))
    storage.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1)
    started = time.perf_counter()
    if isinstance(storage, PooledSqliteEventLogStorage):
        for start in range(0, len(events), EVENT_BATCH_SIZE):
            storage.store_event_batch(events[start:start + EVENT_BATCH_SIZE])
    else:
        for event in events:
            storage.store_event(event)
    seconds = time.perf_counter() - started
    storage.dispose()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=9, help="assets in the run (default: 9)")
    parser.add_argument("--partitions", type=int, default=192, help="partitions of each (default: 192)")
    parser.add_argument("--repeat", type=int, default=5, help="replays per variant, alternated")
    parser.add_argument("--stock", action="store_true", help="also replay into Dagster's own storage (slow)")
    args = parser.parse_args()
    events = record(args.assets, args.partitions)
    asset_events = sum(1 for e in events if e.dagster_event and e.dagster_event.asset_key)
    variants = {"per_event": PerEvent, "bulk": PooledSqliteEventLogStorage}
    if args.stock:
        variants = {"stock": SqliteEventLogStorage, **variants}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeat):
            tables = {}
            for name, make in (variants.items() if repeat % 2 == 0 else reversed(variants.items())):
                folder = Path(tmp) / f"{name}-{repeat}"
                times[name].append(replay(make, events, folder))
                tables[name] = sqlite_tables(folder)
            if any(rows != tables["bulk"] for rows in tables.values()):
                print("the replays left different rows", file=sys.stderr)
                return 1
    print(f"{len(events)} events ({asset_events} asset events) of one run of {args.assets} assets x "
          f"{args.partitions} partitions; median of {args.repeat} replays; every replay left the same rows\n")
    print("| storage | seconds | ms per event |")
    print("|---|---|---|")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.2f} | {1000 * seconds / len(events):.2f} |")
    print("\n" + ", ".join(f"{name} / bulk = {seconds / medians['bulk']:.1f}" for name, seconds in medians.items()
                            if name != "bulk"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
