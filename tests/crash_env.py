"""Helpers for crash tests: a Dagster home, ``ndvi-pipeline`` as a real process whose lines can be awaited, a
STAC API that hangs until released, and waiting for observable conditions (never for a fixed time)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import yaml

from tests.conftest import PROJECT_ROOT

CLI = str(Path(sys.executable).with_name("ndvi-pipeline"))
DBT_CLI = str(Path(sys.executable).with_name("ndvi-dbt"))
#: Upper bound for any wait on a condition; only a safeguard against a hung test, never a timing.
DEADLINE_SECONDS = 300
T = TypeVar("T")


def dagster_home(tmp_path: Path) -> Path:
    """A Dagster home with the project's ``dagster.yaml`` (pools, run monitoring)."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster_project" / "dagster.yaml").read_text())
    return home


def wait_for(condition: Callable[[], T], what: str, proc: subprocess.Popen | None = None) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` if ``proc`` exits first."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class PipelineProcess:
    """``ndvi-pipeline ARGS`` (or ``program ARGS``) in its own process; its stdout and stderr lines are
    collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], program: str = CLI) -> None:
        self.proc = subprocess.Popen([program, *args], env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str) -> str:
        """The first line containing ``text``, once it was printed."""
        return wait_for(lambda: next((line for line in self.lines if text in line), None),
                        f"a line with {text!r} in:\n{self.output}", self.proc)

    def finish(self) -> int:
        """Wait for the process to end; its return code."""
        code = self.proc.wait(timeout=DEADLINE_SECONDS)
        self._reader.join(timeout=DEADLINE_SECONDS)  # the pipe closes with the process: every line is read
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def slot_holders(home: Path, pool: str) -> list[str]:
    """The run ids holding a slot of ``pool`` in the instance at ``home``."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        info = instance.event_log_storage.get_concurrency_info(pool)
        return [slot.run_id for slot in info.claimed_slots]


def run_status(home: Path, run_id: str) -> tuple[dg.DagsterRunStatus, dict[str, str]]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        return run.status, dict(run.tags)


def failure_messages(home: Path, run_id: str) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        return [e.message for e in events]


class HangingStacApi:
    """An HTTP server on 127.0.0.1 that accepts every request and answers none until :meth:`release` (then 500).
    ``requests`` counts the requests it holds or held."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.requests = 0
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                api.requests += 1
                api.released.wait()
                self.send_response(500)
                self.end_headers()

            do_POST = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HangingStacApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def release(self) -> None:
        self.released.set()

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def area_config(path: Path, sample_area: dict, out: Path, years: list[int], area: str = "crash",
                imagery: dict | None = None, **extra) -> Path:
    """A one-area config at ``path`` reading the sample catalog (or ``imagery``)."""
    config = {"area": area, "districts": {"path": sample_area["districts"]}, "years": years,
              "imagery": imagery or {"source": "local-stac", "options": {"catalog_path": sample_area["catalog"]}},
              "output_dir": str(out), **extra}
    path.write_text(yaml.safe_dump(config))
    return path


def cli_env(home: Path, database_url: str) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": database_url}
    env.pop("NDVI_CONFIG", None)
    return env
