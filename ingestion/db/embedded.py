"""The project's own PostgreSQL 15 + PostGIS 3 cluster, in a git-ignored folder, on 127.0.0.1 only.

Used when no ``DATABASE_URL``/``PG*`` variables are set. ``initdb`` refuses to run as root, so when we are
root every server command runs as the ``postgres`` system user (which owns the data folder).

Access: every connection, TCP or Unix socket, needs a password (``scram-sha-256``). The passwords of the
superuser and of the pipeline's role ``ndvi`` are generated at creation and kept in ``<folder>.secret``,
readable by its owner only, so other local users cannot get in. A cluster created by an older version with
``trust`` authentication is switched to passwords at its next start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingestion.db.connection import (
    EMBEDDED_DATABASE,
    EMBEDDED_USER,
    embedded_data_dir,
    embedded_port,
    read_secret,
    secret_path_for,
)

log = logging.getLogger(__name__)

PG_MAJOR = 15
DEBIAN_PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-postgis-3", "postgis")
SUPERUSER = "postgres"
#: Databases created at start: the working one, the one the test suite uses, and the benchmark's scratch one.
DATABASES = (EMBEDDED_DATABASE, f"{EMBEDDED_DATABASE}_test", f"{EMBEDDED_DATABASE}_bench")
EXTENSIONS = ("postgis", "postgis_raster")


class MissingPackagesError(RuntimeError):
    """PostgreSQL or PostGIS binaries are not installed and could not be installed here."""


class SecretMissingError(RuntimeError):
    """The cluster exists but its password file is gone, so nothing can connect to it."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _bindir() -> Path:
    if env := os.environ.get("NDVI_PG_BINDIR"):
        return Path(env)
    debian = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    if debian.exists():
        return debian
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else debian


@dataclass
class EmbeddedCluster:
    """A local cluster: ``data_dir`` holds it, ``port`` is its TCP port on 127.0.0.1."""

    data_dir: Path
    port: int
    bindir: Path = field(default_factory=_bindir)

    @classmethod
    def from_env(cls) -> EmbeddedCluster:
        """Cluster at ``$NDVI_PGDATA`` (default ``<home>/.pgdata``) on ``$NDVI_PG_PORT`` (default 54329)."""
        return cls(data_dir=embedded_data_dir(), port=embedded_port())

    # -- passwords ----------------------------------------------------------------------------------
    @property
    def secret_path(self) -> Path:
        return secret_path_for(self.data_dir)

    def _ensure_secret(self) -> None:
        """Generate the two passwords once, into a file created with mode 0600 (never readable by others)."""
        if self.secret_path.exists():
            return
        passwords = {SUPERUSER: secrets.token_urlsafe(24), EMBEDDED_USER: secrets.token_urlsafe(24)}
        self.secret_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(passwords, f)

    def _password(self, role: str) -> str:
        password = read_secret(self.secret_path, role)
        if password is None:
            raise SecretMissingError(
                f"the embedded cluster in {self.data_dir} exists but its password file {self.secret_path} is "
                "missing; restore it, or remove the cluster (make clean) to create a new one")
        return password

    def dsn(self, database: str = EMBEDDED_DATABASE, superuser: bool = False) -> str:
        """Connection string for ``database`` as the pipeline's role (or the superuser), with its password."""
        role = SUPERUSER if superuser else EMBEDDED_USER
        return make_conninfo(host="127.0.0.1", port=self.port, user=role, dbname=database,
                             password=self._password(role))

    # -- installation -------------------------------------------------------------------------------
    def _missing(self) -> list[str]:
        missing = [p for p in ("initdb", "pg_ctl", "postgres") if not (self.bindir / p).exists()]
        sharedir = Path(f"/usr/share/postgresql/{PG_MAJOR}/extension")
        if not (sharedir / "postgis.control").exists() or not (sharedir / "postgis_raster.control").exists():
            missing.append("postgis extension")
        return missing

    def ensure_installed(self) -> None:
        """Install the Debian packages when missing and we are root; else raise naming them."""
        if not self._missing():
            return
        if _is_root() and shutil.which("apt-get"):
            log.info("Installing %s with apt-get", " ".join(DEBIAN_PACKAGES))
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES], check=True, env=env)
            self.bindir = _bindir()
        if missing := self._missing():
            raise MissingPackagesError(
                f"PostgreSQL {PG_MAJOR} with PostGIS 3 is not installed (missing: {', '.join(missing)}). "
                f"Install it with: sudo apt-get install {' '.join(DEBIAN_PACKAGES)} "
                "or point DATABASE_URL at an existing PostGIS server."
            )

    # -- server commands ----------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if _is_root():
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd="/")

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        """True when ``pg_ctl status`` reports a server for this data folder."""
        return self.initialised and self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def _init(self) -> None:
        log.info("Creating the embedded PostgreSQL cluster in %s", self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.data_dir, user=SUPERUSER, group=SUPERUSER)
        self.data_dir.chmod(0o700)
        self._ensure_secret()
        # initdb reads the superuser password from a file the server user can read; it lives only meanwhile
        pwfile = self.data_dir.with_name(f".{self.data_dir.name}.pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._password(SUPERUSER) + "\n")
        try:
            if _is_root():
                shutil.chown(pwfile, user=SUPERUSER, group=SUPERUSER)
            self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8")
        finally:
            pwfile.unlink(missing_ok=True)

    def _require_passwords(self) -> None:
        """Switch a cluster created with ``trust`` authentication (older versions) to scram-sha-256."""
        hba = self.data_dir / "pg_hba.conf"
        text = hba.read_text()
        if not re.search(r"^\s*(local|host)\S*\s.*\btrust\s*$", text, flags=re.MULTILINE):
            return
        log.info("Embedded PostgreSQL used trust authentication; switching it to passwords (scram-sha-256)")
        self._ensure_secret()
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("alter role {} password {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(self._password(SUPERUSER))))
        hba.write_text(re.sub(r"\btrust\s*$", "scram-sha-256", text, flags=re.MULTILINE))
        self._run("pg_ctl", "reload", "-D", str(self.data_dir))
        time.sleep(0.5)  # the postmaster re-reads pg_hba.conf asynchronously

    def start(self) -> bool:
        """Start the cluster (creating it first if needed). Returns False when it was already running."""
        self.ensure_installed()
        if not self.initialised:
            self._init()
        if self.is_running():
            log.info("Embedded PostgreSQL already running on 127.0.0.1:%s", self.port)
            self._require_passwords()
            self._bootstrap()
            return False
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data_dir}"
        result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                           "-l", str(self.data_dir / "server.log"), "-o", options, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"Embedded PostgreSQL did not start on 127.0.0.1:{self.port} "
                f"(is the port taken? set NDVI_PG_PORT). See {self.data_dir / 'server.log'}.\n{result.stderr}"
            )
        log.info("Embedded PostgreSQL started on 127.0.0.1:%s (data in %s)", self.port, self.data_dir)
        self._require_passwords()
        self._bootstrap()
        return True

    def stop(self) -> bool:
        """Stop the cluster cleanly (fast shutdown). Returns False when it was not running."""
        if not self.is_running():
            return False
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))
        log.info("Embedded PostgreSQL stopped")
        return True

    def status(self) -> str:
        """One line: running or not, where, and which port."""
        if not self.initialised:
            return f"not created ({self.data_dir} is empty); run `make db-start`"
        state = "running" if self.is_running() else "stopped"
        return f"{state}: 127.0.0.1:{self.port}, data in {self.data_dir}"

    # -- roles, databases, extensions ---------------------------------------------------------------
    def _superuser_connect(self, dbname: str) -> psycopg.Connection:
        for attempt in range(30):
            try:
                return psycopg.connect(self.dsn(dbname, superuser=True), autocommit=True, connect_timeout=5)
            except psycopg.OperationalError:
                if attempt == 29:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _bootstrap(self) -> None:
        """Idempotently create the non-superuser role, the databases and the PostGIS extensions."""
        with self._superuser_connect("postgres") as conn:
            if not conn.execute("select 1 from pg_roles where rolname = %s", (EMBEDDED_USER,)).fetchone():
                conn.execute(sql.SQL("create role {} login").format(sql.Identifier(EMBEDDED_USER)))
            conn.execute(sql.SQL("alter role {} password {}").format(
                sql.Identifier(EMBEDDED_USER), sql.Literal(self._password(EMBEDDED_USER))))
            for db in DATABASES:
                if not conn.execute("select 1 from pg_database where datname = %s", (db,)).fetchone():
                    conn.execute(sql.SQL("create database {} owner {}").format(
                        sql.Identifier(db), sql.Identifier(EMBEDDED_USER)))
        for db in DATABASES:
            with self._superuser_connect(db) as conn:
                for ext in EXTENSIONS:
                    conn.execute(sql.SQL("create extension if not exists {}").format(sql.Identifier(ext)))
