"""Loading a config reads the config and nothing else: the Dagster code location loads with the districts
file unreachable; ``ndvi-pipeline`` reads a split districts file and reports a bad one in one line."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from shapely.geometry import MultiPolygon, box

from dagster_project.cli import main
from ingestion.config import ConfigError, load_config
from ingestion.paths import PROJECT_ROOT
from tests.range_server import RangeServer

CLI = str(Path(sys.executable).with_name("ndvi-pipeline"))


def _national_config(tmp_path: Path, districts: str, column: str = "gm_code") -> Path:
    raw = {"districts": {"path": districts, "area_column": column}, "years": [2024],
           "imagery": {"source": "local-stac", "options": {"catalog_path": "c.json"}},
           "output_dir": str(tmp_path / "out")}
    path = tmp_path / "national.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _wijken(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gdf = gpd.GeoDataFrame({"district_code": ["A1", "A2", "B1"], "gm_code": ["GM01", "GM01", "GM02"]},
                           geometry=[MultiPolygon([box(i * 100, 0, i * 100 + 90, 90)]) for i in range(3)],
                           crs="EPSG:28992")
    gdf.to_file(folder / "wijken.geojson", driver="GeoJSON")
    return folder / "wijken.geojson"


def test_code_location_loads_with_the_districts_url_unreachable(tmp_path, capsys):
    wijken = _wijken(tmp_path / "www")
    with RangeServer(wijken.parent) as server:
        config = _national_config(tmp_path, server.href(wijken))
        assert main(["areas", "--config", str(config)]) == 0  # reads the file over HTTP once, records its areas
        assert capsys.readouterr().out.split() == ["GM01", "GM02"]
        assert server.requests > 0
    # the server is gone: the URL is unreachable, as a WFS that is down
    (tmp_path / "dagster_home").mkdir()
    env = {**os.environ, "NDVI_CONFIG": str(config), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    script = ("from dagster_project.definitions import build_definitions; from ingestion.config import load_config;"
              "from dagster_project.partitions import area_partitions;"
              "print(area_partitions(load_config()).get_partition_keys())")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['GM01', 'GM02']"
    validate = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate",
                               "-m", "dagster_project.definitions"], env=env, capture_output=True, text=True,
                              cwd=PROJECT_ROOT, timeout=300)
    assert validate.returncode == 0, (validate.stdout + validate.stderr)[-3000:]

    # a config whose areas were never recorded fails to load with what to do, and still reads no file
    config.write_text(config.read_text().replace("gm_code", "gm_naam"))
    with pytest.raises(ConfigError, match=r"districts.area_column: the areas of http://127.0.0.1:\d+/wijken.geojson "
                                          r"\(column 'gm_naam'\) are not recorded yet; run `ndvi-pipeline areas"):
        load_config(config)


def test_cli_names_a_bad_area_column_in_one_line(tmp_path):
    config = _national_config(tmp_path, str(_wijken(tmp_path)), column="gemeente")
    for command in ("areas", "run"):
        proc = subprocess.run([CLI, command, "--config", str(config)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: districts file ") and "has no column 'gemeente'" in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _imports(path: Path) -> set[str]:
    """The ``ingestion.*`` modules ``path`` imports, anywhere in the file (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ingestion"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ingestion")}
    return found


def test_no_import_cycles_between_ingestion_modules():
    """A module graph of ``ingestion/`` (a package stands for its ``__init__``) has no cycle."""
    root = PROJECT_ROOT / "ingestion"
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    def ancestors(name: str) -> set[str]:
        return {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}

    graph = {}
    for name, path in modules.items():
        imported = {m for m in _imports(path) if m in modules}
        # importing a.b.c runs a and a.b first (except the packages this module is itself inside)
        graph[name] = {m for i in imported for m in {i} | ancestors(i) if m in modules} - ancestors(name) - {name}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*stack, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [])
