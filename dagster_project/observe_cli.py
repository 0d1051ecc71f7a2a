"""``ndvi-pipeline observe``: observe the scenes of areas and years and record them in the Dagster instance."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import dagster as dg

from dagster_project.assets.scenes import observation_event, observe_and_record
from ingestion.config import PipelineConfig


def observe_command(config: PipelineConfig, areas: Iterable[str] | None = None, years: Iterable[int] | None = None,
                    instance: dg.DagsterInstance | None = None, echo: Callable[[str], None] = print) -> int:
    """Observe the area-years (default every configured one), print one line each (version, item count,
    changed since the previous observation or not) and report each to the Dagster instance (``DAGSTER_HOME``)
    as an observation of ``sentinel2_scenes``, as the job ``observe_scenes`` would, so the UI shows which
    composites are stale. Returns the exit code: 1 when any area-year could not be observed."""
    observed = observe_and_record(config, areas, years)
    instance = instance or dg.DagsterInstance.get()
    for o in observed:
        if o.error:
            echo(f"FAILED {o.area:<16} {o.year}  {o.error}")
            continue
        instance.report_runless_asset_event(observation_event(o))
        changed = "first observation" if o.changed is None else ("CHANGED" if o.changed else "unchanged")
        echo(f"ok     {o.area:<16} {o.year}  version {o.version}  {o.items:4d} items  {changed}")
    if not observed:
        echo("nothing to observe: no configured area lists those years")
    return 1 if any(o.error for o in observed) else 0
