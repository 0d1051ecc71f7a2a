"""The commands that run the pipeline import it with the cyclic garbage collector paused, then freeze what the
imports made (``dagster_project/entry.py``). Checked in a fresh interpreter: freezing inside pytest's own process
would keep the test session's objects out of the collector."""

import json
import subprocess
import sys
from importlib.metadata import entry_points

PROBE = """
import gc, json, sys
from dagster_project.entry import collector_paused_then_frozen

starts = []
gc.callbacks.append(lambda phase, info: starts.append(info["generation"]) if phase == "start" else None)
if sys.argv[1] == "off":
    gc.disable()
with collector_paused_then_frozen():
    kept = [[i] for i in range(200_000)]  # far past the threshold that starts a collection
    during = len(starts)


class Node:
    pass


def cycle_collected():
    import weakref
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    return ref() is None


print(json.dumps({"during": during, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "cycle_collected": cycle_collected()}))
"""


def _probe(collector: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, collector], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_imports_run_without_collections_and_stay_out_of_later_ones():
    result = _probe("on")
    assert result["during"] == 0  # 200,000 new containers, and not one collection
    assert result["frozen"] >= 200_000  # they (and the modules) are out of every later collection
    assert result["enabled"] is True
    assert result["cycle_collected"] is True  # what the run makes afterwards is collected as usual


def test_a_collector_turned_off_before_stays_off():
    result = _probe("off")
    assert result["during"] == 0 and result["enabled"] is False


def test_the_pipeline_commands_start_through_the_entry_module():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["ndvi-pipeline"] == "dagster_project.entry:pipeline"
    assert scripts["ndvi-demo"] == "dagster_project.entry:demo"
