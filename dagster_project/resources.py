"""Dagster resources: the PostGIS connection and dbt, both pointed at the same database."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import dagster as dg
import psycopg
from dagster_dbt import DbtCliInvocation, DbtCliResource, DbtProject
from packaging import version

from ingestion.db.connection import connect, pg_environment, resolve_dsn
from ingestion.paths import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class PostGISResource(dg.ConfigurableResource):
    """Connections to the pipeline database: ``dsn`` if given, else ``DATABASE_URL``/``PG*``/embedded."""

    dsn: str | None = None

    def connect(self) -> psycopg.Connection:
        return connect(self.dsn)

    def pg_environment(self) -> dict[str, str]:
        """The same database as libpq variables (dbt's profile reads these)."""
        return pg_environment(self.dsn if self.dsn is not None else resolve_dsn())


#: Advisory lock key held while dbt runs: dbt's table swaps and first-time table creation are not safe
#: for two concurrent runs, so runs from different processes (or Dagster deployments) take turns.
DBT_LOCK_KEY = 7_214_002


@contextmanager
def dbt_lock(postgis: PostGISResource) -> Iterator[None]:
    """Hold a session advisory lock for the duration of a dbt invocation."""
    with postgis.connect() as conn:
        conn.autocommit = True
        conn.execute("select pg_advisory_lock(%s)", (DBT_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (DBT_LOCK_KEY,))


def point_dbt_at(postgis: PostGISResource) -> None:
    """dagster-dbt runs dbt with this process's environment: give it the database as PG* variables."""
    os.environ.update(postgis.pg_environment())
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


#: dbt's own partial-parse cache, which dagster-dbt copies into each invocation's unique target path.
PARTIAL_PARSE = DBT_PROJECT_DIR / "target" / "partial_parse.msgpack"


class NdviDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, minus two costs per dbt step that this venv does not need.

    - The dbt version comes from the installed ``dbt-core`` when the executable is this venv's dbt, instead of
      a ``dbt --version`` process (2 s, and it asks PyPI for the latest version).
    - After an invocation, its ``partial_parse.msgpack`` replaces the project's, as a plain ``dbt`` run in one
      target folder would: without it, every step starts from the parse of ``make manifest``, and dbt parses
      the whole project again whenever that was made for another database or profile ("Unable to do partial
      parsing because profile has changed"). dbt validates the cache itself (file hashes, profile, vars,
      env vars), so a stale one only costs a full parse.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).parent == Path(sys.executable).parent:
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    @staticmethod
    def keep_partial_parse(invocation: DbtCliInvocation) -> None:
        """Publish the invocation's partial parse for the next one (atomically; dbt runs take turns anyway)."""
        source = invocation.target_path / PARTIAL_PARSE.name
        if invocation.is_successful() and source.exists():
            PARTIAL_PARSE.parent.mkdir(exist_ok=True)
            temporary = PARTIAL_PARSE.with_name(f".{PARTIAL_PARSE.name}.{os.getpid()}")
            shutil.copyfile(source, temporary)
            os.replace(temporary, PARTIAL_PARSE)


def dbt_resource() -> NdviDbtCliResource:
    # the dbt of this venv, whether or not the venv is on PATH
    executable = Path(sys.executable).with_name("dbt")
    return NdviDbtCliResource(project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR),
                              dbt_executable=str(executable) if executable.exists() else "dbt")
