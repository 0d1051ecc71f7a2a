"""Partitions, all from the config: areas, and area × year for the yearly assets.

An area or a year is added by editing the config and reloading the code location: no code changes.
"""

from __future__ import annotations

import dagster as dg

from ingestion.config import AreaConfig, PipelineConfig

AREA = "area"
YEAR = "year"


def area_partitions(config: PipelineConfig) -> dg.StaticPartitionsDefinition:
    """One partition per configured area (its code)."""
    return dg.StaticPartitionsDefinition(list(config.codes))


def area_year_partitions(config: PipelineConfig) -> dg.MultiPartitionsDefinition:
    """Area × year; the years are those of any area (a year an area does not list fails with a message)."""
    return dg.MultiPartitionsDefinition({
        AREA: area_partitions(config),
        YEAR: dg.StaticPartitionsDefinition([str(y) for y in config.years]),
    })


def area_year_key(area: str, year: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({AREA: area, YEAR: str(year)})


def area_and_year(config: PipelineConfig, context: dg.AssetExecutionContext) -> tuple[AreaConfig, int]:
    """The area config and year of an area × year partition; a year the area does not list fails clearly."""
    keys = context.partition_key.keys_by_dimension
    area, year = config.area(keys[AREA]), int(keys[YEAR])
    if year not in area.years:
        raise dg.Failure(description=f"area {area.code!r} does not list year {year} (its years: "
                                     f"{', '.join(map(str, area.years))}); add it to the config")
    return area, year
