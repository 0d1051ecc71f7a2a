"""Partitions, all from the config: areas, and area × year for the yearly assets; and batches of them.

An area or a year is added by editing the config and reloading the code location: no code changes.

Every asset has a single-run backfill policy: one run materialises a whole batch of partitions (a key range,
which for area × year is a box: a contiguous run of areas × a contiguous run of years), so a province pays a
run's fixed costs (start-up, a search session, one ``dbt build``) once per batch, not once per area-year.
Dagster's asset backfills cut a multi-partitioned selection into such boxes by itself (one box per value of
the dimension with fewer selected keys: per year, all areas); ``ndvi-pipeline run`` cuts them with
:func:`area_year_boxes`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ingestion.config import AreaConfig, PipelineConfig
from ingestion.pipeline import NoScenesError

AREA = "area"
YEAR = "year"
# the parameter is beta in Dagster 1.13; it is the documented way to batch partitions, and the warning would
# repeat on every code-location load and every ndvi-pipeline run
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
#: Every asset: a backfill of many partitions runs as few runs as Dagster can make (one per key range).
BATCH_POLICY = dg.BackfillPolicy.single_run()
#: Key ranges an :class:`AreaYearPartitions` keeps listed: a run lists one per batch, and a long-lived process
#: (the code server) may see many over time, each up to a few thousand keys.
KEPT_RANGES = 16


def area_partitions(config: PipelineConfig) -> dg.StaticPartitionsDefinition:
    """One partition per configured area (its code)."""
    return dg.StaticPartitionsDefinition(list(config.codes))


class AreaYearPartitions(dg.MultiPartitionsDefinition):
    """Dagster's area × year partitions, which list a key range once and keep the list (up to
    :data:`KEPT_RANGES` ranges).

    Why: Dagster lists the step's whole key range again for every ``context.add_asset_metadata(...,
    partition_key=...)`` call, to check that the key is in it. A batch records metadata for each of its
    partitions, so a step paid time quadratic in its partitions: 0.13 s for 192 area-years, about 85 s per step
    for 342 areas × 9 years (``benchmarks/partition_records.py``). The definition is static (the config's areas
    and years), so a range always lists the same keys.
    """

    def __init__(self, partitions_defs: Mapping[str, dg.PartitionsDefinition]) -> None:
        super().__init__(partitions_defs)
        # a plain dict, no lock: each of its operations is atomic, and Dagster may copy or pickle a definition
        self._ranges: dict[dg.PartitionKeyRange, tuple[str, ...]] = {}

    def get_partition_keys_in_range(self, partition_key_range: dg.PartitionKeyRange,
                                    dynamic_partitions_store: Any = None) -> Sequence[str]:
        keys = self._ranges.get(partition_key_range)
        if keys is None:
            keys = tuple(super().get_partition_keys_in_range(partition_key_range, dynamic_partitions_store))
            if len(self._ranges) >= KEPT_RANGES:
                self._ranges.clear()  # bounded: a run lists one range per batch, and lists it again if dropped
            self._ranges[partition_key_range] = keys
        return list(keys)  # a list of the caller's own, as from Dagster's method


def area_year_partitions(config: PipelineConfig) -> AreaYearPartitions:
    """Area × year; the years are those of any area (a year an area does not list fails with a message)."""
    return AreaYearPartitions({
        AREA: area_partitions(config),
        YEAR: dg.StaticPartitionsDefinition([str(y) for y in config.years]),
    })


def area_year_key(area: str, year: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({AREA: area, YEAR: str(year)})


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, int | None]:
    """(area code, year) of an area × year key, (area code, None) of an area key."""
    key = parse_key(key)
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[AREA], int(dims[YEAR])
    return str(key), None


class PartitionFailure(dg.Failure):
    """Some partitions of a batch failed (each with its cause); the others were materialised.

    ``failed`` maps each failed partition's label (``"AREA YEAR"`` or ``"AREA"``) to its cause.
    """

    def __init__(self, step: str, failed: dict[str, str], done: int):
        self.failed = failed
        lines = "\n".join(f"{label}: {cause}" for label, cause in failed.items())
        super().__init__(description=f"{len(failed)} of {len(failed) + done} partitions failed in {step}"
                                     f"{' (the others were materialised)' if done else ''}:\n{lines}",
                         metadata={"failed_partitions": ", ".join(failed)})


@contextmanager
def each_partition(key: str | dg.MultiPartitionKey, failed: dict[str, str], alone: bool) -> Iterator[None]:
    """Run one partition's work of a batch: an error is recorded in ``failed`` (label -> cause) and the batch
    goes on. ``alone`` (the batch's only partition): the error is raised as it is, with its own message."""
    try:
        yield
    except Exception as exc:
        if alone:
            if isinstance(exc, NoScenesError):
                raise dg.Failure(description=str(exc)) from None
            raise
        if isinstance(exc, dg.Failure):
            failed[label(key)] = exc.description or "failed"
        else:  # the pipeline's own message; another error's class says what kind it is
            failed[label(key)] = str(exc) if isinstance(exc, NoScenesError) else f"{type(exc).__name__}: {exc}"


def materialised(context: dg.AssetExecutionContext, metadata: Mapping[Any, Mapping[str, Any]]
                 ) -> Iterator[dg.AssetMaterialization]:
    """Before a step fails for some partitions: a materialisation of each one it did materialise (key ->
    its metadata), to be yielded (Dagster records none for a failed step, and drops logged events)."""
    for key, values in metadata.items():
        yield dg.AssetMaterialization(asset_key=context.asset_key, partition=key, metadata=values)


def label(key: str | dg.MultiPartitionKey) -> str:
    """``"AREA YEAR"`` or ``"AREA"``: how lines and messages name a partition."""
    area, year = split_key(key)
    return area if year is None else f"{area} {year}"


def batch_label(context: dg.AssetExecutionContext) -> str:
    """The step's partitions in a few words: its key (``AREA|YEAR``), or a range with its count."""
    if not context.has_partition_key_range:
        return str(context.partition_key) if context.has_partition_key else ""
    keys = context.partition_keys
    if len(keys) == 1:
        return str(keys[0])
    key_range = context.partition_key_range
    return f"{key_range.start}..{key_range.end} ({len(keys)} partitions)"


def area_years(config: PipelineConfig, context: dg.AssetExecutionContext
               ) -> tuple[list[tuple[dg.MultiPartitionKey, AreaConfig, int]], dict[str, str]]:
    """The step's area-years as (key, area config, year), and the partitions of the batch that cannot run
    (a year the area does not list) with the reason."""
    runnable, failed = [], {}
    for key in context.partition_keys:
        key = parse_key(key)
        code, year = split_key(key)
        area = config.area(code)
        if year not in area.years:
            failed[label(key)] = (f"area {code!r} does not list year {year} (its years: "
                                  f"{', '.join(map(str, area.years))}); add it to the config")
        else:
            runnable.append((key, area, year))
    return runnable, failed


def areas_of(config: PipelineConfig, context: dg.AssetExecutionContext) -> list[AreaConfig]:
    """The step's areas (an area-partitioned step: one key or a range)."""
    return [config.area(str(key)) for key in context.partition_keys]


@dataclass(frozen=True)
class Batch:
    """A key range of one partitioned job run: ``start`` .. ``end`` (a box for area × year), its keys and a
    label for the lines."""

    start: str
    end: str
    keys: tuple[str, ...]

    @property
    def tags(self) -> dict[str, str]:
        return {ASSET_PARTITION_RANGE_START_TAG: self.start, ASSET_PARTITION_RANGE_END_TAG: self.end}

    @property
    def label(self) -> str:
        if len(self.keys) == 1:
            return label(parse_key(self.start))
        return f"{label(parse_key(self.start))} .. {label(parse_key(self.end))} ({len(self.keys)})"


def parse_key(text: str) -> str | dg.MultiPartitionKey:
    """An area key, or an area × year key from its string (``"AREA|YEAR"``: dimensions in name order)."""
    if isinstance(text, dg.MultiPartitionKey) or "|" not in text:
        return text
    area, year = text.split("|")
    return dg.MultiPartitionKey({AREA: area, YEAR: year})


def _runs(items: Sequence[str], order: Sequence[str]) -> list[list[str]]:
    """``items`` cut into runs that are contiguous in ``order``."""
    index = {item: i for i, item in enumerate(order)}
    runs: list[list[str]] = []
    for item in sorted(items, key=index.__getitem__):
        if runs and index[runs[-1][-1]] == index[item] - 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def area_batches(config: PipelineConfig, codes: Iterable[str]) -> list[Batch]:
    """Area ranges covering exactly ``codes`` (one when they are contiguous in the config's order)."""
    return [Batch(run[0], run[-1], tuple(run)) for run in _runs(list(dict.fromkeys(codes)), config.codes)]


def area_year_boxes(config: PipelineConfig, wanted: dict[str, Sequence[int]]) -> list[Batch]:
    """Boxes (contiguous areas × contiguous years) covering exactly the area-years in ``wanted`` (area code ->
    years): areas wanting the same years share boxes, so the usual case, every area with the same years,
    is one box."""
    years_order = [str(y) for y in config.years]
    by_years: dict[tuple[str, ...], list[str]] = {}
    for code, years in wanted.items():
        if years:
            by_years.setdefault(tuple(sorted(str(y) for y in years)), []).append(code)
    boxes = []
    for years, codes in by_years.items():
        for area_run in _runs(codes, config.codes):
            for year_run in _runs(list(years), years_order):
                keys = tuple(str(area_year_key(a, int(y))) for a in area_run for y in year_run)
                boxes.append(Batch(str(area_year_key(area_run[0], int(year_run[0]))),
                                   str(area_year_key(area_run[-1], int(year_run[-1]))), keys))
    return sorted(boxes, key=lambda b: b.keys[0])
