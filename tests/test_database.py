"""The database layer: embedded cluster, DATABASE_URL, and errors a user can act on."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
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
    dsn = scratch_cluster.dsn("ndvi")
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
    for var in ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)  # in-process pipeline runs hand the database to dbt as PG*
    monkeypatch.setenv("NDVI_PG_PORT", "not-a-port")
    with pytest.raises(ValueError, match="NDVI_PG_PORT"):
        resolve_dsn()


def _refused(**params) -> str:
    """Connect to a cluster with ``params``; return the server's refusal (fails the test if let in)."""
    try:
        psycopg.connect(host="127.0.0.1", connect_timeout=5, **params).close()
    except psycopg.OperationalError as exc:
        return str(exc)
    raise AssertionError(f"connection with {params} was accepted")


def test_embedded_cluster_refuses_connections_without_its_generated_password(scratch_cluster):
    scratch_cluster.start()
    port = scratch_cluster.port
    secret = scratch_cluster.secret_path
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600  # readable by its owner only
    for user in ("postgres", "ndvi"):
        assert "password" in _refused(port=port, user=user, dbname="ndvi")
        assert "password authentication failed" in _refused(port=port, user=user, dbname="ndvi", password="guess")
    with psycopg.connect(scratch_cluster.dsn("ndvi")) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "ndvi"

    # a cluster created by an older version with trust authentication is switched to passwords at start
    scratch_cluster.stop()
    hba = scratch_cluster.data_dir / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
    scratch_cluster.start()
    assert "password" in _refused(port=port, user="postgres", dbname="postgres")
    assert "trust" not in [line.split()[-1] for line in hba.read_text().splitlines()
                           if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to act as another user")
def test_another_local_user_cannot_read_the_secret_or_connect(scratch_cluster):
    scratch_cluster.start()
    secret = scratch_cluster.secret_path
    os.chmod(secret.parent, 0o755)  # even where the folder is open to everyone, the file is not
    read = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(secret)], capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    psql = scratch_cluster.bindir / "psql"
    for target in (["-h", "127.0.0.1"], ["-h", str(scratch_cluster.data_dir)]):  # TCP and the Unix socket
        run = subprocess.run(["runuser", "-u", "nobody", "--", str(psql), *target, "-p", str(scratch_cluster.port),
                              "-U", "postgres", "-d", "postgres", "-w", "-c", "select 1"],
                             capture_output=True, text=True, cwd="/")
        assert run.returncode != 0, run.stdout
        assert "password" in run.stderr or "Permission denied" in run.stderr or "No such file" in run.stderr
