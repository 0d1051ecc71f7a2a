"""``ndvi-dbt [--no-wait] ARGS``: run dbt in ``dbt_project/`` against the pipeline's database.

dbt's postgres profile takes no URL, so this hands ``DATABASE_URL`` (or the embedded cluster's address)
to dbt as libpq ``PG*`` variables, which ``dbt_project/profiles.yml`` reads.

A command that touches the database (``build``, ``run``, ``test``, ``docs generate``, ...) runs under the dbt
lock that Dagster's dbt steps take too (:mod:`ingestion.db.dbt_lock`): when a run holds it, this says for whom
it waits and waits, or with ``--no-wait`` refuses with that line and exit code 3. Never two dbt runs at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ingestion.db.connection import pg_environment, resolve_dsn
from ingestion.db.dbt_lock import DbtLockBusy, dbt_lock, this_process
from ingestion.paths import DBT_PROJECT_DIR

__all__ = ["DBT_PROJECT_DIR", "main"]
#: dbt commands that never touch the database: they run without the lock (``docs serve`` runs for hours).
LOCK_FREE = frozenset({"parse", "deps", "clean", "debug", "init", "list", "ls", "docs serve", "--version", "-h",
                       "--help"})
#: Exit code when ``--no-wait`` finds the lock taken.
BUSY_EXIT = 3


def dbt_environment() -> dict[str, str]:
    """The current environment plus ``PG*`` variables for the resolved database and the profiles folder."""
    env = {**os.environ, **pg_environment(resolve_dsn())}
    env.setdefault("DBT_PROFILES_DIR", str(DBT_PROJECT_DIR))
    env.setdefault("DBT_PROJECT_DIR", str(DBT_PROJECT_DIR))  # an env var, not --project-dir: every command takes it
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def command(args: list[str]) -> str:
    """The dbt command of ``args``: its first word, or two for ``docs serve`` / ``docs generate``."""
    words = [a for a in args if not a.startswith("-")] or args[:1]
    if not words:
        return ""
    return " ".join(words[:2]) if words[0] == "docs" else words[0]


def needs_lock(args: list[str]) -> bool:
    """Whether dbt ``args`` may write to (or read a consistent state of) the database."""
    return bool(args) and command(args) not in LOCK_FREE and not {"-h", "--help", "--version"} & set(args)


def run_locked(cmd: list[str], env: dict[str, str], wait: bool) -> int:
    """Run ``cmd`` as a child under the dbt lock; SIGINT and SIGTERM are passed on to it."""
    try:
        with dbt_lock(f"ndvi-dbt {command(cmd[1:])} {this_process()}", wait=wait,
                      echo=lambda line: print(f"ndvi-dbt: {line}", file=sys.stderr, flush=True)):
            child = subprocess.Popen(cmd, env=env)
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda sig, frame: child.send_signal(sig))
            return child.wait()
    except DbtLockBusy as exc:
        print(f"ndvi-dbt: {exc}", file=sys.stderr)
        return BUSY_EXIT


def main(argv: list[str] | None = None) -> int:
    """dbt with the pipeline's database: under the dbt lock when the command touches the database, otherwise
    by replacing this process (``os.execvpe``), so that a signal to its pid reaches dbt itself."""
    args = sys.argv[1:] if argv is None else list(argv)
    wait = "--no-wait" not in args
    args = [a for a in args if a != "--no-wait"]
    cmd = [str(Path(sys.executable).with_name("dbt")), *args]
    env = dbt_environment()
    if needs_lock(args):
        return run_locked(cmd, env, wait)
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    sys.exit(main())
