"""Materialise the whole graph in-process: the area inputs once, then every asset per year partition."""

from collections.abc import Iterable

import dagster as dg

from dagster_project.definitions import ALL_ASSETS, aoi_boundary, districts
from dagster_project.resources import PostGISResource, dbt_resource

YEARLY_ASSETS = [a for a in ALL_ASSETS if a not in (districts, aoi_boundary)]


def materialize_area(years: Iterable[int], instance: dg.DagsterInstance | None = None,
                     inputs: bool = True, raise_on_error: bool = True) -> list[dg.ExecuteInProcessResult]:
    """Run ``districts`` and ``aoi_boundary`` (when ``inputs``), then each year's partition in order."""
    resources = {"postgis": PostGISResource(), "dbt": dbt_resource()}
    results = []
    if inputs:
        results.append(dg.materialize([districts, aoi_boundary], instance=instance, resources=resources,
                                      raise_on_error=raise_on_error))
    for year in years:
        results.append(dg.materialize(YEARLY_ASSETS, partition_key=str(year), instance=instance,
                                      resources=resources, selection=YEARLY_ASSETS, raise_on_error=raise_on_error))
    return results
