"""dbt's profile for one database, written for the in-process dbt runner (:mod:`dagster_project.dbt_core`).

The committed ``dbt_project/profiles.yml`` reads the database from the libpq ``PG*`` variables, which suits
``ndvi-dbt`` (a child process gets them in its own environment). In the Dagster process, setting them would
mean writing ``os.environ`` while GDAL threads and dbt's background parse read it (``setenv`` is not thread
safe), so dbt gets a profile instead: the committed one with the connection fields filled in literally, in a
private folder (mode 0700, the file 0600) per process and database, removed when the process exits. Every
other setting (schema, threads, timeouts) stays as committed.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import yaml
from psycopg.conninfo import conninfo_to_dict

from ingestion.db.connection import pg_environment

#: dbt profile field -> libpq keyword.
_FIELDS = {"host": "host", "port": "port", "user": "user", "password": "password", "dbname": "dbname",
           "sslmode": "sslmode"}
#: libpq keyword -> the ``PG*`` variable a DSN-less connection reads (only read here, never written).
_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE"}

_FOLDERS: dict[tuple[str, str], Path] = {}
_LOCK = threading.Lock()


def _literal(value: str) -> str:
    """A value dbt's Jinja rendering of profiles leaves as it is."""
    return f"{{% raw %}}{value}{{% endraw %}}" if any(c in value for c in "{}%#") else value


def connection_fields(dsn: str) -> dict[str, str]:
    """The profile's connection fields for ``dsn`` (empty: the ``PG*`` variables, as libpq reads them)."""
    params = conninfo_to_dict(dsn) if dsn else {}
    environment = pg_environment("") if not dsn else {}
    found = {}
    for name, keyword in _FIELDS.items():
        value = params.get(keyword) or environment.get(_ENV[keyword])
        if value:
            found[name] = str(value)
    return found


def profile_text(template: Path, dsn: str) -> str:
    """The committed profiles.yml with every output's connection fields for ``dsn`` filled in."""
    profiles = yaml.safe_load(template.read_text())
    fields = connection_fields(dsn)
    for profile in profiles.values():
        if not isinstance(profile, dict) or "outputs" not in profile:
            continue  # e.g. a top-level `config:` block
        for output in profile["outputs"].values():
            for key, value in fields.items():
                output[key] = int(value) if key == "port" else _literal(value)
    return yaml.safe_dump(profiles, sort_keys=False)


def profiles_dir(template_dir: str | Path, dsn: str) -> Path:
    """A private folder holding the profile of ``template_dir``'s profiles.yml for ``dsn``; one per process
    and database, removed at exit."""
    template = Path(template_dir) / "profiles.yml"
    key = (str(template), hashlib.sha256(dsn.encode()).hexdigest())
    with _LOCK:
        folder = _FOLDERS.get(key)
        if folder is None or not (folder / "profiles.yml").exists():
            folder = Path(tempfile.mkdtemp(prefix="ndvi-dbt-profile-"))  # mode 0700
            atexit.register(shutil.rmtree, folder, True)
            path = folder / "profiles.yml"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(profile_text(template, dsn))
            _FOLDERS[key] = folder
        return folder
