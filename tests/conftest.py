"""Shared fixtures: a real PostGIS (the embedded cluster's ``ndvi_test`` database, or ``DATABASE_URL``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dagster_project.event_log import enable_event_batches
from ingestion.db.connection import embedded_dsn, uses_embedded
from ingestion.db.embedded import EmbeddedCluster
from tests.browser import browser_page, chromium  # noqa: F401  (browser fixtures for every test module)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# as `ndvi-pipeline` and `make dev` run Dagster: a step's materialisations written in batches (event_log.py);
# set here, before any test starts a thread, and for the subprocesses tests start
enable_event_batches()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostGIS database for the whole session; exported as ``DATABASE_URL`` so every layer uses it."""
    if uses_embedded():
        EmbeddedCluster.from_env().start()
        url = embedded_dsn("ndvi_test")
    else:
        url = os.environ["DATABASE_URL"]
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    yield url
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def bench_dsn(database_url: str) -> str:
    """The embedded cluster's ``ndvi_bench`` database, for tests that load cases with the zonal benchmark's
    loaders (they replace raw.* and analytics.* there); or ``NDVI_BENCH_DATABASE_URL``."""
    if url := os.environ.get("NDVI_BENCH_DATABASE_URL"):
        return url
    if database_url != embedded_dsn("ndvi_test"):
        pytest.skip("set NDVI_BENCH_DATABASE_URL to a scratch PostGIS database to run the benchmark check")
    return embedded_dsn("ndvi_bench")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_area(tmp_path_factory) -> dict:
    """The synthetic demo area for 2019 and 2024 (plus 2021 all cloud), generated once per session."""
    from ingestion.sample.generator import generate

    out = tmp_path_factory.mktemp("sample")
    manifest = generate(out, [2019, 2021, 2024], seed=7, all_cloud_years=(2021,))
    manifest["root"] = out
    return manifest


def pytest_configure(config):
    """Tests that stop `dagster dev`, a CLI run or dbt with Ctrl-C or SIGTERM need those signals to act in the
    processes they start. A suite started in the background by a non-interactive shell (`make test &`, `nohup`)
    inherits SIGINT ignored, and a process's ignored signals stay ignored in every program it starts; so this
    process takes the usual handlers back, and its children get the defaults."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The random order's seed at the end of every run, also under ``-q`` (which hides pytest-randomly's header
    line): ``pytest --randomly-seed=N`` repeats the order of a failing run."""
    seed = config.getoption("randomly_seed", default=None)
    if seed is not None and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"test order: random, seed {seed} (repeat with --randomly-seed={seed})")
