"""`dagster dev` (what `make dev` runs) loads the code location from workspace.yaml and serves the UI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.helpers import free_port


def test_dagster_dev_serves_the_asset_graph_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("NDVI_CONFIG", None)  # the default (demo) config, as `make dev`
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster_project" / "dagster.yaml").read_text())
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
                req = urllib.request.Request(f"{url}/graphql", data=query, headers={"Content-Type": "application/json"})
                nodes = json.loads(urllib.request.urlopen(req, timeout=5).read())["data"]["assetNodes"]
                if nodes:
                    break
            except (OSError, KeyError, TypeError):
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "dagster dev did not come up"
            time.sleep(1)
        keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert {"districts", "aoi_boundary", "ndvi_composite", "raw_ndvi_composites", "stg_ndvi_tiles",
                "ndvi_stats_yearly", "ndvi_stats_latest", "yearly_exports", "latest_exports"} <= keys
        assert urllib.request.urlopen(url, timeout=5).status == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        try:
            assert proc.wait(timeout=120) is not None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
