"""``ndvi-dbt ARGS``: run dbt in ``dbt_project/`` against the pipeline's database.

dbt's postgres profile takes no URL, so this hands ``DATABASE_URL`` (or the embedded cluster's address)
to dbt as libpq ``PG*`` variables, which ``dbt_project/profiles.yml`` reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ingestion.db.connection import pg_environment, resolve_dsn
from ingestion.paths import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def dbt_environment() -> dict[str, str]:
    """The current environment plus ``PG*`` variables for the resolved database and the profiles folder."""
    env = {**os.environ, **pg_environment(resolve_dsn())}
    env.setdefault("DBT_PROFILES_DIR", str(DBT_PROJECT_DIR))
    env.setdefault("DBT_PROJECT_DIR", str(DBT_PROJECT_DIR))  # an env var, not --project-dir: every command takes it
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def main(argv: list[str] | None = None) -> int:
    """Replace this process with dbt (``os.execvpe``), so that a signal to its pid reaches dbt itself."""
    args = sys.argv[1:] if argv is None else argv
    dbt = Path(sys.executable).with_name("dbt")
    cmd = [str(dbt), *args]
    os.execvpe(cmd[0], cmd, dbt_environment())


if __name__ == "__main__":
    sys.exit(main())
