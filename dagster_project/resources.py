"""Dagster resources: the PostGIS connection, and the dbt project (run by :mod:`dagster_project.dbt_core`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from dagster_dbt import DbtProject

from dagster_project.partitions import batch_label
from dagster_project.run_health import record_owner
from ingestion.db.connection import connect, resolve_dsn
from ingestion.db.dbt_lock import dbt_lock as shared_dbt_lock
from ingestion.db.dbt_lock import this_process
from ingestion.paths import DBT_PROJECT_DIR

#: dagster-dbt's view of the dbt project (its manifest is prepared by :mod:`dagster_project.dbt_manifest`).
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class PostGISResource(dg.ConfigurableResource):
    """Connections to the pipeline database: ``dsn`` if given, else ``DATABASE_URL``/``PG*``/embedded."""

    dsn: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # every job uses this resource: name the process that runs it, so a dead run can be told apart
        if context.instance is not None and context.run_id is not None:
            record_owner(context.instance, context.run_id)

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        """A new connection. ``autocommit``: each ``conn.transaction()`` block is a transaction of its own,
        committed when the block ends (without it, a statement outside a block opens a transaction that the
        blocks after it only nest in as savepoints, committed when the connection closes)."""
        return connect(self.dsn, autocommit=autocommit)

    def resolved_dsn(self) -> str:
        """The connection string: ``dsn``, else ``DATABASE_URL``/embedded (empty: the ``PG*`` variables)."""
        return self.dsn if self.dsn is not None else resolve_dsn()


@contextmanager
def dbt_lock(postgis: PostGISResource, context: dg.AssetExecutionContext) -> Iterator[None]:
    """Hold the dbt lock (:mod:`ingestion.db.dbt_lock`, shared with ``ndvi-dbt``) while the step's dbt runs;
    a step that has to wait says for whom in its log."""
    partition = batch_label(context)
    who = f"dagster run {context.run_id[:8]} {context.op_def.name} {partition} {this_process()}"
    with shared_dbt_lock(who, postgis.resolved_dsn(), echo=context.log.info):
        yield
