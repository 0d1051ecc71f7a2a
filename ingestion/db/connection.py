"""Where the pipeline's PostgreSQL + PostGIS lives, and connecting to it with a clear error.

Resolution order:
1. ``DATABASE_URL`` (any libpq URL or key/value string);
2. the libpq ``PG*`` variables (``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGPASSWORD``, ``PGSERVICE``);
3. otherwise the project's embedded cluster on ``127.0.0.1:$NDVI_PG_PORT`` (default 54329).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingestion.paths import project_home

DEFAULT_EMBEDDED_PORT = 54329
EMBEDDED_USER = "ndvi"
EMBEDDED_DATABASE = "ndvi"
_PG_ENV = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE")
#: libpq keyword -> environment variable, used to hand a DSN to dbt (which takes no URL).
_KEYWORD_TO_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
}


class DatabaseUnavailableError(RuntimeError):
    """The database could not be reached; the message names the server and how to fix it."""


def embedded_port() -> int:
    """TCP port of the embedded cluster (``NDVI_PG_PORT``, default 54329)."""
    raw = os.environ.get("NDVI_PG_PORT", str(DEFAULT_EMBEDDED_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"NDVI_PG_PORT must be a port number, got {raw!r}") from None
    if not 1024 <= port <= 65535:
        raise ValueError(f"NDVI_PG_PORT must be between 1024 and 65535, got {port}")
    return port


def embedded_data_dir() -> Path:
    """Folder of the embedded cluster: ``$NDVI_PGDATA``, default ``<home>/.pgdata``."""
    return Path(os.environ.get("NDVI_PGDATA", project_home() / ".pgdata")).resolve()


def secret_path_for(data_dir: Path) -> Path:
    """Where a cluster's generated passwords live: beside its folder, readable by its owner only (0600)."""
    return data_dir.with_name(f"{data_dir.name}.secret")


def read_secret(path: Path, role: str) -> str | None:
    """The password of ``role`` from a cluster's secret file, or None when there is no such file."""
    try:
        return json.loads(path.read_text())[role]
    except FileNotFoundError:
        return None


def uses_embedded() -> bool:
    """True when neither ``DATABASE_URL`` nor any ``PG*`` connection variable is set."""
    return not os.environ.get("DATABASE_URL") and not any(os.environ.get(v) for v in _PG_ENV)


def embedded_dsn(database: str = EMBEDDED_DATABASE) -> str:
    """Connection string of the embedded cluster for ``database``, with the role's generated password."""
    password = read_secret(secret_path_for(embedded_data_dir()), EMBEDDED_USER)
    return make_conninfo(host="127.0.0.1", port=embedded_port(), user=EMBEDDED_USER, dbname=database,
                         password=password)


def resolve_dsn() -> str:
    """The connection string to use: ``DATABASE_URL``, else ``PG*`` variables (empty string), else embedded."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    if not uses_embedded():
        return ""  # libpq reads the PG* variables itself
    return embedded_dsn()


def describe(dsn: str) -> str:
    """``user@host:port/dbname`` of a DSN (password never shown), for logs and errors."""
    params = conninfo_to_dict(dsn) if dsn else {}
    host = params.get("host") or os.environ.get("PGHOST") or "localhost (unix socket)"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or "(default user)"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or "(default database)"
    return f"{user}@{host}:{port}/{dbname}"


def pg_environment(dsn: str) -> dict[str, str]:
    """The DSN as libpq ``PG*`` variables, for tools that take no URL (dbt's profile reads these)."""
    if not dsn:
        return {k: os.environ[k] for k in _PG_ENV if os.environ.get(k)}
    params = conninfo_to_dict(dsn)
    return {env: str(params[key]) for key, env in _KEYWORD_TO_ENV.items() if params.get(key)}


def connect(dsn: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection, or raise :class:`DatabaseUnavailableError` naming the server and the fix."""
    dsn = resolve_dsn() if dsn is None else dsn
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if dsn == embedded_dsn(conninfo_to_dict(dsn).get("dbname", EMBEDDED_DATABASE)):
            fix = "Start the project's embedded PostGIS with `make db-start` (or set DATABASE_URL)."
        else:
            fix = "Check DATABASE_URL / the PG* variables and that the server is running and reachable."
        raise DatabaseUnavailableError(
            f"Cannot connect to PostgreSQL at {describe(dsn)}: {reason}. {fix}"
        ) from None
