"""The database layer: embedded cluster, DATABASE_URL, and errors a user can act on."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from ingestion.cli.dbt import dbt_environment
from ingestion.db import embedded
from ingestion.db.connection import DatabaseUnavailableError, connect, resolve_dsn
from ingestion.db.embedded import EmbeddedCluster, MissingPackagesError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scratch_cluster():
    """A brand-new cluster in a temporary folder (readable by the postgres user) on a free port."""
    folder = Path(tempfile.mkdtemp(prefix="ndvi-pg-"))
    folder.chmod(0o755)
    cluster = EmbeddedCluster(data_dir=folder / "pgdata", port=_free_port())
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_scratch_cluster_starts_answers_postgis_raster_and_second_start_is_noop(scratch_cluster):
    assert "not created" in scratch_cluster.status()
    assert scratch_cluster.start() is True
    dsn = f"host=127.0.0.1 port={scratch_cluster.port} user=ndvi dbname=ndvi"
    with psycopg.connect(dsn) as conn:
        version = conn.execute("select postgis_raster_lib_version()").fetchone()[0]
        pid = conn.execute("select pg_postmaster_start_time()").fetchone()[0]
        is_super = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]
        listen = conn.execute("show listen_addresses").fetchone()[0]
    assert version.startswith("3.")
    assert is_super is False  # the pipeline works without superuser rights
    assert listen == "127.0.0.1"
    assert scratch_cluster.start() is False
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select pg_postmaster_start_time()").fetchone()[0] == pid
    assert scratch_cluster.status().startswith("running")
    assert scratch_cluster.stop() is True
    assert scratch_cluster.status().startswith("stopped")
    assert scratch_cluster.stop() is False


def test_database_url_is_honoured(database_url, monkeypatch):
    url = database_url.replace("dbname=ndvi_test", "dbname=ndvi_test application_name=honoured")
    monkeypatch.setenv("DATABASE_URL", url)
    assert resolve_dsn() == url
    with connect() as conn:
        assert conn.execute("select current_setting('application_name')").fetchone()[0] == "honoured"
        assert conn.execute("select current_database()").fetchone()[0] == "ndvi_test"
    env = dbt_environment()
    assert env["PGDATABASE"] == "ndvi_test"
    assert env["PGHOST"] == "127.0.0.1"


def test_unreachable_external_database_names_server(monkeypatch):
    port = _free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://someone:secret@127.0.0.1:{port}/citydb")
    with pytest.raises(DatabaseUnavailableError) as err:
        connect()
    message = str(err.value)
    assert f"someone@127.0.0.1:{port}/citydb" in message
    assert "secret" not in message
    assert "DATABASE_URL" in message
    assert err.value.__cause__ is None


def test_unreachable_embedded_database_says_how_to_start_it(monkeypatch):
    for var in ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NDVI_PG_PORT", str(_free_port()))
    with pytest.raises(DatabaseUnavailableError, match="make db-start"):
        connect()


def test_missing_binaries_name_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "_is_root", lambda: False)  # a normal user cannot apt-get install
    cluster = EmbeddedCluster(data_dir=tmp_path / "pg", port=_free_port(), bindir=tmp_path / "no-bin")
    with pytest.raises(MissingPackagesError, match="postgresql-15-postgis-3 postgis"):
        cluster.start()


def test_bad_port_variable_is_rejected(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NDVI_PG_PORT", "not-a-port")
    with pytest.raises(ValueError, match="NDVI_PG_PORT"):
        resolve_dsn()
